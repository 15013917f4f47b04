//! A compressed layer's uncompressed view kept lazily: the layer is
//! decompressed once, its tar hashed (the diff ID) and its skeleton
//! recorded (see `blob::inflated`), and no decompressed copy is written:
//! the view's bytes are decompressed again where they are read.

use std::io::{self, Read};
use std::sync::Arc;

use oci_spec::image::Descriptor;

use super::budget::{Budget, Metered, Spent};
use super::{Compression, ConvertOptions, Converted, Converter, Failure, Outcome, decoding, sniff};
use crate::blob::{Blob, BlobReader, Codec, Recorder, Walker};
use crate::chunk::Chunk;
use crate::digest::Hasher;
use crate::error::Error;

/// The conversion a view is when it cannot be kept lazily (a layer held
/// in memory): decompressed into a temporary file.
const MATERIALISED: ConvertOptions = ConvertOptions {
    compression: Compression::Uncompressed,
    level: None,
    force: true,
    rewrite_timestamp: None,
};

impl Converter {
    /// The uncompressed view of `blob`, within `budget`: none when the
    /// layer is uncompressed (it is its own view); for a compressed layer a
    /// blob of its tar that keeps no decompressed copy (only the tar's
    /// headers, in an unnamed temporary file), its bytes decompressed again
    /// where read. The tar is decompressed once here, and hashed: the
    /// outcome's `diff_id`. Shared as [`Converter::convert`]'s outcomes are.
    pub fn view(&self, blob: &Blob, budget: &Budget) -> Result<Option<Arc<Converted>>, Error> {
        self.shared(blob, (MATERIALISED, true), || {
            self.compute_view(blob, budget)
        })
    }

    fn compute_view(&self, blob: &Blob, budget: &Budget) -> Outcome {
        let source = sniff(blob).map_err(|e| e.to_string())?;
        let codec = match source {
            Compression::Uncompressed => return Ok(None),
            Compression::Gzip => Codec::Gzip,
            Compression::Zstd => Codec::Zstd,
        };
        if !blob.stored_in_file() {
            return self.compute(blob, &MATERIALISED, budget);
        }
        let file = self.temporary_file()?;
        let walked = inflate(blob.open_shared(), source, Recorder::new(file), budget);
        let (diff_id, size, walker) = walked.map_err(|e| match Spent::of(&e) {
            Some(limit) => Failure::Limit(limit),
            None => Failure::Failed(format!("{} to uncompressed: {e}", source.name())),
        })?;
        let digest: oci_spec::image::Digest = diff_id.parse().map_err(|e| format!("{e}"))?;
        let descriptor = Descriptor::new(Compression::Uncompressed.media_type(), size, digest);
        let context = format!(
            "layer {} converted to {}",
            blob.descriptor().digest(),
            Compression::Uncompressed.name()
        );
        let skeleton = walker.into_recorder().finish();
        let view = Blob::inflated_view(
            blob,
            codec,
            descriptor,
            skeleton,
            &context,
            Arc::clone(&self.idle_decoders),
        )
        .ok_or_else(|| format!("layer {} is not in a file", blob.descriptor().digest()))?;
        Ok(Some(Arc::new(Converted {
            blob: Arc::new(view),
            diff_id,
        })))
    }
}

/// Decompresses `reader` (`codec`) within `budget`, hashing the tar and
/// walking it into `recorder`: the tar's digest, its size and the walker.
fn inflate(
    reader: BlobReader,
    source: Compression,
    recorder: Recorder,
    budget: &Budget,
) -> io::Result<(String, u64, Walker)> {
    let decoded = decoding(reader, source)?;
    let mut decoded = Metered::new(decoded, budget, "the uncompressed tar");
    let mut walker = Walker::new(recorder);
    let mut hasher = Hasher::default();
    let mut size = 0u64;
    let mut buf = Chunk::take();
    loop {
        let n = match decoded.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        walker.observe(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size, walker))
}
