//! The cache instances of a session (`--export-cache`, `--import-cache`):
//! what a cache export stores, the runtime's own options of each instance
//! (`mode`, `ignore-error`, `src`), and the image each cache mode
//! presents.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use outport_image::Image;

use crate::cache::Cache;
use crate::cache::config::Mode;
use crate::engine::LoadedCacheBackend;
use crate::error::Error;
use crate::host::bindings::types::CacheOperation;
use crate::instance::{InstanceSpec, Role};
use crate::run::tasks::Launch;

/// What a cache export stores.
#[derive(Clone, Debug)]
pub enum CacheSource {
    /// The cache derived from an image's layers.
    Image(Arc<Image>),
    /// A cache read from a BuildKit cache directory.
    Cache(Cache),
}

/// Cache instances checked and loaded by
/// [`Session::prepare_cache`](crate::run::session::Session::prepare_cache).
pub struct CachePlan {
    pub(super) instances: Vec<CacheInstance>,
    pub(super) operation: CacheOperation,
}

impl Default for CachePlan {
    fn default() -> Self {
        CachePlan {
            instances: Vec::new(),
            operation: CacheOperation::ExportCache,
        }
    }
}

impl CachePlan {
    /// The instance IDs, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.instances.iter().map(|i| i.spec.id.as_str())
    }
}

/// One cache instance: its spec, its backend, its runtime options.
pub(super) struct CacheInstance {
    pub(super) spec: InstanceSpec,
    pub(super) backend: LoadedCacheBackend,
    pub(super) choice: CacheChoice,
}

impl CacheInstance {
    /// The instance as it runs in a cache `operation`: an export is given
    /// the image of its mode from `images`, an import its `src=`.
    pub(super) fn launch(
        self,
        operation: CacheOperation,
        images: &HashMap<Mode, Arc<Image>>,
    ) -> Launch {
        let (role, image) = match operation {
            CacheOperation::ExportCache => (
                Role::CacheExport(self.backend),
                images.get(&self.choice.mode).cloned(),
            ),
            CacheOperation::ImportCache => (Role::CacheImport(self.backend, self.choice.src), None),
        };
        Launch {
            spec: self.spec,
            role,
            image,
            ignore_error: self.choice.ignore_error,
        }
    }
}

/// The runtime's own options of a cache instance.
#[derive(Clone, Debug, Default)]
pub(super) struct CacheChoice {
    mode: Mode,
    ignore_error: bool,
    src: Option<PathBuf>,
}

impl CacheChoice {
    /// Takes `mode=`, `ignore-error=` and (imports) `src=` out of `options`.
    pub(super) fn take(
        what: &str,
        options: &mut Vec<(String, String)>,
        operation: CacheOperation,
    ) -> Result<CacheChoice, Error> {
        let mut choice = CacheChoice::default();
        let mut seen: Vec<String> = Vec::new();
        let mut error = None;
        let import = operation == CacheOperation::ImportCache;
        options.retain(|(k, v)| {
            let bad = |m: String| Some(format!("{what}: {m}"));
            let problem = match k.as_str() {
                _ if seen.contains(k) && matches!(k.as_str(), "mode" | "ignore-error" | "src") => {
                    bad(format!("{k}= is given more than once"))
                }
                "mode" if !import => match Mode::parse(v) {
                    Some(m) => {
                        choice.mode = m;
                        None
                    }
                    None => bad(format!("mode={v:?}: expected min or max")),
                },
                "ignore-error" => match v.as_str() {
                    "true" => {
                        choice.ignore_error = true;
                        None
                    }
                    "false" => None,
                    _ => bad(format!("ignore-error={v:?}: expected true or false")),
                },
                "src" if import => {
                    choice.src = Some(PathBuf::from(v));
                    None
                }
                _ => return true,
            };
            seen.push(k.clone());
            if let Some(p) = problem {
                error.get_or_insert(p);
            }
            false
        });
        match error {
            Some(e) => Err(Error::Usage(e)),
            None => Ok(choice),
        }
    }
}

/// The image each cache mode presents to the cache instances of `plan`.
pub(super) fn cache_images(
    plan: &CachePlan,
    source: Option<&CacheSource>,
) -> Result<HashMap<Mode, Arc<Image>>, Error> {
    let mut images = HashMap::new();
    if plan.operation != CacheOperation::ExportCache {
        return Ok(images);
    }
    for instance in &plan.instances {
        let mode = instance.choice.mode;
        if images.contains_key(&mode) {
            continue;
        }
        let cache = match source {
            Some(CacheSource::Image(image)) => Cache::from_image(image, mode)?,
            Some(CacheSource::Cache(cache)) => cache.clone().with_mode(mode),
            None => {
                return Err(Error::Usage(
                    "a cache export needs a cache or an image".into(),
                ));
            }
        };
        images.insert(mode, Arc::new(cache.to_image()));
    }
    Ok(images)
}
