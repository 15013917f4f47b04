//! Platforms as users write them (`linux/arm64/v8`), compared the way
//! containerd does: architecture aliases folded (`x86_64` is `amd64`) and
//! default variants filled in (`arm64` is `arm64/v8`, `arm` is `arm/v7`).

use std::fmt;

use outport_oci::document;

/// Text that is not `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAPlatform(pub String);

impl fmt::Display for NotAPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a platform (expected os/architecture[/variant], e.g. linux/arm64)",
            self.0
        )
    }
}

impl std::error::Error for NotAPlatform {}

/// An `os/architecture[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// CPU variant (`v8`), when given.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/architecture[/variant]`, or says what is wrong.
    pub fn parse(s: &str) -> Result<Platform, NotAPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty());
        if !ok {
            return Err(NotAPlatform(s.to_owned()));
        }
        Ok(Platform {
            os: parts[0].to_lowercase(),
            architecture: parts[1].to_lowercase(),
            variant: parts.get(2).map(|v| v.to_lowercase()),
        })
    }

    /// The platform of an OCI `platform` object or of an image config
    /// (both have `os`, `architecture` and maybe `variant`); none when `os`
    /// or `architecture` is missing.
    pub fn from_document(read: &document::Platform) -> Option<Platform> {
        Some(Platform {
            os: read.os.clone()?,
            architecture: read.architecture.clone()?,
            variant: read.variant.clone().filter(|v| !v.is_empty()),
        })
    }

    /// The platform with aliases folded and default variants filled in, for
    /// comparing.
    pub fn normalized(&self) -> Platform {
        let arch = match self.architecture.as_str() {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "armhf" => "arm",
            "i386" | "i686" => "386",
            other => other,
        };
        let variant = match (arch, self.variant.as_deref()) {
            ("arm64", None | Some("8")) => Some("v8"),
            ("arm", None | Some("7")) => Some("v7"),
            ("arm", Some("6")) => Some("v6"),
            ("arm", Some("5")) => Some("v5"),
            ("amd64", Some("v1")) => None,
            (_, v) => v,
        };
        Platform {
            os: self.os.clone(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// Whether `self` and `other` name the same platform once normalized.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert!(p.matches(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(p.matches(&Platform::parse("linux/aarch64").unwrap()));
        assert!(!p.matches(&Platform::parse("linux/amd64").unwrap()));
        assert!(
            Platform::parse("linux/x86_64")
                .unwrap()
                .matches(&Platform::parse("linux/amd64").unwrap())
        );
        assert!(
            !Platform::parse("linux/arm/v6")
                .unwrap()
                .matches(&Platform::parse("linux/arm").unwrap())
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v8").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn from_document() {
        let read: document::Platform = serde_json::from_value(
            serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        )
        .unwrap();
        assert_eq!(
            Platform::from_document(&read).unwrap().to_string(),
            "linux/arm64/v8"
        );
        let os_only = document::Platform {
            os: Some("linux".into()),
            ..Default::default()
        };
        assert!(Platform::from_document(&os_only).is_none());
    }
}
