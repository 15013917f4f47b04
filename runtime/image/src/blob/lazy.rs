//! Views kept lazily (see `inflated`): making the blob of one, reading
//! ranges of a blob in order ([`Ranges`]), checking a view's source.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use oci_spec::image::Descriptor;

use super::handle::Blob;
use super::inflated::{Codec, IdleCount, Inflated, Skeleton, Source};
use super::label::Label;
use super::storage::Data;
use super::stream::Stream;
use crate::error::Error;

impl Blob {
    /// The uncompressed view of `layer` (compressed with `codec`) whose tar
    /// is `descriptor` (verified by the caller, who decompressed it) and
    /// whose `skeleton` was recorded then; none unless the layer's bytes
    /// are in a file.
    pub(crate) fn inflated_view(
        layer: &Blob,
        codec: Codec,
        descriptor: Descriptor,
        skeleton: Skeleton,
        context: &str,
        idle: IdleCount,
    ) -> Option<Blob> {
        let Ok(Data::File(region)) = layer.present_data() else {
            return None;
        };
        let size = descriptor.size();
        let source = Source {
            region,
            codec,
            digest: Arc::from(layer.descriptor().digest().to_string()),
        };
        let label = Label {
            input: layer.input_name().to_owned(),
            digest: descriptor.digest().to_string(),
            context: context.to_owned(),
        };
        Some(Blob {
            descriptor,
            data: Data::Inflated(Arc::new(Inflated::new(source, skeleton, size, idle))),
            verified: Arc::new(AtomicBool::new(true)),
            verifying: Arc::default(),
            label: Arc::new(label),
        })
    }

    /// Whether the blob's bytes are in a file once present (a view can be
    /// kept lazily only over such a layer).
    pub(crate) fn stored_in_file(&self) -> bool {
        matches!(self.present_data(), Ok(Data::File(_)))
    }

    /// Whether reading the blob's bytes decompresses them (a compressed
    /// layer's view, which keeps no decompressed copy): such a blob is
    /// best read in ascending order ([`Blob::ranges`]).
    pub fn is_lazy(&self) -> bool {
        matches!(self.data, Data::Inflated(_))
    }

    /// For a view kept lazily, checks that the compressed bytes its
    /// decoders read since it was made still hash to the layer's digest
    /// (reading the rest of them for decoders that stopped early); the
    /// first such failure of any decoder of the view is the error. Other
    /// blobs have nothing to check. Blocks: call it off the async threads.
    pub fn check_source(&self) -> Result<(), Error> {
        let Data::Inflated(inflated) = &self.data else {
            return Ok(());
        };
        inflated.check_source().map_err(|message| Error::Convert {
            input: self.label.input.clone(),
            digest: self.label.digest.clone(),
            message: format!("{}: {message}", self.label.context),
        })
    }

    /// Reads ranges of the blob, verified first (reading it all unless a
    /// consumer already has; waiting for one verifying it). Blocks: call it
    /// off the async threads.
    pub fn ranges(&self) -> Result<Ranges, Error> {
        self.fetch()?;
        self.verify()?;
        Ok(Ranges {
            stream: Stream {
                hash: false,
                ..self.stream()
            },
        })
    }
}

/// Reads ranges of a verified blob; for a view kept lazily, ranges in
/// ascending order decompress the layer once (one decoder goes on from
/// range to range), one before the last starts again.
pub struct Ranges {
    stream: Stream,
}

impl Ranges {
    /// Fills `buf` with the bytes at `start`; an error if they run past the
    /// blob's end or cannot be read.
    pub fn read_exact_at(&mut self, start: u64, buf: &mut [u8]) -> Result<(), Error> {
        let end = start.saturating_add(buf.len() as u64);
        if end > self.stream.size {
            return Err(Error::RangeOutside {
                input: self.stream.label.input.clone(),
                digest: self.stream.label.digest.clone(),
                context: self.stream.label.context.clone(),
                start,
                len: buf.len() as u64,
                size: self.stream.size,
            });
        }
        self.stream.pos = start;
        let mut filled = 0;
        while filled < buf.len() {
            filled += self.stream.read_raw(&mut buf[filled..])?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Ranges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranges")
            .field("digest", &self.stream.label.digest)
            .field("pos", &self.stream.pos)
            .finish()
    }
}
