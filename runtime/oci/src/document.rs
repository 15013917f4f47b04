//! Typed, read-only views of the JSON documents of an image: an index, a
//! manifest (OCI or docker schema 2: the fields are the same) and an image
//! config, with their descriptors. Only what outport reads is typed;
//! unknown fields are ignored. Code that rewrites a document keeps its
//! JSON instead, so unknown fields and field order survive.
//!
//! Read them with any serde format (`serde_json::from_slice`). [`Index`]
//! and [`Manifest`] hold [`Descriptor`]s unless told otherwise: the host
//! reads them with `oci_spec`'s descriptor (`Manifest<oci_spec::image::Descriptor>`),
//! the type its blobs carry.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Annotation of an index entry naming the image in full
/// (`docker.io/library/alpine:latest`), as containerd writes it.
pub const IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation of an index entry naming the image by its tag only.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// BuildKit marks the attestation manifests of an index with this
/// annotation (value [`ATTESTATION_MANIFEST`]).
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The [`REFERENCE_TYPE`] of an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The `artifactType` of an attestation manifest written as an OCI
/// artifact (BuildKit's `oci-artifact=true`).
pub const ATTESTATION_ARTIFACT_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";
/// The annotation of an attestation manifest naming the manifest it is
/// about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// A descriptor: what a document says about a blob it names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest, as written (not checked here).
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// Its annotations with string values, in document order.
    #[serde(default, deserialize_with = "string_pairs")]
    pub annotations: Vec<(String, String)>,
    /// The platform an index entry is built for.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// The artifact type of an artifact manifest.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Where else the blob is (foreign layers).
    #[serde(default, deserialize_with = "or_default")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// The annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this index entry is a BuildKit attestation manifest: its
    /// [`REFERENCE_TYPE`] annotation says so, or its `artifactType` is
    /// [`ATTESTATION_ARTIFACT_TYPE`].
    pub fn is_attestation(&self) -> bool {
        self.annotation(REFERENCE_TYPE) == Some(ATTESTATION_MANIFEST)
            || self.artifact_type.as_deref() == Some(ATTESTATION_ARTIFACT_TYPE)
    }
}

/// The platform of an index entry, or the platform fields of an image
/// config; fields absent stay none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: Option<String>,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: Option<String>,
    /// Operating system version.
    #[serde(rename = "os.version", default)]
    pub os_version: Option<String>,
    /// Operating system features.
    #[serde(rename = "os.features", default, deserialize_with = "or_default")]
    pub os_features: Vec<String>,
    /// CPU variant (`v8`).
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image index or a docker manifest list, its entries of type `D`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index<D = Descriptor> {
    /// Its own media type, when it says it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Its entries.
    pub manifests: Vec<D>,
    /// Its annotations with string values, in document order.
    #[serde(default, deserialize_with = "string_pairs")]
    pub annotations: Vec<(String, String)>,
}

/// An image manifest, OCI or docker schema 2 (or an artifact manifest),
/// its descriptors of type `D`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<D = Descriptor> {
    /// Its `schemaVersion`, when it says it.
    #[serde(default)]
    pub schema_version: Option<u64>,
    /// Its own media type, when it says it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The artifact type of an artifact manifest.
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The config's descriptor.
    pub config: D,
    /// The layers' descriptors, base layer first (none when absent).
    #[serde(default = "Vec::new", deserialize_with = "or_empty")]
    pub layers: Vec<D>,
    /// Its annotations with string values, in document order.
    #[serde(default, deserialize_with = "string_pairs")]
    pub annotations: Vec<(String, String)>,
    /// The manifest an artifact is about (OCI 1.1 `subject`); absent is
    /// none.
    pub subject: Option<D>,
}

/// What outport reads of an image config (OCI or docker): its platform
/// fields and its layers' diff IDs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// Its platform fields (`architecture`, `os`, `os.version`,
    /// `os.features`, `variant`), as an index entry's platform.
    #[serde(flatten)]
    pub platform: Platform,
    /// The layers' diff IDs.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// The `rootfs` of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The digest of each layer's uncompressed tar, base layer first;
    /// none when absent.
    #[serde(default)]
    pub diff_ids: Option<Vec<String>>,
}

/// A field that may also be `null`: its default then.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A list that may also be `null`: empty then.
fn or_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// An object's string-valued entries, in order (others skipped); `null`
/// is none.
fn string_pairs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of annotations")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, StringOrSkip>()? {
                if let Some(value) = value.0 {
                    out.push((key, value));
                }
            }
            Ok(out)
        }
    }
    deserializer.deserialize_any(Pairs)
}

/// A string, or any other value skipped (none).
struct StringOrSkip(Option<String>);

impl<'de> Deserialize<'de> for StringOrSkip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = StringOrSkip;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrSkip(Some(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StringOrSkip(Some(v)))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StringOrSkip(None))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StringOrSkip(None))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StringOrSkip(None))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StringOrSkip(None))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(StringOrSkip(None))
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(StringOrSkip(None))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StringOrSkip(None))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StringOrSkip(None))
            }
        }
        deserializer.deserialize_any(Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media;

    #[test]
    fn reads_an_index_with_its_entries() {
        let index: Index = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
                "manifests":[
                  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a",
                   "size":7,"platform":{"architecture":"arm64","os":"linux","variant":"v8",
                   "os.features":["x"]},"annotations":{"z":"1","a":"2","n":3}},
                  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b",
                   "size":8,"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}],
                "extra":{"kept":"ignored"}}"#,
        )
        .unwrap();
        assert_eq!(index.media_type.as_deref(), Some(media::OCI_INDEX));
        let first = &index.manifests[0];
        assert_eq!(
            first.annotations,
            [("z".into(), "1".into()), ("a".into(), "2".into())]
        );
        let platform = first.platform.as_ref().unwrap();
        assert_eq!(platform.architecture.as_deref(), Some("arm64"));
        assert_eq!(platform.os_features, ["x"]);
        assert!(!first.is_attestation() && index.manifests[1].is_attestation());
    }

    #[test]
    fn reads_an_attestation_artifact() {
        let manifest: Manifest = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
                "artifactType":"application/vnd.docker.attestation.manifest.v1+json",
                "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:e",
                          "size":2,"data":"e30="},
                "layers":[],
                "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
                           "digest":"sha256:s","size":9}}"#,
        )
        .unwrap();
        assert_eq!(manifest.subject.unwrap().digest, "sha256:s");
        assert_eq!(
            manifest.artifact_type.as_deref(),
            Some(ATTESTATION_ARTIFACT_TYPE)
        );
        // An index entry that says only its artifact type is an attestation.
        let entry: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a",
                "size":1,"artifactType":"application/vnd.docker.attestation.manifest.v1+json"}"#,
        )
        .unwrap();
        assert!(entry.is_attestation());
    }

    #[test]
    fn reads_docker_schema2_manifests_and_configs() {
        let manifest: Manifest = serde_json::from_str(
            r#"{"schemaVersion":2,
                "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
                "config":{"mediaType":"application/vnd.docker.container.image.v1+json",
                          "digest":"sha256:c","size":1},
                "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",
                           "digest":"sha256:l","size":2,"urls":["https://x"]}]}"#,
        )
        .unwrap();
        assert_eq!(manifest.media_type.as_deref(), Some(media::DOCKER_MANIFEST));
        assert_eq!(manifest.config.digest, "sha256:c");
        assert_eq!(manifest.layers[0].urls, ["https://x"]);
        let bare: Manifest = serde_json::from_str(
            r#"{"config":{"mediaType":"x","digest":"sha256:c","size":1},"layers":null}"#,
        )
        .unwrap();
        assert!(bare.layers.is_empty() && bare.schema_version.is_none());
        assert!(serde_json::from_str::<Manifest>(r#"{"layers":[]}"#).is_err());
        let config: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:d"]}}"#,
        )
        .unwrap();
        assert_eq!(config.platform.os.as_deref(), Some("linux"));
        #[cfg(feature = "oci-spec")]
        {
            let typed: Manifest<oci_spec::image::Descriptor> = serde_json::from_str(
                r#"{"config":{"mediaType":"application/vnd.docker.container.image.v1+json",
                    "digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    "size":1}}"#,
            )
            .unwrap();
            assert_eq!(typed.config.size(), 1);
            assert!(typed.layers.is_empty());
        }
        assert_eq!(config.rootfs.unwrap().diff_ids.unwrap(), ["sha256:d"]);
    }
}
