//! Options common to the image exporters (`oci`, `docker`, `registry`), as
//! BuildKit's: layer compression (`compression`, `compression-level`,
//! `force-compression`), media types (`oci-mediatypes`), reproducible
//! timestamps (`rewrite-timestamp`) and annotations (`annotation*`).
//!
//! [`SPECS`] goes into an exporter's option table; [`ImageOptions::parse`]
//! checks values and combinations in `validate`; [`ImageOptions::rewrites`]
//! gives the [`Rewrites`] a [`crate::Plan`] applies, layers converted by the
//! host (`image::convert-layers`).

use crate::bindings::outport::exporter::image::{Compression, ConvertOptions};
use crate::bindings::outport::exporter::types::Error;
use crate::options::{OptionSpec, Parsed};
use crate::plan::Rewrites;

/// The image options, as `describe` lists them and `validate` accepts them.
pub const SPECS: &[OptionSpec] = &[
    OptionSpec::once(
        "compression",
        "uncompressed, gzip or zstd: the compression of uncompressed layers (of every layer \
         with force-compression=true); without it layers are written as they are",
    ),
    OptionSpec::once(
        "compression-level",
        "level of the compression: 0-9 for gzip, 1-22 for zstd",
    ),
    OptionSpec::once(
        "force-compression",
        "true: recompress compressed layers too, to the requested compression",
    )
    .default("false"),
    OptionSpec::once(
        "oci-mediatypes",
        "true: OCI media types; false: docker schema2 media types (no zstd, no annotations); \
         without it the input's media types are kept",
    ),
    OptionSpec::once(
        "rewrite-timestamp",
        "true: clamp file times in the layers, and the config's created times, to the source \
         date epoch (--source-date-epoch or SOURCE_DATE_EPOCH), for reproducible digests",
    )
    .default("false"),
    OptionSpec::repeatable(
        "annotation.KEY",
        "set annotation KEY in every image manifest",
    ),
    OptionSpec::repeatable("annotation-manifest.KEY", "same as annotation.KEY"),
    OptionSpec::repeatable(
        "annotation-index.KEY",
        "set annotation KEY in the image index (the image must have one)",
    ),
    OptionSpec::repeatable(
        "annotation-manifest-descriptor.KEY",
        "set annotation KEY on the descriptors of the image manifests (in the index, \
         or on the root descriptor of a single-manifest image)",
    ),
    OptionSpec::repeatable(
        "annotation-index-descriptor.KEY",
        "set annotation KEY on the image's entries in index.json",
    ),
];

/// Which annotation list an option prefix fills.
#[derive(Clone, Copy)]
enum Target {
    Manifest,
    Index,
    ManifestDescriptor,
    IndexDescriptor,
}

/// Annotation prefixes.
const PREFIXES: &[(&str, Target)] = &[
    ("annotation.", Target::Manifest),
    ("annotation-manifest.", Target::Manifest),
    ("annotation-index.", Target::Index),
    (
        "annotation-manifest-descriptor.",
        Target::ManifestDescriptor,
    ),
    ("annotation-index-descriptor.", Target::IndexDescriptor),
];

/// The image options after validation.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    exporter: String,
    /// The annotations asked.
    annotations: Rewrites,
    compression: Option<Compression>,
    level: Option<i32>,
    force: bool,
    oci_media_types: Option<bool>,
    rewrite_timestamp: bool,
}

impl ImageOptions {
    /// Reads and checks the image options of `parsed` (already checked
    /// against a table holding [`SPECS`]): values, and combinations that
    /// cannot work (a level out of range for its algorithm, a level or
    /// `force-compression` without `compression`, docker media types with
    /// zstd or annotations). Errors name the option and the `exporter`.
    pub fn parse(exporter: &str, parsed: &Parsed) -> Result<ImageOptions, Error> {
        let compression = compression(parsed).map_err(|e| in_exporter(exporter, e))?;
        let level = level(parsed, compression).map_err(|e| in_exporter(exporter, e))?;
        let force = parsed
            .bool("force-compression", false)
            .map_err(|e| in_exporter(exporter, e))?;
        if force && compression.is_none() {
            return Err(in_exporter(
                exporter,
                invalid(
                    "option \"force-compression\" needs compression=uncompressed, gzip or zstd",
                ),
            ));
        }
        let oci_media_types = match parsed.str("oci-mediatypes") {
            None => None,
            Some(_) => Some(
                parsed
                    .bool("oci-mediatypes", true)
                    .map_err(|e| in_exporter(exporter, e))?,
            ),
        };
        let rewrite_timestamp = parsed
            .bool("rewrite-timestamp", false)
            .map_err(|e| in_exporter(exporter, e))?;
        let annotations = annotations(parsed).map_err(|e| in_exporter(exporter, e))?;
        if oci_media_types == Some(false) {
            docker_conflicts(parsed, compression).map_err(|e| in_exporter(exporter, e))?;
        }
        Ok(ImageOptions {
            exporter: exporter.to_owned(),
            annotations,
            compression,
            level,
            force,
            oci_media_types,
            rewrite_timestamp,
        })
    }

    /// What the plan applies, with the request's `source_date_epoch`; an
    /// error when `rewrite-timestamp=true` and there is none.
    pub fn rewrites(&self, source_date_epoch: Option<u64>) -> Result<Rewrites, Error> {
        let epoch = match (self.rewrite_timestamp, source_date_epoch) {
            (false, _) => None,
            (true, Some(epoch)) => Some(epoch),
            (true, None) => {
                return Err(Error::InvalidOption(format!(
                    "{} exporter: option \"rewrite-timestamp=true\" needs a source date epoch: \
                     pass --source-date-epoch SECONDS or set SOURCE_DATE_EPOCH",
                    self.exporter
                )));
            }
        };
        let layers = (self.compression.is_some() || epoch.is_some()).then(|| ConvertOptions {
            compression: self.compression.unwrap_or(Compression::Uncompressed),
            level: self.level,
            force: self.force,
            rewrite_timestamp: epoch,
        });
        Ok(Rewrites {
            layers,
            oci_media_types: self.oci_media_types,
            ..self.annotations.clone()
        })
    }
}

/// An option error.
fn invalid(message: &str) -> Error {
    Error::InvalidOption(message.to_owned())
}

/// The `compression` option.
fn compression(parsed: &Parsed) -> Result<Option<Compression>, Error> {
    match parsed.str("compression") {
        None => Ok(None),
        Some("uncompressed") => Ok(Some(Compression::Uncompressed)),
        Some("gzip") => Ok(Some(Compression::Gzip)),
        Some("zstd") => Ok(Some(Compression::Zstd)),
        Some(other) => Err(Error::InvalidOption(format!(
            "invalid option \"compression\": expected uncompressed, gzip or zstd, got \"{other}\""
        ))),
    }
}

/// The `compression-level` option, checked against the range of the
/// `compression` asked (which it needs).
fn level(parsed: &Parsed, compression: Option<Compression>) -> Result<Option<i32>, Error> {
    let Some(text) = parsed.str("compression-level") else {
        return Ok(None);
    };
    let level: i32 = text.parse().map_err(|_| {
        Error::InvalidOption(format!(
            "invalid option \"compression-level\": \"{text}\" is not a number"
        ))
    })?;
    let (name, range) = match compression {
        None => {
            return Err(invalid(
                "option \"compression-level\" needs compression=gzip or zstd",
            ));
        }
        Some(Compression::Uncompressed) => {
            return Err(invalid(
                "option \"compression-level\" does not apply to compression=uncompressed",
            ));
        }
        Some(Compression::Gzip) => ("gzip", 0..=9),
        Some(Compression::Zstd) => ("zstd", 1..=22),
    };
    if !range.contains(&level) {
        return Err(Error::InvalidOption(format!(
            "invalid option \"compression-level\": {level} is out of range for {name} ({}-{})",
            range.start(),
            range.end()
        )));
    }
    Ok(Some(level))
}

/// With `oci-mediatypes=false`: the options docker media types cannot
/// carry (zstd layers, annotations).
fn docker_conflicts(parsed: &Parsed, compression: Option<Compression>) -> Result<(), Error> {
    if compression == Some(Compression::Zstd) {
        return Err(invalid(
            "options \"compression=zstd\" and \"oci-mediatypes=false\" conflict: docker \
             media types have no zstd layers",
        ));
    }
    if let Some((key, _)) = parsed.prefixed("annotation").next() {
        return Err(Error::InvalidOption(format!(
            "options \"annotation{key}\" and \"oci-mediatypes=false\" conflict: docker \
             media types have no annotations"
        )));
    }
    Ok(())
}

/// An option error, its message prefixed with the exporter's name.
fn in_exporter(exporter: &str, e: Error) -> Error {
    match e {
        Error::InvalidOption(m) => Error::InvalidOption(format!("{exporter} exporter: {m}")),
        other => other,
    }
}

/// The `annotation*` options, in the order given; a KEY given twice for
/// the same target is an error.
fn annotations(parsed: &Parsed) -> Result<Rewrites, Error> {
    let mut out = Rewrites::default();
    for (key, value) in parsed.pairs() {
        let Some((target, ann)) = PREFIXES
            .iter()
            .find_map(|(p, t)| key.strip_prefix(p).map(|k| (*t, k)))
        else {
            continue;
        };
        let list = match target {
            Target::Manifest => &mut out.manifest,
            Target::Index => &mut out.index,
            Target::ManifestDescriptor => &mut out.manifest_descriptor,
            Target::IndexDescriptor => &mut out.index_descriptor,
        };
        if list.iter().any(|(k, _)| k == ann) {
            return Err(Error::InvalidOption(format!(
                "annotation \"{ann}\" given more than once (option \"{key}\")"
            )));
        }
        list.push((ann.to_owned(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ImageOptions, Error> {
        let options: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ImageOptions::parse("test", &Parsed::new("test", SPECS, &options)?)
    }

    fn refused(pairs: &[(&str, &str)], words: &str) {
        match parse(pairs) {
            Err(Error::InvalidOption(m)) => {
                assert!(m.starts_with("test exporter: ") && m.contains(words), "{m}")
            }
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn conversion_and_epoch() {
        let opts = parse(&[("compression", "zstd"), ("compression-level", "19")]).unwrap();
        let layers = opts.rewrites(None).unwrap().layers.unwrap();
        assert_eq!(layers.compression, Compression::Zstd);
        assert_eq!((layers.level, layers.force), (Some(19), false));
        assert!(parse(&[]).unwrap().rewrites(None).unwrap().layers.is_none());
        let opts = parse(&[("rewrite-timestamp", "true")]).unwrap();
        assert_eq!(
            opts.rewrites(Some(5))
                .unwrap()
                .layers
                .unwrap()
                .rewrite_timestamp,
            Some(5)
        );
        assert!(opts.rewrites(None).is_err());
    }

    #[test]
    fn conflicts() {
        refused(&[("compression", "lz4")], "\"compression\"");
        refused(&[("compression-level", "1")], "needs compression");
        refused(
            &[("compression", "gzip"), ("compression-level", "-1")],
            "out of range",
        );
        refused(&[("force-compression", "true")], "needs compression");
        refused(
            &[("oci-mediatypes", "false"), ("compression", "zstd")],
            "no zstd",
        );
        refused(
            &[("oci-mediatypes", "false"), ("annotation-index.a", "b")],
            "\"annotation-index.a\"",
        );
        refused(
            &[("annotation.a", "1"), ("annotation-manifest.a", "2")],
            "more than once",
        );
    }
}
