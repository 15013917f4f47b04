//! Plugin directories: where `--output type=NAME` finds a third-party
//! exporter, the component file `NAME.wasm`, when NAME is not a built-in
//! exporter (built-ins always win).
//!
//! The directories are searched in order: every `--plugin-dir` as given,
//! then the default one, `$OUTPORT_PLUGIN_DIR` when set (set it empty for
//! none), else `plugins` under the user's config directory
//! (`~/.config/outport/plugins` on Linux). A plugin is third-party code:
//! the session checks it against the policy's pinning like any
//! `type=wasm,component=PATH`.

use std::path::{Path, PathBuf};

use crate::components::builtin;
use crate::error::Error;

/// The environment variable naming the default plugin directory (empty:
/// no default directory).
pub const DIR_ENV: &str = "OUTPORT_PLUGIN_DIR";

/// The file name suffix of a plugin.
const SUFFIX: &str = ".wasm";

/// The plugin directories of a run, in search order. The default value
/// searches nowhere.
#[derive(Clone, Debug, Default)]
pub struct PluginDirs {
    dirs: Vec<PathBuf>,
}

/// A plugin file found in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugin {
    /// Its `type=` name: the file name without `.wasm`.
    pub name: String,
    /// The component file.
    pub path: PathBuf,
    /// Why `type=NAME` does not run this file, if it does not.
    pub shadowed: Option<Shadowed>,
}

/// What runs instead of a shadowed plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shadowed {
    /// The built-in exporter of the same name.
    ByBuiltin,
    /// The plugin of the same name in an earlier directory.
    ByPlugin(PathBuf),
}

impl PluginDirs {
    /// `explicit` (the `--plugin-dir` values, each of which must be a
    /// directory) followed by the default directory (see [`default_dir`]),
    /// which may be absent.
    pub fn with_default(explicit: &[PathBuf]) -> Result<Self, Error> {
        for dir in explicit {
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "--plugin-dir {}: not a directory",
                    dir.display()
                )));
            }
        }
        let mut dirs = explicit.to_vec();
        dirs.extend(default_dir());
        Ok(PluginDirs { dirs })
    }

    /// Exactly `dirs`, in this order (no default directory).
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        PluginDirs { dirs }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The file of plugin `name` in the first directory that has it. `name`
    /// must be a [`valid_name`].
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join(format!("{name}{SUFFIX}")))
            .find(|path| path.is_file())
    }

    /// Every plugin file of every directory, directory by directory, by
    /// name within one, each marked when a built-in or an earlier
    /// directory's plugin shadows it. A missing directory holds none.
    pub fn list(&self) -> Result<Vec<Plugin>, Error> {
        let mut plugins: Vec<Plugin> = Vec::new();
        for dir in &self.dirs {
            for (name, path) in plugin_files(dir)? {
                let shadowed = if builtin::EXPORTERS.iter().any(|b| b.name == name) {
                    Some(Shadowed::ByBuiltin)
                } else {
                    plugins
                        .iter()
                        .find(|p| p.name == name && p.shadowed.is_none())
                        .map(|p| Shadowed::ByPlugin(p.path.clone()))
                };
                plugins.push(Plugin {
                    name,
                    path,
                    shadowed,
                });
            }
        }
        Ok(plugins)
    }

    /// The directories for an error message: `a, b`, or `none`.
    pub fn searched(&self) -> String {
        if self.dirs.is_empty() {
            return "none".to_string();
        }
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(", ")
    }
}

/// The default plugin directory: `$OUTPORT_PLUGIN_DIR` (none when it is
/// set empty), else `plugins` under the user's config directory.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os(DIR_ENV) {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => directories::ProjectDirs::from("", "", "outport")
            .map(|d| d.config_dir().join("plugins")),
    }
}

/// Whether `name` can name a plugin: ASCII letters, digits, `-`, `_` and
/// `.`, starting with a letter or digit, without `..` (so it never climbs
/// out of a plugin directory or names a hidden file).
pub fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The `(name, path)` of each plugin file in `dir`, by name; nothing when
/// `dir` does not exist.
fn plugin_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let io_error = |e: std::io::Error| Error::Io {
        path: dir.display().to_string(),
        message: format!("cannot list the plugin directory: {e}"),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error)?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SUFFIX))
        else {
            continue;
        };
        if valid_name(name) && path.is_file() {
            files.push((name.to_string(), path.clone()));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_directory() {
        for good in ["hello", "my-exporter", "x_1", "v1.2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "../x", "a/b", "a\\b", ".hidden", "a..b", "-x", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn first_directory_wins_and_builtins_shadow() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for (dir, file) in [
            (&a, "hello.wasm"),
            (&a, "oci.wasm"),
            (&a, "notes.txt"),
            (&b, "hello.wasm"),
            (&b, "other.wasm"),
        ] {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        let missing = a.path().join("missing");
        let dirs = PluginDirs::new(vec![a.path().into(), missing, b.path().into()]);
        assert_eq!(dirs.find("hello"), Some(a.path().join("hello.wasm")));
        assert_eq!(dirs.find("other"), Some(b.path().join("other.wasm")));
        assert_eq!(dirs.find("absent"), None);
        let listed: Vec<(String, Option<Shadowed>)> = dirs
            .list()
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.shadowed))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("hello".into(), None),
                ("oci".into(), Some(Shadowed::ByBuiltin)),
                (
                    "hello".into(),
                    Some(Shadowed::ByPlugin(a.path().join("hello.wasm")))
                ),
                ("other".into(), None),
            ]
        );
    }
}
