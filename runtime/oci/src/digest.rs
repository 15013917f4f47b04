//! Digests in the `algorithm:hex` form of OCI descriptors. outport reads
//! and writes sha256 only: [`Sha256Digest`] is `sha256:` and exactly 64
//! lowercase hex digits, so its hex part is always a safe file name
//! (`blobs/sha256/<hex>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The algorithm prefix of a sha256 digest.
pub const SHA256_PREFIX: &str = "sha256:";

/// A validated sha256 digest: `sha256:` and 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(String);

/// A text that is not a digest of the form asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestError {
    /// The text refused.
    pub text: String,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)",
            self.text
        )
    }
}

impl std::error::Error for DigestError {}

impl Sha256Digest {
    /// Parses `sha256:` and 64 lowercase hex digits; nothing else.
    pub fn parse(text: &str) -> Result<Sha256Digest, DigestError> {
        if is_sha256(text) {
            Ok(Sha256Digest(text.to_owned()))
        } else {
            Err(DigestError {
                text: text.to_owned(),
            })
        }
    }

    /// The digest whose hash is `hash` (the 32 bytes of a SHA-256).
    pub fn from_hash(hash: [u8; 32]) -> Sha256Digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(SHA256_PREFIX.len() + 64);
        text.push_str(SHA256_PREFIX);
        for byte in hash {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Sha256Digest(text)
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0[SHA256_PREFIX.len()..]
    }

    /// Where an OCI image layout keeps the blob: `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }

    /// `sha256:<hex>` as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether `text` is `sha256:` followed by exactly 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.strip_prefix(SHA256_PREFIX)
        .is_some_and(|hex| is_lower_hex(hex, 64))
}

/// `(algorithm, hex)` of a digest of an algorithm an OCI layout may hold
/// (`sha256`: 64 lowercase hex digits, `sha512`: 128), else none: the
/// parts then make a safe `blobs/<algorithm>/<hex>` path.
pub fn split_known(text: &str) -> Option<(&str, &str)> {
    let (algorithm, hex) = text.split_once(':')?;
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return None,
    };
    is_lower_hex(hex, len).then_some((algorithm, hex))
}

/// `len` lowercase hex digits exactly.
fn is_lower_hex(hex: &str, len: usize) -> bool {
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Sha256Digest::parse(text)
    }
}

impl TryFrom<String> for Sha256Digest {
    type Error = DigestError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if is_sha256(&text) {
            Ok(Sha256Digest(text))
        } else {
            Err(DigestError { text })
        }
    }
}

impl From<Sha256Digest> for String {
    fn from(digest: Sha256Digest) -> String {
        digest.0
    }
}

impl AsRef<str> for Sha256Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Sha256Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Sha256Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sha256Digest::try_from(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "oci-spec")]
impl From<Sha256Digest> for oci_spec::image::Digest {
    fn from(digest: Sha256Digest) -> Self {
        digest.0.parse().expect("a sha256 digest is an OCI digest")
    }
}

#[cfg(feature = "oci-spec")]
impl TryFrom<&oci_spec::image::Digest> for Sha256Digest {
    type Error = DigestError;

    fn try_from(digest: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Sha256Digest::parse(digest.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_sha256_and_64_lowercase_hex_digits() {
        let text = format!("sha256:{HEX}");
        let digest = Sha256Digest::parse(&text).unwrap();
        assert_eq!(digest.as_str(), text);
        assert_eq!(digest.hex(), HEX);
        assert_eq!(digest.to_string(), text);
        assert_eq!(digest.blob_path(), format!("blobs/sha256/{HEX}"));
        for bad in [
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha256:{}", &HEX[1..]),
            format!("sha256:{HEX}0"),
            format!("sha512:{HEX}"),
            format!("SHA256:{HEX}"),
            HEX.to_owned(),
            "sha256:../../x".to_owned(),
            String::new(),
        ] {
            assert!(Sha256Digest::parse(&bad).is_err(), "{bad}");
            assert!(!is_sha256(&bad), "{bad}");
        }
        let error = Sha256Digest::parse("sha256:AB").unwrap_err();
        assert!(error.to_string().contains("\"sha256:AB\""), "{error}");
    }

    #[test]
    fn from_hash_is_lowercase_hex() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        hash[31] = 0x0f;
        let digest = Sha256Digest::from_hash(hash);
        assert!(is_sha256(digest.as_str()));
        assert!(digest.hex().starts_with("ab00") && digest.hex().ends_with("000f"));
    }

    #[test]
    fn serde_checks_the_form() {
        let text = format!("\"sha256:{HEX}\"");
        let digest: Sha256Digest = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&digest).unwrap(), text);
        assert!(serde_json::from_str::<Sha256Digest>("\"sha256:00\"").is_err());
    }

    #[test]
    fn known_algorithms_for_layout_paths() {
        let sha256 = format!("sha256:{HEX}");
        assert_eq!(split_known(&sha256), Some(("sha256", HEX)));
        let sha512 = format!("sha512:{HEX}{HEX}");
        assert_eq!(split_known(&sha512).map(|(a, _)| a), Some("sha512"));
        assert_eq!(split_known(&format!("sha512:{HEX}")), None);
        assert_eq!(split_known(&format!("md5:{HEX}")), None);
        assert_eq!(split_known("sha256:../../etc"), None);
    }
}
