//! How a layer's tar is compressed, and the levels each compression takes.

use oci_spec::image::MediaType;

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    Uncompressed,
    /// gzip (deflate).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The compression of a blob starting with `head` (its first bytes).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::Uncompressed
        }
    }

    /// `uncompressed`, `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The OCI layer media type of a tar compressed this way.
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::Uncompressed => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// Checks a compression level: 0–9 for gzip, 1–22 for zstd, none for
    /// uncompressed layers.
    pub fn check_level(self, level: i32) -> Result<(), LevelError> {
        let range = match self {
            Compression::Uncompressed => return Err(LevelError::Uncompressed),
            Compression::Gzip => 0..=9,
            Compression::Zstd => 1..=22,
        };
        if range.contains(&level) {
            Ok(())
        } else {
            Err(LevelError::OutOfRange {
                level,
                compression: self.name(),
                min: *range.start(),
                max: *range.end(),
            })
        }
    }
}

/// A compression level a compression does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    /// A level for uncompressed layers.
    #[error("uncompressed layers take no compression level")]
    Uncompressed,
    /// A level outside the compression's range.
    #[error("compression level {level} is out of range for {compression} ({min}-{max})")]
    OutOfRange {
        /// The level asked for.
        level: i32,
        /// The compression's name.
        compression: &'static str,
        /// Its lowest level.
        min: i32,
        /// Its highest level.
        max: i32,
    },
}
