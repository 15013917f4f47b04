//! BuildKit's cache config (`application/vnd.buildkit.cacheconfig.v0`):
//! `layers` (each a blob and the index of its parent layer, `-1` for none)
//! and `records` (a cache key `digest`, its `inputs` linking to other
//! records, and its results: `layers` naming one layer each, `chains`
//! naming several). Field names are BuildKit's.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Media type of the cache config blob.
pub const MEDIA_TYPE: &str = outport_oci::media::BUILDKIT_CACHE_CONFIG;

/// A cache config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// The cache's layers, in the order results refer to them.
    #[serde(default)]
    pub layers: Vec<CacheLayer>,
    /// The cache records.
    #[serde(default)]
    pub records: Vec<CacheRecord>,
}

/// One layer: a blob stacked on its parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The blob's digest.
    pub blob: String,
    /// Index of the parent layer in `layers`, `-1` for a base layer.
    #[serde(default = "no_parent")]
    pub parent: i64,
    /// BuildKit's layer annotations, kept as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Value>,
}

fn no_parent() -> i64 {
    -1
}

/// One record: a cache key and what it resolves to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Results, one layer each (the layer and its parents).
    #[serde(rename = "layers", default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CacheResult>,
    /// Results made of several layers.
    #[serde(rename = "chains", default, skip_serializing_if = "Vec::is_empty")]
    pub chained_results: Vec<ChainedResult>,
    /// The record's cache key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// For each input of the operation, the records that can provide it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<CacheInput>>,
}

/// A result naming one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheResult {
    /// Index in `layers`.
    pub layer: i64,
    /// When the result was made.
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A result naming several layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainedResult {
    /// Indexes in `layers`.
    pub layers: Vec<i64>,
    /// When the result was made.
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A link from a record's input to another record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheInput {
    /// Selector of the input (a path), empty for the whole result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Index of the record in `records`.
    pub link: i64,
}

/// How much of a cache to keep: BuildKit's `mode=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Only the results of the final records (those no record takes as an
    /// input) and the layers they need.
    #[default]
    Min,
    /// Every record's results.
    Max,
}

impl Mode {
    /// Parses `min` or `max`.
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "min" => Some(Mode::Min),
            "max" => Some(Mode::Max),
            _ => None,
        }
    }
}

/// An index of a cache config that points outside it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A layer's parent is not a layer.
    #[error("layer {layer} has parent {parent} out of range")]
    Parent {
        /// The layer.
        layer: usize,
        /// Its parent.
        parent: i64,
    },
    /// A record's result names a layer that is not there.
    #[error("record {record} names layer {layer}, out of range")]
    Layer {
        /// The record.
        record: usize,
        /// The layer it names.
        layer: i64,
    },
    /// A record's input links to a record that is not there.
    #[error("record {record} links to record {link}, out of range")]
    Link {
        /// The record.
        record: usize,
        /// The record it links to.
        link: i64,
    },
}

impl CacheConfig {
    /// Checks every index (parents, results, links) points inside the
    /// config; returns the first problem.
    pub fn check(&self) -> Result<(), ConfigError> {
        let layers = self.layers.len() as i64;
        let records = self.records.len() as i64;
        let layer_ok = |i: i64| (0..layers).contains(&i);
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.parent != -1 && !layer_ok(layer.parent) {
                return Err(ConfigError::Parent {
                    layer: i,
                    parent: layer.parent,
                });
            }
        }
        for (i, record) in self.records.iter().enumerate() {
            let results = record.results.iter().map(|r| r.layer);
            let chained = record.chained_results.iter().flat_map(|c| c.layers.clone());
            if let Some(bad) = results.chain(chained).find(|&l| !layer_ok(l)) {
                return Err(ConfigError::Layer {
                    record: i,
                    layer: bad,
                });
            }
            let links = record.inputs.iter().flatten().map(|input| input.link);
            if let Some(bad) = links.clone().find(|l| !(0..records).contains(l)) {
                return Err(ConfigError::Link {
                    record: i,
                    link: bad,
                });
            }
        }
        Ok(())
    }

    /// The config `mode` keeps, or `None` when it keeps everything (then
    /// the original bytes stay as they are).
    pub fn apply_mode(&self, mode: Mode) -> Option<CacheConfig> {
        if mode == Mode::Max {
            return None;
        }
        let linked: BTreeSet<i64> = self
            .records
            .iter()
            .flat_map(|r| r.inputs.iter().flatten().map(|i| i.link))
            .collect();
        let mut records = self.records.clone();
        for (i, record) in records.iter_mut().enumerate() {
            if linked.contains(&(i as i64)) {
                record.results.clear();
                record.chained_results.clear();
            }
        }
        // The layers still named, with their parents.
        let mut used = BTreeSet::new();
        let mut pending: Vec<i64> = records
            .iter()
            .flat_map(|r| {
                let chained = r.chained_results.iter().flat_map(|c| c.layers.clone());
                r.results.iter().map(|x| x.layer).chain(chained)
            })
            .collect();
        while let Some(l) = pending.pop() {
            if l >= 0 && used.insert(l) {
                pending.push(self.layers[l as usize].parent);
            }
        }
        if records == self.records && used.len() == self.layers.len() {
            return None;
        }
        let renumber = |old: i64| used.iter().position(|&u| u == old).map_or(-1, |p| p as i64);
        let layers = used
            .iter()
            .map(|&l| {
                let mut layer = self.layers[l as usize].clone();
                layer.parent = if layer.parent < 0 {
                    -1
                } else {
                    renumber(layer.parent)
                };
                layer
            })
            .collect();
        for record in &mut records {
            for r in &mut record.results {
                r.layer = renumber(r.layer);
            }
            for c in &mut record.chained_results {
                c.layers = c.layers.iter().map(|&l| renumber(l)).collect();
            }
        }
        Some(CacheConfig { layers, records })
    }

    /// The cache of an image's layers (bottom first): one record per layer,
    /// record `i` standing for the stack of layers `0..=i` and taking record
    /// `i-1` as its input. Record digests are derived deterministically
    /// (see [`record_digest`]). `mode=max` gives every record its result,
    /// `mode=min` only the last one.
    pub fn from_layers(layers: &[String], mode: Mode) -> CacheConfig {
        let mut config = CacheConfig::default();
        let mut previous: Option<String> = None;
        for (i, blob) in layers.iter().enumerate() {
            let index = i as i64;
            config.layers.push(CacheLayer {
                blob: blob.clone(),
                parent: index - 1,
                annotations: None,
            });
            let digest = record_digest(previous.as_deref(), blob);
            let last = i + 1 == layers.len();
            config.records.push(CacheRecord {
                results: if last || mode == Mode::Max {
                    vec![CacheResult {
                        layer: index,
                        created_at: None,
                    }]
                } else {
                    Vec::new()
                },
                chained_results: Vec::new(),
                digest: digest.clone(),
                inputs: if i == 0 {
                    Vec::new()
                } else {
                    vec![vec![CacheInput {
                        selector: String::new(),
                        link: index - 1,
                    }]]
                },
            });
            previous = Some(digest);
        }
        config
    }

    /// Adds `other`'s layers and records (e.g. another platform's chain):
    /// a layer already present (same blob on the same parent) and a record
    /// whose digest is already present are not added again. `other`'s
    /// layers must come after their parents, as [`CacheConfig::from_layers`]
    /// makes them.
    pub fn merge(&mut self, other: CacheConfig) {
        let mut layer_map: Vec<i64> = Vec::with_capacity(other.layers.len());
        for mut layer in other.layers {
            if layer.parent >= 0 {
                layer.parent = layer_map[layer.parent as usize];
            }
            let index = match self
                .layers
                .iter()
                .position(|l| l.blob == layer.blob && l.parent == layer.parent)
            {
                Some(i) => i as i64,
                None => {
                    self.layers.push(layer);
                    self.layers.len() as i64 - 1
                }
            };
            layer_map.push(index);
        }
        let mut record_map: Vec<i64> = Vec::with_capacity(other.records.len());
        for mut record in other.records {
            if let Some(i) = self.records.iter().position(|r| r.digest == record.digest) {
                // The same key: keep the results either side has.
                let mapped = record.results.iter().map(|r| CacheResult {
                    layer: layer_map[r.layer as usize],
                    created_at: r.created_at.clone(),
                });
                for result in mapped.collect::<Vec<_>>() {
                    if !self.records[i].results.contains(&result) {
                        self.records[i].results.push(result);
                    }
                }
                record_map.push(i as i64);
                continue;
            }
            for r in &mut record.results {
                r.layer = layer_map[r.layer as usize];
            }
            for c in &mut record.chained_results {
                c.layers = c.layers.iter().map(|&l| layer_map[l as usize]).collect();
            }
            for input in record.inputs.iter_mut().flatten() {
                input.link = record_map[input.link as usize];
            }
            self.records.push(record);
            record_map.push(self.records.len() as i64 - 1);
        }
    }
}

/// The cache key of the record for `layer` stacked on the record `parent`:
/// `sha256:` of the text `outport.cache.layer.v0 PARENT LAYER` (`PARENT`
/// being `-` for a base layer). The same layers always give the same keys.
pub fn record_digest(parent: Option<&str>, layer: &str) -> String {
    let text = format!("outport.cache.layer.v0 {} {layer}", parent.unwrap_or("-"));
    outport_image::sha256_digest(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| outport_image::sha256_digest(&[i as u8]))
            .collect()
    }

    #[test]
    fn image_chain_min_has_one_result_max_has_all() {
        let min = CacheConfig::from_layers(&layers(3), Mode::Min);
        assert_eq!(min.records.len(), 3);
        let with_results = min.records.iter().filter(|r| !r.results.is_empty()).count();
        assert_eq!(with_results, 1);
        assert_eq!(min.records[2].inputs[0][0].link, 1);
        assert_eq!(min.layers[2].parent, 1);
        let max = CacheConfig::from_layers(&layers(3), Mode::Max);
        assert!(max.records.iter().all(|r| r.results.len() == 1));
        assert_eq!(min.records[1].digest, max.records[1].digest);
        min.check().unwrap();
    }

    #[test]
    fn min_drops_intermediate_results_and_their_layers() {
        let mut max = CacheConfig::from_layers(&layers(2), Mode::Max);
        // An intermediate layer not under the final one.
        max.layers.push(CacheLayer {
            blob: outport_image::sha256_digest(b"side"),
            parent: -1,
            annotations: None,
        });
        max.records[0].results = vec![CacheResult {
            layer: 2,
            created_at: None,
        }];
        let min = max.apply_mode(Mode::Min).unwrap();
        assert_eq!(min.layers.len(), 2);
        assert!(min.records[0].results.is_empty());
        assert_eq!(min.records[1].results[0].layer, 1);
        min.check().unwrap();
        assert!(max.apply_mode(Mode::Max).is_none());
        let already_min = CacheConfig::from_layers(&layers(2), Mode::Min);
        assert!(already_min.apply_mode(Mode::Min).is_none());
    }

    #[test]
    fn merging_chains_shares_the_common_base() {
        let all = layers(3);
        let mut merged = CacheConfig::from_layers(&all[..2], Mode::Max);
        merged.merge(CacheConfig::from_layers(
            &[all[0].clone(), all[2].clone()],
            Mode::Max,
        ));
        assert_eq!(merged.layers.len(), 3);
        assert_eq!(merged.records.len(), 3);
        assert_eq!(merged.layers[2].parent, 0);
        assert_eq!(merged.records[2].inputs[0][0].link, 0);
        merged.check().unwrap();
    }

    #[test]
    fn out_of_range_indexes_are_refused() {
        let mut c = CacheConfig::from_layers(&layers(2), Mode::Max);
        c.records[1].inputs[0][0].link = 7;
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .contains("links to record 7")
        );
    }
}
