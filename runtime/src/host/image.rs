//! `outport:exporter/image`: the image an instance exports, served from the
//! verified input. Blob bytes move host-side (`copy-to-file`,
//! `copy-to-stream`) or through a host input-stream (`read`); digests are
//! checked by `outport-image` as the bytes pass.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use outport_image::{Blob, BlobReader, Chunk};
use wasmtime::component::Resource;
use wasmtime_wasi::OpenMode;
use wasmtime_wasi::filesystem::Descriptor as WasiDescriptor;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, InputStream, Pollable, StreamError};

use crate::host::bindings::image::{Compression, ConvertOptions, ConvertedLayer, Host, HostBlob};
use crate::host::bindings::types::{Descriptor, Error, Platform};
use crate::instance::state::InstanceState;
use crate::sandbox::text::truncate;

/// A blob handle held in an instance's resource table.
pub type BlobHandle = Arc<Blob>;

/// The first damaged blob (digest or size mismatch, read error) an
/// instance was served. The guest gets the error from the call, but one
/// that goes on and succeeds anyway is failed by the runtime with it: no
/// output built from bytes that are not the image is ever kept.
#[derive(Clone, Debug, Default)]
pub struct DamagedInput(Arc<std::sync::OnceLock<String>>);

impl DamagedInput {
    /// Records `message` unless an earlier damage is recorded.
    fn record(&self, message: String) {
        let _ = self.0.set(message);
    }

    /// Records `e` if it says a blob is damaged.
    fn note(&self, e: &outport_image::Error) {
        if e.is_damaged_blob() {
            self.record(e.to_string());
        }
    }

    /// Records an error of a blob reader (every one means a damaged blob);
    /// returns its message.
    fn reader_failed(&self, e: &std::io::Error) -> String {
        let message = e.to_string();
        self.record(message.clone());
        message
    }

    /// The first damage recorded.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Largest blob `bytes` and `put-blob` handle in one piece.
pub const MAX_INLINE_BLOB: u64 = 16 << 20;

impl Host for InstanceState {
    async fn root(&mut self) -> wasmtime::Result<Descriptor> {
        Ok(to_wit(self.image()?.root()))
    }

    async fn get_blob(
        &mut self,
        digest: String,
    ) -> wasmtime::Result<Result<Resource<BlobHandle>, Error>> {
        let image = self.image()?;
        if !outport_image::is_sha256_digest(&digest) {
            return Ok(Err(Error::InvalidImage(format!(
                "get-blob: {:?} is not a digest (sha256: and 64 lowercase hex digits)",
                truncate(&digest, 100)
            ))));
        }
        let found = image
            .blob(&digest)
            .or_else(|| self.own_blobs.get(&digest))
            .cloned();
        match found {
            Some(blob) => Ok(Ok(self.table.push(blob)?)),
            None => Ok(Err(Error::InvalidImage(format!(
                "image {} has no blob {digest}",
                image.name()
            )))),
        }
    }

    async fn put_blob(
        &mut self,
        media_type: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<Resource<BlobHandle>, Error>> {
        if !is_media_type(&media_type) {
            return Ok(Err(Error::InvalidImage(format!(
                "put-blob: {:?} is not a media type (type/subtype)",
                truncate(&media_type, 100)
            ))));
        }
        if data.len() as u64 > MAX_INLINE_BLOB {
            return Ok(Err(Error::Limit(format!(
                "put-blob: {} bytes is over the {MAX_INLINE_BLOB}-byte limit",
                data.len()
            ))));
        }
        let digest = outport_image::sha256_digest(&data);
        if !self.own_blobs.contains_key(&digest) {
            let total = self.own_blob_bytes + data.len() as u64;
            if total > self.limits.put_blob_bytes {
                return Ok(Err(Error::Limit(format!(
                    "put-blob: blobs created by this instance would total {total} bytes, over the {}-byte limit",
                    self.limits.put_blob_bytes
                ))));
            }
            self.own_blob_bytes = total;
        }
        let descriptor = match digest.parse::<oci_spec::image::Digest>() {
            Ok(d) => {
                outport_image::Descriptor::new(media_type.as_str().into(), data.len() as u64, d)
            }
            Err(e) => return Ok(Err(Error::InvalidImage(format!("put-blob: {e}")))),
        };
        let blob = Arc::new(Blob::new_in_memory(descriptor, data.into()));
        self.own_blobs.insert(digest, blob.clone());
        Ok(Ok(self.table.push(blob)?))
    }

    async fn convert_layers(
        &mut self,
        layers: Vec<Resource<BlobHandle>>,
        options: ConvertOptions,
    ) -> wasmtime::Result<Result<Vec<Option<ConvertedLayer>>, Error>> {
        let Some(run) = self.run.clone() else {
            return Ok(Err(Error::Unsupported(
                "convert-layers: only available during an export".into(),
            )));
        };
        let options = outport_image::ConvertOptions {
            compression: match options.compression {
                Compression::Uncompressed => outport_image::Compression::Uncompressed,
                Compression::Gzip => outport_image::Compression::Gzip,
                Compression::Zstd => outport_image::Compression::Zstd,
            },
            level: options.level,
            force: options.force,
            rewrite_timestamp: options.rewrite_timestamp,
        };
        if let Some(Err(e)) = options.level.map(|l| options.compression.check_level(l)) {
            return Ok(Err(Error::InvalidOption(format!("convert-layers: {e}"))));
        }
        let blobs = layers
            .iter()
            .map(|layer| self.table.get(layer).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        // Layers convert in parallel, as many at once as there are cores
        // and as the instance's memory limit holds.
        let per_layer = options.host_memory();
        let fit = (self.limits.memory_bytes as u64 / per_layer.max(1)) as usize;
        if fit == 0 {
            return Ok(Err(Error::Limit(format!(
                "convert-layers: {} needs about {} MiB of host memory per layer, over the memory limit of {} bytes",
                describe_level(&options),
                per_layer >> 20,
                self.limits.memory_bytes
            ))));
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let permits = Arc::new(tokio::sync::Semaphore::new(cores.min(fit)));
        let budget = outport_image::Budget {
            deadline: self.deadline,
            timeout_secs: self.limits.timeout.as_secs(),
            scratch_bytes: self.limits.scratch_bytes.saturating_sub(self.scratch_used),
        };
        let mut tasks = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let permit = permits.clone().acquire_owned().await?;
            let run = run.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                run.converter.convert(&blob, &options, &budget)
            }));
        }
        let mut converted = Vec::with_capacity(tasks.len());
        let mut failure = None;
        for task in tasks {
            match task.await? {
                Ok(Some(layer)) => {
                    let blob = layer.blob.clone();
                    self.scratch_used = self.scratch_used.saturating_add(blob.size());
                    if self.scratch_used > self.limits.scratch_bytes {
                        failure.get_or_insert(Error::Limit(format!(
                            "convert-layers: scratch limit of {} bytes exceeded (the converted layers total {})",
                            self.limits.scratch_bytes, self.scratch_used
                        )));
                        continue;
                    }
                    self.own_blobs
                        .insert(blob.descriptor().digest().to_string(), blob.clone());
                    converted.push(Some(ConvertedLayer {
                        blob: self.table.push(blob)?,
                        diff_id: layer.diff_id.clone(),
                    }));
                }
                Ok(None) => converted.push(None),
                Err(e) if e.is_limit() => {
                    failure.get_or_insert(Error::Limit(e.to_string()));
                }
                Err(e) => {
                    failure.get_or_insert(Error::InvalidImage(e.to_string()));
                }
            }
        }
        Ok(match failure {
            Some(e) => Err(e),
            None => Ok(converted),
        })
    }
}

/// "zstd level 22", "gzip level 6", "uncompressed": what a conversion
/// compresses with, for a message.
fn describe_level(options: &outport_image::ConvertOptions) -> String {
    match options.level {
        Some(level) => format!("{} level {level}", options.compression.name()),
        None => options.compression.name().to_owned(),
    }
}

impl HostBlob for InstanceState {
    async fn descriptor(&mut self, this: Resource<BlobHandle>) -> wasmtime::Result<Descriptor> {
        Ok(to_wit(self.table.get(&this)?.descriptor()))
    }

    async fn bytes(
        &mut self,
        this: Resource<BlobHandle>,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let blob = self.table.get(&this)?.clone();
        let result = tokio::task::spawn_blocking(move || blob.read_all(MAX_INLINE_BLOB)).await?;
        Ok(self.blob_result(result))
    }

    async fn read(
        &mut self,
        this: Resource<BlobHandle>,
    ) -> wasmtime::Result<Result<Resource<DynInputStream>, Error>> {
        let blob = self.table.get(&this)?.clone();
        let stream: DynInputStream = Box::new(BlobInputStream {
            reader: blob.open(),
            done: false,
            damaged: self.damaged.clone(),
        });
        Ok(Ok(self.table.push(stream)?))
    }

    async fn copy_to_file(
        &mut self,
        this: Resource<BlobHandle>,
        dest: Resource<WasiDescriptor>,
        offset: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let blob = self.table.get(&this)?.clone();
        let file = match self.writable_file(&dest, "copy-to-file")? {
            Ok(file) => file,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.quota.charge(blob.size()) {
            return Ok(Err(e));
        }
        let result = tokio::task::spawn_blocking(move || blob.copy_to_file(&file, offset)).await?;
        Ok(self.blob_result(result))
    }

    async fn copy_range_to_file(
        &mut self,
        this: Resource<BlobHandle>,
        start: u64,
        len: u64,
        dest: Resource<WasiDescriptor>,
        offset: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let blob = self.table.get(&this)?.clone();
        let file = match self.writable_file(&dest, "copy-range-to-file")? {
            Ok(file) => file,
            Err(e) => return Ok(Err(e)),
        };
        // A range past the blob's end is refused before anything is charged.
        if let Err(e) = blob.check_range(start, len) {
            return Ok(self.blob_result(Err(e)));
        }
        if let Err(e) = self.quota.charge(len) {
            return Ok(Err(e));
        }
        let result =
            tokio::task::spawn_blocking(move || blob.copy_range_to_file(start, len, &file, offset))
                .await?;
        Ok(self.blob_result(result))
    }

    async fn copy_to_stream(
        &mut self,
        this: Resource<BlobHandle>,
        dest: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let blob = self.table.get(&this)?.clone();
        if let Err(e) = self.quota.charge(blob.size()) {
            return Ok(Err(e));
        }
        // Shares verification with concurrent consumers of the same blob
        // (other instances): its bytes are hashed once.
        let reader = tokio::task::spawn_blocking(move || blob.open_shared()).await?;
        let damaged = self.damaged.clone();
        let stream = self.table.get_mut(&dest)?;
        Ok(copy_to_stream(reader, stream.as_mut(), &damaged).await)
    }

    async fn drop(&mut self, this: Resource<BlobHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl InstanceState {
    /// The guest's view of a blob call's outcome; a damaged blob is
    /// recorded (see [`DamagedInput`]).
    fn blob_result<T>(&self, result: Result<T, outport_image::Error>) -> Result<T, Error> {
        result.map_err(|e| {
            self.damaged.note(&e);
            Error::InvalidImage(e.to_string())
        })
    }

    /// The file behind `dest` if the guest opened it for writing; else the
    /// error `call` returns.
    fn writable_file(
        &self,
        dest: &Resource<WasiDescriptor>,
        call: &str,
    ) -> wasmtime::Result<Result<Arc<std::fs::File>, Error>> {
        Ok(match self.table.get(dest)? {
            WasiDescriptor::File(f)
                if f.open_mode.contains(OpenMode::WRITE) && !f.perms.write_not_permitted() =>
            {
                Ok(f.file.clone())
            }
            WasiDescriptor::File(_) => Err(Error::Io(format!(
                "{call}: the file is not open for writing"
            ))),
            WasiDescriptor::Dir(_) => {
                Err(Error::Io(format!("{call}: the descriptor is a directory")))
            }
        })
    }
}

/// Streams a blob into a WASI output-stream: the next chunk is read and
/// hashed while the stream writes the previous one.
async fn copy_to_stream(
    mut reader: BlobReader,
    stream: &mut dyn wasmtime_wasi::p2::OutputStream,
    damaged: &DamagedInput,
) -> Result<u64, Error> {
    let mut written = 0u64;
    loop {
        // A pooled buffer, back in the pool once the stream has sent it: a
        // fresh megabyte per chunk cost a page fault per 4 KiB.
        let mut chunk = Chunk::take();
        let n = read_full(&mut reader, &mut chunk)
            .map_err(|e| Error::InvalidImage(damaged.reader_failed(&e)))?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        let mut bytes = Bytes::from_owner(chunk);
        while !bytes.is_empty() {
            let permit = stream.write_ready().await.map_err(stream_error)?;
            let piece = bytes.split_to(permit.min(bytes.len()));
            stream.write(piece).map_err(stream_error)?;
        }
        written += n as u64;
    }
    // Every byte was accepted. A consumer that closes the stream once it has
    // them all (an HTTP request body with a `Content-Length`: hyper drops
    // it at the last byte) has not failed the copy.
    let flushed = match stream.flush() {
        Ok(()) => stream.write_ready().await.map(drop),
        Err(e) => Err(e),
    };
    match flushed {
        Ok(()) | Err(StreamError::Closed) => Ok(written),
        Err(e) => Err(stream_error(e)),
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(reader: &mut BlobReader, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn stream_error(e: StreamError) -> Error {
    match e {
        StreamError::Closed => Error::Io("copy-to-stream: the output stream is closed".into()),
        StreamError::LastOperationFailed(e) | StreamError::Trap(e) => {
            Error::Io(format!("copy-to-stream: {e:#}"))
        }
    }
}

/// The slow path: a blob as a `wasi:io` input-stream.
struct BlobInputStream {
    reader: BlobReader,
    done: bool,
    damaged: DamagedInput,
}

#[async_trait::async_trait]
impl Pollable for BlobInputStream {
    async fn ready(&mut self) {}
}

impl InputStream for BlobInputStream {
    fn read(&mut self, size: usize) -> Result<Bytes, StreamError> {
        if self.done {
            return Err(StreamError::Closed);
        }
        let mut buf = Chunk::take();
        buf.truncate(size);
        match self.reader.read(&mut buf) {
            Ok(0) if !buf.is_empty() => {
                self.done = true;
                Err(StreamError::Closed)
            }
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from_owner(buf))
            }
            Err(e) => {
                self.done = true;
                Err(StreamError::LastOperationFailed(wasmtime::Error::msg(
                    self.damaged.reader_failed(&e),
                )))
            }
        }
    }
}

/// Whether `s` is a media type as RFC 6838 names them: `type/subtype`,
/// each 1 to 127 of letters, digits and `!#$&-^_.+`, starting with a letter
/// or digit (parameters after `;` are not allowed in descriptors).
fn is_media_type(s: &str) -> bool {
    let name = |part: &str| {
        (1..=127).contains(&part.len())
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(s.split_once('/'), Some((t, sub)) if name(t) && name(sub))
}

/// Converts an OCI descriptor to its WIT form.
pub fn to_wit(d: &outport_image::Descriptor) -> Descriptor {
    let pairs = |m: Option<&std::collections::HashMap<String, String>>| {
        let mut v: Vec<(String, String)> = m
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size(),
        annotations: pairs(d.annotations().as_ref()),
        platform: d.platform().as_ref().map(|p| Platform {
            architecture: p.architecture().to_string(),
            os: p.os().to_string(),
            os_version: p.os_version().clone(),
            os_features: p.os_features().clone().unwrap_or_default(),
            variant: p.variant().clone(),
        }),
        artifact_type: d.artifact_type().as_ref().map(|m| m.to_string()),
        urls: d.urls().clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_media_type;

    #[test]
    fn media_types() {
        for ok in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/octet-stream",
            "text/plain",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "application",
            "/json",
            "a/",
            "a/b/c",
            "a b/c",
            "a/b;x=1",
            "a/b\n",
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }
}
