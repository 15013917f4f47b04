//! The arena of the hostile-layer tests: a destination with sentinels
//! beside it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::crafting::{Packing, crafted_as};
use super::snapshot::{Item, Snapshot};
use crate::common::*;

/// A place to export into with sentinels beside the destination:
/// `work/sentinel` (a file) and `work/sentinel-dir/inner`.
pub(super) struct Arena {
    pub(super) tmp: tempfile::TempDir,
}

impl Arena {
    pub(super) fn new() -> Arena {
        let tmp = tempdir();
        let work = mkdir(tmp.path(), "work");
        fs::write(work.join("sentinel"), b"keep").unwrap();
        fs::write(mkdir(&work, "sentinel-dir").join("inner"), b"keep").unwrap();
        Arena { tmp }
    }

    pub(super) fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    pub(super) fn dest(&self) -> PathBuf {
        self.work().join("dest")
    }

    /// Every path under the temporary directory but the destination and
    /// the input, with file contents.
    fn outside(&self) -> BTreeMap<String, Item> {
        let snap = Snapshot::of_dir(self.tmp.path());
        snap.items
            .into_iter()
            .filter(|(p, _)| {
                !p.starts_with("work/dest") && !p.starts_with("input") && !p.starts_with("bundle")
            })
            .collect()
    }

    /// Exports the sample with `layers` on top into `dest` as `local`,
    /// once with the layers gzipped and once uncompressed (the host then
    /// copies file bytes out of them); asserts both give the same tree, that
    /// nothing outside `dest` changed, the sentinels included, and that the
    /// sentinel file has one link. Returns the run and the snapshot of
    /// `dest` of the uncompressed export.
    #[track_caller]
    pub(super) fn export_local(&self, layers: &[Vec<u8>]) -> (Run, Snapshot) {
        let (gzip_run, gzip) = self.export_packed(layers, Packing::Gzip);
        fs::remove_dir_all(self.dest()).unwrap();
        let (run, plain) = self.export_packed(layers, Packing::Plain);
        assert_eq!(plain.items, gzip.items, "plain and gzipped layers differ");
        assert_eq!(plain.links, gzip.links);
        assert_eq!(plain.modes, gzip.modes);
        assert_eq!(plain.mtimes, gzip.mtimes);
        // The same warnings (their layer digests differ).
        let warnings = |run: &Run| run.stderr.matches("warning:").count();
        assert_eq!(
            warnings(&run),
            warnings(&gzip_run),
            "{}\n{}",
            run.describe(),
            gzip_run.describe()
        );
        (run, plain)
    }

    /// The name of the input stored as `packing` says.
    pub(super) fn input(&self, packing: Packing) -> String {
        format!("input-{packing:?}")
    }

    /// Exports the sample with `layers` stored as `packing` says into `dest`.
    #[track_caller]
    fn export_packed(&self, layers: &[Vec<u8>], packing: Packing) -> (Run, Snapshot) {
        let input = crafted_as(self.tmp.path(), &self.input(packing), layers, packing);
        let before = self.outside();
        let run = export(
            input.as_os_str(),
            &[format!("type=local,dest={}", path_str(&self.dest()))],
            None,
        );
        run.assert_success();
        assert_eq!(self.outside(), before, "something outside dest changed");
        let work = self.work();
        assert_eq!(fs::read(work.join("sentinel")).unwrap(), b"keep");
        assert_eq!(fs::read(work.join("sentinel-dir/inner")).unwrap(), b"keep");
        assert_eq!(fs::metadata(work.join("sentinel")).unwrap().nlink(), 1);
        assert_eq!(dir_names(&work), ["dest", "sentinel", "sentinel-dir"]);
        let snap = Snapshot::of_dir(&self.dest());
        // No symlink in dest points outside it.
        for (path, item) in &snap.items {
            if let Item::Symlink(_) = item {
                let target = fs::read_link(self.dest().join(path)).unwrap();
                let target = target.to_str().unwrap();
                assert!(!target.starts_with('/'), "{path} -> {target}");
                let depth = path.split('/').count() as i64 - 1;
                let mut level = depth;
                for part in target.split('/') {
                    match part {
                        ".." => level -= 1,
                        "" | "." => {}
                        _ => level += 1,
                    }
                    assert!(level >= 0, "{path} -> {target} climbs out of dest");
                }
            }
        }
        (run, snap)
    }
}
