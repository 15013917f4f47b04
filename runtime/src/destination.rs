//! Atomic placement of outputs. An instance writes into a fresh staging
//! directory next to its destination (the only directory it is granted);
//! when it succeeds the output is renamed into place, when it fails the
//! staging directory is deleted, so a destination never holds a partial
//! output.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::bindings::types::{Destination, OutputKind};

/// Name under which the staging directory is preopened in the guest.
pub const PREOPEN: &str = "/out";

/// Where an instance's output goes in the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A path on the host.
    Path(PathBuf),
    /// The runtime's standard output (`dest=-`), for a file output.
    Stdout,
}

impl Target {
    /// Parses a `dest=` value.
    pub fn parse(dest: &str) -> Target {
        if dest == "-" {
            Target::Stdout
        } else {
            Target::Path(PathBuf::from(dest))
        }
    }
}

/// A staging directory for one instance's output.
pub struct Staging {
    dir: tempfile::TempDir,
    target: Target,
    created_parents: Vec<PathBuf>,
    committed: bool,
}

impl Staging {
    /// Creates the staging directory for `target`: beside it (same
    /// filesystem, so the final rename is atomic), or in the temporary
    /// directory for standard output. Missing parent directories are
    /// created, and removed again if the output is not committed.
    pub fn create(target: Target) -> io::Result<Staging> {
        let (parent, stem) = match &target {
            Target::Stdout => (std::env::temp_dir(), "stdout".to_string()),
            Target::Path(p) => {
                let parent = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let stem = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
                    })?;
                (parent, stem)
            }
        };
        let created_parents = create_parents(&parent)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{stem}.outport-"))
            .tempdir_in(&parent);
        let dir = match dir {
            Ok(d) => d,
            Err(e) => {
                remove_empty(&created_parents);
                return Err(e);
            }
        };
        Ok(Staging {
            dir,
            target,
            created_parents,
            committed: false,
        })
    }

    /// The staging directory on the host (preopened as [`PREOPEN`]).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Checks that the final destination can take an output of `kind`, and
    /// returns what the guest is told about its destination.
    pub fn grant(&self, kind: OutputKind) -> Result<Destination, String> {
        match (&self.target, kind) {
            (_, OutputKind::None) => Err("this exporter takes no dest=".to_string()),
            (Target::Stdout, OutputKind::Directory) => Err(
                "dest=- (standard output) needs a file output, this one writes a directory"
                    .to_string(),
            ),
            (Target::Stdout, OutputKind::File) => Ok(Destination {
                preopen: PREOPEN.to_string(),
                file: Some(self.file_name()),
            }),
            (Target::Path(p), OutputKind::File) => {
                if p.is_dir() {
                    return Err(format!(
                        "dest {} is a directory; this output is a file",
                        p.display()
                    ));
                }
                Ok(Destination {
                    preopen: PREOPEN.to_string(),
                    file: Some(self.file_name()),
                })
            }
            (Target::Path(p), OutputKind::Directory) => {
                if p.exists() && !p.is_dir() {
                    return Err(format!(
                        "dest {} is a file; this output is a directory",
                        p.display()
                    ));
                }
                Ok(Destination {
                    preopen: PREOPEN.to_string(),
                    file: None,
                })
            }
        }
    }

    fn file_name(&self) -> String {
        match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".to_string()),
        }
    }

    /// Fills the staging directory with what is already at a directory
    /// destination, so an output can add to it (a build cache): files in
    /// subdirectories are hard-linked (same inode, never rewritten), files
    /// at the top are copied (the guest may replace them). Symlinks and
    /// other special files are left out. Nothing to do when the destination
    /// does not exist yet.
    pub fn seed(&self) -> io::Result<()> {
        match &self.target {
            Target::Path(dest) if dest.is_dir() => seed_tree(dest, self.dir.path(), true),
            _ => Ok(()),
        }
    }

    /// Moves the finished output into place. For a file output, `file` is
    /// the name the guest was told to write.
    pub fn commit(mut self, destination: &Destination) -> io::Result<()> {
        let produced = match &destination.file {
            Some(name) => self.dir.path().join(name),
            None => self.dir.path().to_path_buf(),
        };
        match (&self.target, &destination.file) {
            (Target::Stdout, Some(_)) => {
                let mut file = fs::File::open(&produced)?;
                let mut out = io::stdout().lock();
                io::copy(&mut file, &mut out)?;
                io::Write::flush(&mut out)?;
            }
            (Target::Path(dest), Some(_)) => {
                if !produced.is_file() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "the exporter did not write its output file",
                    ));
                }
                fs::rename(&produced, dest)?;
            }
            (Target::Path(dest), None) => replace_dir(self.dir.path(), dest)?,
            (Target::Stdout, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a directory cannot go to standard output",
                ));
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // TempDir removes the staging tree itself; remove the parents we
            // made once it is gone.
            let _ = fs::remove_dir_all(self.dir.path());
            remove_empty(&self.created_parents);
        }
    }
}

/// Recreates the tree `from` in `to`: copies of the files at the top
/// (`top`), hard links below.
fn seed_tree(from: &Path, to: &Path, top: bool) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            fs::create_dir(&target)?;
            seed_tree(&entry.path(), &target, false)?;
        } else if kind.is_file() {
            if top {
                fs::copy(entry.path(), &target)?;
            } else {
                fs::hard_link(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}

/// Puts directory `staged` at `dest`, replacing what is there.
fn replace_dir(staged: &Path, dest: &Path) -> io::Result<()> {
    if !dest.exists() {
        return fs::rename(staged, dest);
    }
    let parent = staged.parent().unwrap_or(Path::new("."));
    let old = tempfile::Builder::new()
        .prefix(".outport-old-")
        .tempdir_in(parent)?;
    let old_path = old.path().join("previous");
    fs::rename(dest, &old_path)?;
    if let Err(e) = fs::rename(staged, dest) {
        // Put the previous output back.
        let _ = fs::rename(&old_path, dest);
        return Err(e);
    }
    drop(old);
    Ok(())
}

/// Creates `dir` and its missing ancestors; returns those created, outermost
/// first.
fn create_parents(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match fs::create_dir(&d) {
            Ok(()) => created.push(d),
            // Another instance made it at the same moment: not ours to remove.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                remove_empty(&created);
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// Removes directories (innermost last in `dirs`) that are empty.
fn remove_empty(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_output_leaves_nothing_not_even_parents() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("a/b/out.tar");
        let staging = Staging::create(Target::Path(dest.clone())).unwrap();
        fs::write(staging.path().join("out.tar"), b"partial").unwrap();
        drop(staging);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn file_output_is_renamed_into_place() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out.tar");
        fs::write(&dest, b"old").unwrap();
        let staging = Staging::create(Target::Path(dest.clone())).unwrap();
        let grant = staging.grant(OutputKind::File).unwrap();
        assert_eq!(grant.file.as_deref(), Some("out.tar"));
        fs::write(staging.path().join("out.tar"), b"new").unwrap();
        staging.commit(&grant).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn directory_output_replaces_existing_directory() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("layout");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("stale"), b"x").unwrap();
        let staging = Staging::create(Target::Path(dest.clone())).unwrap();
        let grant = staging.grant(OutputKind::Directory).unwrap();
        fs::write(staging.path().join("index.json"), b"{}").unwrap();
        staging.commit(&grant).unwrap();
        assert!(dest.join("index.json").is_file());
        assert!(!dest.join("stale").exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn kind_mismatch_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let staging = Staging::create(Target::Path(root.path().to_path_buf())).unwrap();
        assert!(
            staging
                .grant(OutputKind::File)
                .unwrap_err()
                .contains("is a directory")
        );
        assert!(
            staging
                .grant(OutputKind::None)
                .unwrap_err()
                .contains("takes no dest")
        );
        let stdout = Staging::create(Target::Stdout).unwrap();
        assert!(stdout.grant(OutputKind::Directory).is_err());
    }
}
