//! Options: one table of [`OptionSpec`]s gives both what `describe` lists
//! ([`describe`]) and what `validate` accepts ([`Parsed::new`]), so the two
//! cannot drift. Typed accessors read the values; every error is an
//! `invalid-option` naming the option.

use crate::bindings::outport::exporter::types::{Error, OptionInfo};
use crate::reference;

/// One option an exporter accepts.
///
/// A key ending in `.KEY` (`annotation.KEY`) stands for every key with that
/// prefix (`annotation.org.opencontainers.image.title`).
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The key, e.g. `tar`, or a prefix key such as `annotation.KEY`.
    pub key: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// The default value, for `describe`.
    pub default: Option<&'static str>,
    /// Whether the key may be given several times.
    pub repeatable: bool,
}

impl OptionSpec {
    /// An option given at most once, without a default.
    pub const fn once(key: &'static str, help: &'static str) -> Self {
        OptionSpec {
            key,
            help,
            default: None,
            repeatable: false,
        }
    }

    /// An option that may be given several times.
    pub const fn repeatable(key: &'static str, help: &'static str) -> Self {
        OptionSpec {
            key,
            help,
            default: None,
            repeatable: true,
        }
    }

    /// The same option, with a default value shown by `describe`.
    pub const fn default(self, value: &'static str) -> Self {
        OptionSpec {
            default: Some(value),
            ..self
        }
    }

    /// The prefix of a prefix key (`annotation.` for `annotation.KEY`).
    fn prefix(&self) -> Option<&'static str> {
        self.key.strip_suffix("KEY").filter(|p| p.ends_with('.'))
    }

    /// Whether `key` is this option; for a prefix key, returns the part
    /// after the prefix.
    fn accepts<'k>(&self, key: &'k str) -> Option<&'k str> {
        match self.prefix() {
            Some(prefix) => key.strip_prefix(prefix),
            None => (key == self.key).then_some(""),
        }
    }
}

/// What `describe` lists for `specs`.
pub fn describe(specs: &[OptionSpec]) -> Vec<OptionInfo> {
    specs
        .iter()
        .map(|s| OptionInfo {
            key: s.key.to_owned(),
            help: s.help.to_owned(),
            default_value: s.default.map(str::to_owned),
            repeatable: s.repeatable,
        })
        .collect()
}

/// Options checked against a table of [`OptionSpec`]s.
#[derive(Debug)]
pub struct Parsed<'a> {
    options: &'a [(String, String)],
}

impl<'a> Parsed<'a> {
    /// Checks `options` against `specs`: a key no spec accepts, a
    /// non-repeatable key given twice and a prefix key without its KEY part
    /// are `invalid-option` errors naming the option (and, for unknown keys,
    /// the `exporter` and what it accepts).
    pub fn new(
        exporter: &str,
        specs: &[OptionSpec],
        options: &'a [(String, String)],
    ) -> Result<Self, Error> {
        for (i, (key, _)) in options.iter().enumerate() {
            let Some((spec, rest)) = specs.iter().find_map(|s| s.accepts(key).map(|r| (s, r)))
            else {
                let accepted: Vec<&str> = specs.iter().map(|s| s.key).collect();
                return Err(Error::InvalidOption(format!(
                    "unknown option \"{key}\" (the {exporter} exporter accepts: {})",
                    accepted.join(", ")
                )));
            };
            if let Some(prefix) = spec.prefix()
                && rest.is_empty()
            {
                return Err(Error::InvalidOption(format!(
                    "invalid option \"{key}\": missing KEY after \"{prefix}\""
                )));
            }
            if !spec.repeatable && options[..i].iter().any(|(k, _)| k == key) {
                return Err(Error::InvalidOption(format!(
                    "option \"{key}\" given more than once"
                )));
            }
        }
        Ok(Parsed { options })
    }

    /// The value of `key`, if given.
    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.all(key).next()
    }

    /// `key` as `true` or `false`; `default` when not given.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, Error> {
        match self.str(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(Error::InvalidOption(format!(
                "invalid option \"{key}\": expected true or false, got \"{other}\""
            ))),
        }
    }

    /// Every value of `key`, in the order given.
    pub fn all<'k>(&self, key: &'k str) -> impl Iterator<Item = &'a str> + use<'a, 'k> {
        self.options
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every `(key, value)`, in the order given.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every `(KEY, value)` of the keys starting with `prefix`
    /// (`annotation.`), in the order given.
    pub fn prefixed<'k>(
        &self,
        prefix: &'k str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a, 'k> {
        self.options
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
    }

    /// The image names given with `key` (repeated, or comma-separated),
    /// normalized ([`reference::normalize`]), each once, in order.
    pub fn image_names(&self, key: &str) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        for value in self.all(key) {
            for name in value.split(',').map(str::trim) {
                let normalized = reference::normalize(name)
                    .map_err(|e| Error::InvalidOption(format!("invalid option \"{key}\": {e}")))?;
                if !names.contains(&normalized) {
                    names.push(normalized);
                }
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::once("tar", "tarball or not").default("true"),
        OptionSpec::repeatable("name", "names"),
        OptionSpec::repeatable("annotation.KEY", "annotations"),
    ];

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn message(e: Error) -> String {
        match e {
            Error::InvalidOption(m) => m,
            other => panic!("not invalid-option: {other:?}"),
        }
    }

    #[test]
    fn typed_values() {
        let o = opts(&[
            ("tar", "false"),
            ("name", "a,b:1"),
            ("name", "a"),
            ("annotation.x", "1"),
        ]);
        let p = Parsed::new("test", SPECS, &o).unwrap();
        assert!(!p.bool("tar", true).unwrap());
        assert_eq!(
            p.image_names("name").unwrap(),
            ["docker.io/library/a:latest", "docker.io/library/b:1"]
        );
        assert_eq!(p.prefixed("annotation.").collect::<Vec<_>>(), [("x", "1")]);
        assert_eq!(p.str("missing"), None);
    }

    #[test]
    fn errors_name_the_option() {
        let o = opts(&[("foo", "bar")]);
        let m = message(Parsed::new("test", SPECS, &o).unwrap_err());
        assert!(
            m.contains("unknown option \"foo\"") && m.contains("test exporter"),
            "{m}"
        );
        let o = opts(&[("tar", "true"), ("tar", "false")]);
        let m = message(Parsed::new("test", SPECS, &o).unwrap_err());
        assert!(m.contains("\"tar\" given more than once"), "{m}");
        let o = opts(&[("annotation.", "x")]);
        let m = message(Parsed::new("test", SPECS, &o).unwrap_err());
        assert!(m.contains("missing KEY"), "{m}");
        let o = opts(&[("tar", "maybe")]);
        let p = Parsed::new("test", SPECS, &o).unwrap();
        let m = message(p.bool("tar", true).unwrap_err());
        assert!(m.contains("\"tar\"") && m.contains("maybe"), "{m}");
    }

    #[test]
    fn describe_lists_the_specs() {
        let info = describe(SPECS);
        assert_eq!(info[0].default_value.as_deref(), Some("true"));
        assert!(info[1].repeatable);
    }
}
