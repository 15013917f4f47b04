//! `outport:exporter/image`: the image an instance exports, served from the
//! verified input. Blob bytes move host-side (`copy-to-file`,
//! `copy-to-stream`) or through a host input-stream (`read`); digests are
//! checked by `outport-image` as the bytes pass.
//!
//! The interface works on an instance's [`ImageCtx`] (its image, the blobs
//! it made, its output quota and scratch use) and its resource table,
//! through an [`ImageView`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use outport_image::{Blob, Image};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::OpenMode;
use wasmtime_wasi::filesystem::Descriptor as WasiDescriptor;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::blob_stream::{BlobInputStream, copy_to_stream};
use super::damaged::DamagedInput;
use super::types::{is_media_type, to_wit};
use super::uncompressed::{BlobResource, PendingView, VIEW, convert_all, start_views};
use crate::host::bindings::HostError;
use crate::host::bindings::image::{
    BlobRange, Compression, ConvertOptions, ConvertedLayer, Host, HostBlob, ImageSource, NewFile,
};
use crate::host::bindings::types::{Descriptor, Error};
use crate::image::BlobHandle;
use crate::run::context::RunContext;
use crate::sandbox::limits::{LimitReached, Limits, OutputQuota};
use crate::sandbox::text::truncate;

mod conversions;
mod copy_ranges;
mod views;
mod write_files;

/// What the `image` interface works on for one instance.
pub struct ImageCtx {
    /// The image being exported (`None` while only describing).
    image: Option<Arc<Image>>,
    /// What the run's instances share (`None` while only describing).
    run: Option<Arc<RunContext>>,
    /// Blobs this instance created with `put-blob` or `convert-layers`.
    own_blobs: HashMap<String, BlobHandle>,
    /// Bytes held by `put-blob` blobs.
    own_blob_bytes: u64,
    /// Bytes of converted layers handed to the instance (`scratch-bytes`).
    scratch_used: u64,
    /// Every uncompressed view handed to the instance, ready or not, by
    /// its layer's digest (one per layer, however often it is asked for):
    /// each is checked when the export ends, read or not.
    views: BTreeMap<String, Arc<PendingView>>,
    limits: Limits,
    deadline: Option<Instant>,
    /// Bytes the host writes for the instance (`output-bytes`).
    pub(crate) quota: OutputQuota,
    /// The first limit a host call of the instance reached: its failure is
    /// that limit even when the guest reports it as its own error.
    pub(crate) limit_hit: Option<LimitReached>,
    /// The first damaged blob served to the instance, if any.
    pub(crate) damaged: DamagedInput,
    /// Held by each open input-stream of a view kept lazily (one clone
    /// per stream): each may hold a decoder and its thread.
    lazy_streams: Arc<()>,
}

/// Input-streams of lazily kept views (compressed layers' views, which
/// decompress what is read on a thread of their own) an instance may hold
/// open at once: the host's threads and memory for them stay bounded
/// whatever the guest opens.
const LAZY_STREAMS: usize = 4;

impl ImageCtx {
    /// The context of an instance exporting `image` (with `run`, the run's
    /// shared state) under `limits`, until `deadline`.
    pub fn new(
        image: Option<Arc<Image>>,
        run: Option<Arc<RunContext>>,
        limits: &Limits,
        deadline: Option<Instant>,
    ) -> Self {
        ImageCtx {
            image,
            run,
            own_blobs: HashMap::new(),
            own_blob_bytes: 0,
            scratch_used: 0,
            views: BTreeMap::new(),
            limits: limits.clone(),
            deadline,
            quota: OutputQuota::new(limits.output_bytes),
            limit_hit: None,
            damaged: DamagedInput::default(),
            lazy_streams: Arc::new(()),
        }
    }

    /// The image, or a trap when the guest asks for it outside an export.
    fn image(&self) -> wasmtime::Result<&Arc<Image>> {
        self.image
            .as_ref()
            .ok_or_else(|| wasmtime::Error::msg("the image is only available during export"))
    }
}

impl crate::host::bindings::types::Host for ImageView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<Error> {
        err.into_guest()
    }
}

/// The `image` interface's view of an instance: its [`ImageCtx`] and its
/// resource table (blobs, streams and the guest's files).
pub struct ImageView<'a> {
    pub(crate) ctx: &'a mut ImageCtx,
    pub(crate) table: &'a mut ResourceTable,
}

/// Largest range of a verified blob `copy-range-to-file` copies on the
/// calling thread.
const INLINE_COPY: u64 = 1 << 20;

/// Largest blob `bytes` and `put-blob` handle in one piece.
pub const MAX_INLINE_BLOB: u64 = 16 << 20;

/// Threads one call that works on many files or ranges at once
/// (`write-files`, `copy-ranges`) takes at most.
const MAX_CALL_THREADS: usize = 4;

/// How many threads such a call works on: one per core, at most
/// [`MAX_CALL_THREADS`].
fn call_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.clamp(1, MAX_CALL_THREADS)
}

impl Host for ImageView<'_> {
    async fn root(&mut self) -> wasmtime::Result<Descriptor> {
        Ok(to_wit(self.ctx.image()?.root()))
    }

    async fn source(&mut self) -> wasmtime::Result<Option<ImageSource>> {
        let source = self.ctx.run.as_ref().and_then(|r| r.image_source.as_ref());
        Ok(source.map(|s| ImageSource {
            registry: s.registry.clone(),
            repository: s.repository.clone(),
        }))
    }

    async fn get_blob(&mut self, digest: String) -> Result<Resource<BlobResource>, HostError> {
        let image = self.ctx.image()?.clone();
        if !outport_image::is_sha256_digest(&digest) {
            return Err(HostError::from(Error::InvalidImage(format!(
                "get-blob: {:?} is not a digest (sha256: and 64 lowercase hex digits)",
                truncate(&digest, 100)
            ))));
        }
        let mut found = image
            .blob(&digest)
            .or_else(|| self.ctx.own_blobs.get(&digest))
            .cloned();
        if found.is_none() {
            // It may be a view still in the making.
            found = self.view_by_digest(&digest).await;
        }
        match found {
            Some(blob) => Ok(self.table.push(BlobResource::Blob(blob))?),
            None => Err(HostError::from(Error::InvalidImage(format!(
                "image {} has no blob {digest}",
                image.name()
            )))),
        }
    }

    async fn put_blob(
        &mut self,
        media_type: String,
        data: Vec<u8>,
    ) -> Result<Resource<BlobResource>, HostError> {
        if !is_media_type(&media_type) {
            return Err(HostError::from(Error::InvalidImage(format!(
                "put-blob: {:?} is not a media type (type/subtype)",
                truncate(&media_type, 100)
            ))));
        }
        if data.len() as u64 > MAX_INLINE_BLOB {
            let message = format!(
                "put-blob: {} bytes is over the {MAX_INLINE_BLOB}-byte limit",
                data.len()
            );
            return Err(self.limit(LimitReached {
                name: "put-blob",
                value: MAX_INLINE_BLOB,
                message,
            }));
        }
        let digest = outport_image::sha256_digest(&data);
        if !self.ctx.own_blobs.contains_key(&digest) {
            let total = self.ctx.own_blob_bytes + data.len() as u64;
            let limit = self.ctx.limits.put_blob_bytes;
            if total > limit {
                let message = format!(
                    "put-blob: blobs created by this instance would total {total} bytes, over the {limit}-byte limit"
                );
                return Err(self.limit(LimitReached {
                    name: "put-blob-bytes",
                    value: limit,
                    message,
                }));
            }
            self.ctx.own_blob_bytes = total;
        }
        let descriptor = match digest.parse::<oci_spec::image::Digest>() {
            Ok(d) => {
                outport_image::Descriptor::new(media_type.as_str().into(), data.len() as u64, d)
            }
            Err(e) => {
                return Err(HostError::from(Error::InvalidImage(format!(
                    "put-blob: {e}"
                ))));
            }
        };
        let blob = Arc::new(Blob::new_in_memory(descriptor, data.into()));
        self.ctx.own_blobs.insert(digest, blob.clone());
        Ok(self.table.push(BlobResource::Blob(blob))?)
    }

    async fn convert_layers(
        &mut self,
        layers: Vec<Resource<BlobResource>>,
        options: ConvertOptions,
    ) -> Result<Vec<Option<ConvertedLayer>>, HostError> {
        let Some(run) = self.ctx.run.clone() else {
            return Err(HostError::from(Error::Unsupported(
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
            return Err(HostError::from(Error::InvalidOption(format!(
                "convert-layers: {e}"
            ))));
        }
        let blobs = self.blobs_of(&layers).await?;
        let (parallel, budget) = self.conversion_budget(&options)?;
        // Layers convert in parallel, as many at once as there are cores
        // and as the instance's memory limit holds.
        let outcomes = convert_all(&run, blobs, options, budget, parallel).await?;
        self.take_converted(outcomes)
    }

    async fn copy_ranges(
        &mut self,
        blobs: Vec<Resource<BlobResource>>,
        ranges: Vec<BlobRange>,
        dest: Resource<WasiDescriptor>,
    ) -> Result<u64, HostError> {
        self.copy_ranges_call(blobs, ranges, dest).await
    }

    async fn uncompressed_layers(
        &mut self,
        layers: Vec<Resource<BlobResource>>,
    ) -> Result<Vec<Resource<BlobResource>>, HostError> {
        let Some(run) = self.ctx.run.clone() else {
            return Err(HostError::from(Error::Unsupported(
                "uncompressed-layers: only available during an export".into(),
            )));
        };
        let blobs = self.blobs_of(&layers).await?;
        let (parallel, budget) = self.conversion_budget(&VIEW)?;
        // The views are made in the background: each is ready when its own
        // layer is decompressed and checked, and any use of it waits. A
        // layer asked for again gets the view it has: one per layer.
        let digest = |blob: &BlobHandle| blob.descriptor().digest().to_string();
        let mut asked = HashSet::new();
        let fresh: Vec<BlobHandle> = blobs
            .iter()
            .filter(|blob| {
                !self.ctx.views.contains_key(&digest(blob)) && asked.insert(digest(blob))
            })
            .cloned()
            .collect();
        let started = start_views(&run, fresh, budget, parallel);
        for view in started {
            self.ctx.views.insert(digest(&view.layer), view);
        }
        let mut views = Vec::with_capacity(blobs.len());
        for blob in &blobs {
            let view = self.ctx.views.get(&digest(blob)).cloned();
            let view = view.ok_or_else(|| wasmtime::Error::msg("a view was not started"))?;
            views.push(self.table.push(BlobResource::View(view))?);
        }
        Ok(views)
    }
}

impl HostBlob for ImageView<'_> {
    async fn descriptor(&mut self, this: Resource<BlobResource>) -> wasmtime::Result<Descriptor> {
        // A view's descriptor is known once the view is ready; a view that
        // failed has none, and the call traps with its error.
        match self.blob_of(&this).await {
            Ok(blob) => Ok(to_wit(blob.descriptor())),
            Err(e) => Err(match e.into_guest() {
                Ok(error) => wasmtime::Error::msg(format!("blob.descriptor: {error}")),
                Err(trap) => trap,
            }),
        }
    }

    async fn bytes(&mut self, this: Resource<BlobResource>) -> Result<Vec<u8>, HostError> {
        let blob = self.blob_of(&this).await?;
        let result = tokio::task::spawn_blocking(move || blob.read_all(MAX_INLINE_BLOB)).await?;
        self.blob_result(result)
    }

    async fn read(
        &mut self,
        this: Resource<BlobResource>,
    ) -> Result<Resource<DynInputStream>, HostError> {
        let blob = self.blob_of(&this).await?;
        // A layer still to fetch (a registry's) is fetched off the async
        // threads before the guest reads it.
        if !blob.is_present() {
            let fetched = blob.clone();
            let result = tokio::task::spawn_blocking(move || fetched.fetch()).await?;
            self.blob_result(result)?;
        }
        let slot = if blob.is_lazy() {
            if Arc::strong_count(&self.ctx.lazy_streams) > LAZY_STREAMS {
                return Err(Error::Limit(format!(
                    "read: at most {LAZY_STREAMS} streams of compressed layers' uncompressed views may be open at once (each decompresses on a thread of its own); drop one first"
                ))
                .into());
            }
            Some(Arc::clone(&self.ctx.lazy_streams))
        } else {
            None
        };
        let stream: DynInputStream = Box::new(BlobInputStream {
            reader: blob.open(),
            done: false,
            damaged: self.ctx.damaged.clone(),
            _slot: slot,
        });
        Ok(self.table.push(stream)?)
    }

    async fn copy_to_file(
        &mut self,
        this: Resource<BlobResource>,
        dest: Resource<WasiDescriptor>,
        offset: u64,
    ) -> Result<u64, HostError> {
        let blob = self.blob_of(&this).await?;
        let file = self.writable_file(&dest, "copy-to-file")?;
        let charged = self.ctx.quota.charge(blob.size());
        charged.map_err(|hit| self.limit(hit))?;
        let result = tokio::task::spawn_blocking(move || blob.copy_to_file(&file, offset)).await?;
        self.blob_result(result)
    }

    async fn copy_range_to_file(
        &mut self,
        this: Resource<BlobResource>,
        start: u64,
        len: u64,
        dest: Resource<WasiDescriptor>,
        offset: u64,
    ) -> Result<u64, HostError> {
        let blob = self.blob_of(&this).await?;
        let file = self.writable_file(&dest, "copy-range-to-file")?;
        // A range past the blob's end is refused before anything is charged.
        if let Err(e) = blob.check_range(start, len) {
            return self.blob_result(Err(e));
        }
        let charged = self.ctx.quota.charge(len);
        charged.map_err(|hit| self.limit(hit))?;
        // A small range of a verified blob is one `copy_file_range`: done
        // here, as wasmtime-wasi does the file I/O of a store allowed to
        // block, rather than a hop to a blocking thread and back for each
        // file `local` and `tar` write.
        let result = if blob.is_verified() && len <= INLINE_COPY {
            blob.copy_range_to_file(start, len, &file, offset)
        } else {
            tokio::task::spawn_blocking(move || blob.copy_range_to_file(start, len, &file, offset))
                .await?
        };
        self.blob_result(result)
    }

    async fn copy_to_stream(
        &mut self,
        this: Resource<BlobResource>,
        dest: Resource<DynOutputStream>,
    ) -> Result<u64, HostError> {
        let blob = self.blob_of(&this).await?;
        let charged = self.ctx.quota.charge(blob.size());
        charged.map_err(|hit| self.limit(hit))?;
        // Shares verification with concurrent consumers of the same blob
        // (other instances): its bytes are hashed once.
        let reader = tokio::task::spawn_blocking(move || blob.open_shared()).await?;
        let damaged = self.ctx.damaged.clone();
        let stream = self.table.get_mut(&dest)?;
        Ok(copy_to_stream(reader, stream.as_mut(), &damaged).await?)
    }

    async fn write_files(
        &mut self,
        this: Resource<BlobResource>,
        dir: Resource<WasiDescriptor>,
        files: Vec<NewFile>,
    ) -> Result<u64, HostError> {
        self.write_files_call(this, dir, files).await
    }

    async fn drop(&mut self, this: Resource<BlobResource>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl ImageView<'_> {
    /// The guest's view of a blob call's outcome; a damaged blob is
    /// recorded (see [`DamagedInput`]).
    fn blob_result<T>(&self, result: Result<T, outport_image::Error>) -> Result<T, HostError> {
        result.map_err(|e| {
            self.ctx.damaged.note(&e);
            Error::InvalidImage(e.to_string()).into()
        })
    }

    /// The file behind `dest` if the guest opened it for writing; else the
    /// error `call` returns.
    fn writable_file(
        &self,
        dest: &Resource<WasiDescriptor>,
        call: &str,
    ) -> Result<Arc<std::fs::File>, HostError> {
        match self.table.get(dest)? {
            WasiDescriptor::File(f)
                if f.open_mode.contains(OpenMode::WRITE) && !f.perms.write_not_permitted() =>
            {
                Ok(f.file.clone())
            }
            WasiDescriptor::File(_) => {
                Err(Error::Io(format!("{call}: the file is not open for writing")).into())
            }
            WasiDescriptor::Dir(_) => {
                Err(Error::Io(format!("{call}: the descriptor is a directory")).into())
            }
        }
    }
}
