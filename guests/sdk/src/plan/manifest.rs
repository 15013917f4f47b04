//! Rewriting an image manifest: its layers converted by the host or
//! retyped, its config given the new diff IDs and clamped times, its media
//! type and annotations set.

use serde_json::{Map, Value};

use super::edit::{clamp_created, put, set_annotations};
use super::walker::{Node, Walker};
use crate::bindings::outport::exporter::image::{self, Blob, ConvertOptions};
use crate::bindings::outport::exporter::types::Error;
use crate::walk::{read_json, str_field};
use crate::{log, media};

/// A manifest's config descriptor as the input has it, and the slot its
/// blob takes in the walk.
struct ConfigRef {
    slot: usize,
    digest: String,
    media_type: String,
}

impl Walker<'_> {
    /// Visits manifest `digest` (its blob `blob`, of type `media_type`);
    /// `annotate`: not an attestation manifest, so the image options apply.
    /// Returns the manifest's blob (new when anything changed), its media
    /// type and its config's digest.
    pub(super) fn manifest(
        &mut self,
        blob: Blob,
        media_type: &str,
        digest: &str,
        annotate: bool,
    ) -> Result<(Blob, String, Option<String>), Error> {
        let mut doc = read_json(&blob, digest)?;
        let what = format!("manifest {digest}");
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| Error::InvalidImage(format!("{what} is not a JSON object")))?;
        if !annotate && self.opts.oci_media_types == Some(false) {
            return Err(Error::Unsupported(format!(
                "option \"oci-mediatypes=false\": the image has attestation manifest {digest}, \
                 which needs OCI media types"
            )));
        }
        let target = if annotate {
            self.target_type(media_type, &what)?
        } else {
            media_type.to_owned()
        };
        let mut changed = target != media_type;
        // The config's slot comes before the layers'; it is filled once
        // the layers say whether the config changes.
        let config_slot = self.slots.len();
        self.slots.push(None);
        let config = config_ref(obj, config_slot, &what)?;
        let (diff_ids, layers_changed) = self.manifest_layers(obj, &target, annotate, &what)?;
        changed |= layers_changed;
        let (config_digest, config_changed) =
            self.manifest_config(obj, config, &diff_ids, annotate, &what)?;
        changed |= config_changed;
        changed |= self.follow_subject(obj);
        if target != media_type {
            retype(obj, &target, &what);
        }
        if annotate && !self.opts.manifest.is_empty() {
            annotate_manifest(obj, &self.opts.manifest, &target, &what)?;
            changed = true;
        }
        if !changed {
            return Ok((blob, target, Some(config_digest)));
        }
        let new = put(&target, &doc, &what)?;
        Ok((new, target, Some(config_digest)))
    }

    /// The layers of manifest `obj`, of media type `target` in the output:
    /// converted when the options say so (`annotate`). Returns the new diff
    /// IDs by layer and whether a layer descriptor changed.
    fn manifest_layers(
        &mut self,
        obj: &mut Map<String, Value>,
        target: &str,
        annotate: bool,
        what: &str,
    ) -> Result<(Vec<Option<String>>, bool), Error> {
        let Some(layers) = obj.get_mut("layers") else {
            return Ok((Vec::new(), false));
        };
        let layers = layers
            .as_array_mut()
            .ok_or_else(|| Error::InvalidImage(format!("{what}: \"layers\" is not an array")))?;
        let convert = self.opts.layers.filter(|_| annotate);
        let docker = media::is_docker(target);
        self.layers(layers, convert, docker, what)
    }

    /// The config of manifest `obj`: rewritten (new diff IDs, clamped
    /// times) or kept, its descriptor in the manifest updated and its media
    /// type set for the output when the options apply (`annotate`). Returns
    /// its digest in the output and whether the descriptor changed.
    fn manifest_config(
        &mut self,
        obj: &mut Map<String, Value>,
        input: ConfigRef,
        diff_ids: &[Option<String>],
        annotate: bool,
        what: &str,
    ) -> Result<(String, bool), Error> {
        let epoch = self
            .opts
            .layers
            .and_then(|l| l.rewrite_timestamp)
            .filter(|_| annotate);
        let new_config = self.config(&input.digest, diff_ids, epoch)?;
        let config = obj
            .get_mut("config")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::InvalidImage(format!("{what} has no config")))?;
        let mut changed = false;
        let digest = match new_config {
            Some(new) => {
                let d = new.descriptor();
                config.insert("digest".into(), Value::String(d.digest.clone()));
                config.insert("size".into(), Value::from(d.size));
                self.slots[input.slot] = Some(new);
                changed = true;
                d.digest
            }
            None => {
                self.keep_config(&input)?;
                input.digest
            }
        };
        if annotate {
            let new_type = self.target_type(&input.media_type, what)?;
            if new_type != input.media_type {
                config.insert("mediaType".into(), Value::String(new_type));
                changed = true;
            }
        }
        Ok((digest, changed))
    }

    /// Puts the input's config blob in its slot, unless already visited.
    fn keep_config(&mut self, input: &ConfigRef) -> Result<(), Error> {
        if self.visited.contains_key(&input.digest) {
            return Ok(());
        }
        let blob = image::get_blob(&input.digest)?;
        self.visited.insert(
            input.digest.clone(),
            Node {
                media_type: input.media_type.clone(),
                digest: input.digest.clone(),
                size: blob.descriptor().size,
                config_digest: None,
            },
        );
        self.slots[input.slot] = Some(blob);
        Ok(())
    }

    /// The layers of a manifest: converted by the host when `convert` says
    /// so, in-toto statements pointed at what their subjects became, their
    /// media types set for the manifest's family (`docker`).
    /// Returns the new diff IDs by layer (none: unchanged) and whether a
    /// descriptor changed.
    fn layers(
        &mut self,
        layers: &mut [Value],
        convert: Option<ConvertOptions>,
        docker: bool,
        what: &str,
    ) -> Result<(Vec<Option<String>>, bool), Error> {
        let mut diff_ids = vec![None; layers.len()];
        let mut changed = false;
        let mut to_convert = Vec::new();
        let mut followed = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let layer = layer
                .as_object()
                .ok_or_else(|| Error::InvalidImage(format!("{what}: a layer is not an object")))?;
            let media_type = str_field(layer, "mediaType", what)?;
            if convert.is_some() && media::is_convertible_layer(media_type) {
                let digest = str_field(layer, "digest", what)?;
                to_convert.push((i, digest.to_owned(), image::get_blob(digest)?));
            } else if let Some(statement) = self.follow_statement(layer, what)? {
                let digest = str_field(layer, "digest", what)?;
                followed.push((i, digest.to_owned(), statement));
            } else {
                self.leaf(layer, what)?;
            }
        }
        for (i, digest, statement) in followed {
            let d = statement.descriptor();
            if let Some(layer) = layers[i].as_object_mut() {
                layer.insert("digest".into(), Value::String(d.digest.clone()));
                layer.insert("size".into(), Value::from(d.size));
            }
            // A statement is not compressed: its diff ID is its digest.
            diff_ids[i] = Some(d.digest);
            self.add_leaf(&digest, statement);
            changed = true;
        }
        if let Some(options) = convert.filter(|_| !to_convert.is_empty()) {
            let handles: Vec<&Blob> = to_convert.iter().map(|(_, _, b)| b).collect();
            let results = image::convert_layers(&handles, options)?;
            for ((i, digest, old), result) in to_convert.into_iter().zip(results) {
                let Some(converted) = result else {
                    if !self.visited.contains_key(&digest) {
                        self.add_leaf(&digest, old);
                    }
                    continue;
                };
                let d = converted.blob.descriptor();
                // The host gives OCI types; a docker manifest needs docker's.
                let media_type = media::convert(&d.media_type, !docker)
                    .map_err(|e| Error::Unsupported(format!("{what}: {e}")))?
                    .to_owned();
                if let Some(layer) = layers[i].as_object_mut() {
                    layer.insert("mediaType".into(), Value::String(media_type));
                    layer.insert("digest".into(), Value::String(d.digest.clone()));
                    layer.insert("size".into(), Value::from(d.size));
                }
                log::debug(&format!(
                    "{what}: layer {digest} converted to {} ({})",
                    d.digest, d.media_type
                ));
                diff_ids[i] = Some(converted.diff_id);
                self.add_leaf(&d.digest, converted.blob);
                changed = true;
            }
        }
        if convert.is_none() && self.opts.oci_media_types.is_none() {
            return Ok((diff_ids, changed));
        }
        for layer in layers.iter_mut().filter_map(Value::as_object_mut) {
            let Some(media_type) = layer.get("mediaType").and_then(Value::as_str) else {
                continue;
            };
            let new = media::convert(media_type, !docker)
                .map_err(|e| Error::Unsupported(format!("{what}: {e}")))?;
            if new != media_type {
                let new = new.to_owned();
                layer.insert("mediaType".into(), Value::String(new));
                changed = true;
            }
        }
        Ok((diff_ids, changed))
    }

    /// The config `digest` with the new `diff_ids` and, with an `epoch`,
    /// its `created` times clamped; none when nothing changes.
    fn config(
        &mut self,
        digest: &str,
        diff_ids: &[Option<String>],
        epoch: Option<u64>,
    ) -> Result<Option<Blob>, Error> {
        if epoch.is_none() && diff_ids.iter().all(Option::is_none) {
            return Ok(None);
        }
        let blob = image::get_blob(digest)?;
        let what = format!("config {digest}");
        let mut doc = read_json(&blob, &what)?;
        let mut changed = false;
        if let Some(ids) = doc
            .pointer_mut("/rootfs/diff_ids")
            .and_then(Value::as_array_mut)
        {
            for (id, new) in ids.iter_mut().zip(diff_ids) {
                if let Some(new) = new
                    && id.as_str() != Some(new)
                {
                    *id = Value::String(new.clone());
                    changed = true;
                }
            }
        }
        if let Some(epoch) = epoch {
            changed |= clamp_created(&mut doc, epoch, &what)?;
        }
        if !changed {
            return Ok(None);
        }
        put(&blob.descriptor().media_type, &doc, &what).map(Some)
    }
}

/// The config descriptor of manifest `obj` (found in `what`), its blob to
/// go in walk slot `slot`.
fn config_ref(obj: &Map<String, Value>, slot: usize, what: &str) -> Result<ConfigRef, Error> {
    let config = obj
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::InvalidImage(format!("{what} has no config")))?;
    Ok(ConfigRef {
        slot,
        digest: str_field(config, "digest", what)?.to_owned(),
        media_type: str_field(config, "mediaType", what)?.to_owned(),
    })
}

/// Sets the manifest's media type to `target`; docker's has no
/// annotations, so they are dropped (and said so).
fn retype(obj: &mut Map<String, Value>, target: &str, what: &str) {
    obj.insert("mediaType".into(), Value::String(target.to_owned()));
    if media::is_docker(target) && obj.remove("annotations").is_some() {
        log::info(&format!(
            "{what}: its annotations are dropped (docker media types have none)"
        ));
    }
}

/// Sets the asked manifest annotations `ann`: an error when the manifest
/// has docker media type `target`, which has none.
fn annotate_manifest(
    obj: &mut Map<String, Value>,
    ann: &[(String, String)],
    target: &str,
    what: &str,
) -> Result<(), Error> {
    if media::is_docker(target) {
        return Err(Error::Unsupported(format!(
            "cannot set manifest annotations on {what}: it has docker media type \
             {target}, which has no annotations"
        )));
    }
    set_annotations(obj, ann, what)
}
