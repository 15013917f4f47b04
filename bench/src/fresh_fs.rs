//! Where every timed run writes: a freshly made filesystem of the kind
//! this machine's disk is (ext4 without a journal), so that no case
//! inherits another's deletions. On ext4 without a journal, creating an
//! inode for a minute or more after many were freed skips each recently
//! freed one, and a disk mounted `discard` is busy discarding the freed
//! blocks: whichever case followed a large deletion paid for it.
//!
//! Once per benchmark a backing file is preallocated (`fallocate`) and
//! reused for every run, so the outer disk's allocation does not move.
//! Before each timed run (untimed) it gets a new `mkfs.ext4 -O
//! ^has_journal -E nodiscard,lazy_itable_init=0` (no lazy inode table
//! initialisation: no background thread during the timed part), is
//! mounted (`-o loop,nodiscard`, the loop device then switched to direct
//! I/O) at the output directory, and `sync` runs;
//! after the run it is unmounted ([`Run`]'s drop, also on errors and after
//! Ctrl-C). A mount a killed benchmark left behind is unmounted first.
//!
//! Where that cannot be done (not root, no loop device, mount refused),
//! outputs go to the output directory on the main disk as before, each run
//! after removing the previous outputs, and one line says that the figures
//! may then depend on case order.

use std::cell::Cell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::interrupt;
use crate::runner::{self, Cmd};

const MKFS_OPTIONS: [&str; 6] = [
    "-q",
    "-F",
    "-O",
    "^has_journal",
    "-E",
    "nodiscard,lazy_itable_init=0",
];
const MOUNT_OPTIONS: &str = "loop,nodiscard";

/// The output directory and how it is made for each run.
#[derive(Debug)]
pub struct FreshFs {
    /// Where outputs are written (the mount point).
    root: PathBuf,
    /// The preallocated image the filesystem is made in.
    backing: PathBuf,
    /// Its size.
    bytes: u64,
    /// Why outputs are on the main disk instead, if they are.
    fallback: Option<String>,
    /// A run's filesystem could not be unmounted: no more runs.
    stuck: Cell<bool>,
}

/// One timed run's filesystem, unmounted when dropped.
#[derive(Debug)]
pub struct Run<'a> {
    fs: &'a FreshFs,
    mounted: bool,
}

impl FreshFs {
    /// Outputs under `root`, each run in a fresh filesystem made in
    /// `backing` (`bytes` long) when this machine allows it; prints one
    /// line when it does not.
    pub fn prepare(root: &Path, backing: &Path, bytes: u64) -> Result<FreshFs> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        unmount_stale(root, backing)?;
        clear(root)?;
        let mut fs = FreshFs {
            root: root.to_owned(),
            backing: backing.to_owned(),
            bytes,
            fallback: None,
            stuck: Cell::new(false),
        };
        if let Err(e) = fs.try_mount() {
            eprintln!(
                "bench: no fresh filesystem per run ({e:#}): outputs go to {} on the main disk, and the figures may depend on case order",
                root.display()
            );
            fs.fallback = Some(format!("{e:#}"));
        }
        interrupt::install();
        Ok(fs)
    }

    /// Allocates the backing file and mounts and unmounts it once.
    fn try_mount(&self) -> Result<()> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("not root");
        }
        let len = std::fs::metadata(&self.backing).map_or(0, |m| m.len());
        if len < self.bytes {
            runner::run_ok(&Cmd::new(
                "fallocate",
                [
                    OsString::from("-l"),
                    self.bytes.to_string().into(),
                    self.backing.clone().into(),
                ],
            ))?;
        }
        drop(self.mount()?);
        Ok(())
    }

    fn mount(&self) -> Result<Run<'_>> {
        let mut mkfs: Vec<OsString> = MKFS_OPTIONS.iter().map(OsString::from).collect();
        mkfs.push(self.backing.clone().into());
        runner::run_ok(&Cmd::new("mkfs.ext4", mkfs))?;
        runner::run_ok(&Cmd::new(
            "mount",
            [
                OsString::from("-o"),
                MOUNT_OPTIONS.into(),
                self.backing.clone().into(),
                self.root.clone().into(),
            ],
        ))?;
        let run = Run {
            fs: self,
            mounted: true,
        };
        // Direct I/O from the loop device to its backing file: with the
        // default (buffered), each write is cached twice and writeback
        // through the loop device throttles writers: `cp` of a 240 MB
        // file took 1.7 s of system time there against 0.07 s here and
        // on the main disk, so a case was charged by the bytes it wrote.
        for device in loop_devices(&self.backing)? {
            runner::run_ok(&Cmd::new("losetup", ["--direct-io=on", device.as_str()]))?;
        }
        Ok(run)
    }

    /// Readies the output directory for one timed run whose outputs are
    /// `outputs`: a fresh filesystem (or, without one, the outputs of the
    /// previous run removed), the outputs' parents, [`Self::tmp_dir`] and
    /// [`Self::blob_dir`] created, and `sync` run. Untimed.
    pub fn before_run(&self, outputs: &[PathBuf]) -> Result<Run<'_>> {
        interrupt::check()?;
        if self.stuck.get() {
            bail!("{} is still mounted: stopping", self.root.display());
        }
        let run = match self.fallback {
            None => self.mount()?,
            Some(_) => {
                clean(outputs)?;
                Run {
                    fs: self,
                    mounted: false,
                }
            }
        };
        let parents = outputs.iter().filter_map(|o| o.parent());
        for dir in [self.tmp_dir(), self.blob_dir()]
            .iter()
            .map(PathBuf::as_path)
            .chain(parents)
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        sync()?;
        Ok(run)
    }

    /// `cmd` with its temporary files (`TMPDIR`) in the output directory.
    pub fn cmd(&self, cmd: &Cmd) -> Cmd {
        cmd.clone().env("TMPDIR", self.tmp_dir())
    }

    /// The temporary directory of each run.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where outport's blob store (`$OUTPORT_CACHE_DIR/blobs`) points.
    pub fn blob_dir(&self) -> PathBuf {
        self.root.join("outport-blobs")
    }

    /// One line for the printed header.
    pub fn describe(&self) -> String {
        match &self.fallback {
            None => format!(
                "outputs on a fresh ext4 (no journal, nodiscard) for each run: a {:.1} GiB loop image, {}",
                self.bytes as f64 / f64::from(1 << 30),
                self.backing.display()
            ),
            Some(why) => {
                format!("outputs on the main disk ({why}): figures may depend on case order")
            }
        }
    }

    /// The same, for `results.json`.
    pub fn to_json(&self) -> Value {
        json!({
            "fresh_per_run": self.fallback.is_none(),
            "kind": self.fallback.is_none().then_some("ext4 without a journal, nodiscard, loop device"),
            "backing_file": self.fallback.is_none().then(|| self.backing.display().to_string()),
            "backing_bytes": self.fallback.is_none().then_some(self.bytes),
            "mount_point": self.root.display().to_string(),
            "fallback_reason": self.fallback,
        })
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if self.mounted
            && let Err(e) = unmount(&self.fs.root)
        {
            eprintln!("bench: {e:#}");
            self.fs.stuck.set(true);
        }
    }
}

/// Flushes dirty pages to disk.
pub fn sync() -> Result<()> {
    runner::run_ok(&Cmd::new("sync", Vec::<OsString>::new()))?;
    Ok(())
}

/// Unmounts `root`, retrying for a while if it is busy.
fn unmount(root: &Path) -> Result<()> {
    let umount = Cmd::new("umount", [root]);
    let mut last = String::new();
    for _ in 0..50 {
        let run = runner::run(&umount)?;
        if run.success {
            return Ok(());
        }
        last = run.stderr.trim().to_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "cannot unmount {} ({last}): unmount it by hand",
        root.display()
    )
}

/// Unmounts what a killed benchmark left mounted at `root` (a loop device
/// of `backing`); fails if something else is mounted there.
fn unmount_stale(root: &Path, backing: &Path) -> Result<()> {
    let ours = loop_devices(backing)?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let point = escape(root);
    // Fields: id parent dev root MOUNT-POINT options... - type SOURCE ...
    let sources = mountinfo.lines().filter_map(|line| {
        let mut fields = line.split(' ');
        (fields.nth(4)? == point).then_some(())?;
        let mut after = line.split(" - ").nth(1)?.split(' ');
        after.nth(1).map(str::to_owned)
    });
    // Innermost first: the last line is the mount on top.
    let sources: Vec<String> = sources.collect();
    for source in sources.iter().rev() {
        if !ours.contains(source) {
            bail!(
                "{} is a mount point of {source}, not of this benchmark: unmount it or pass another --dir",
                root.display()
            );
        }
        eprintln!(
            "bench: unmounting {} (left by an interrupted run)",
            root.display()
        );
        unmount(root)?;
    }
    for device in ours {
        // Detached already when autoclear did it.
        let _ = runner::run(&Cmd::new("losetup", ["-d", device.as_str()]));
    }
    Ok(())
}

/// The loop devices backed by `backing` (`losetup -j`).
fn loop_devices(backing: &Path) -> Result<Vec<String>> {
    if !backing.exists() {
        return Ok(Vec::new());
    }
    let out = std::process::Command::new("losetup")
        .arg("-j")
        .arg(backing)
        .output();
    // No losetup: nothing can be attached.
    let Ok(out) = out else {
        return Ok(Vec::new());
    };
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(dev, _)| dev.to_owned()))
        .collect())
}

/// `path` as `/proc/self/mountinfo` writes it (space, tab, newline and
/// backslash in octal).
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Removes everything in `dir` (the outputs of an earlier run).
fn clear(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    clean(&paths)
}

/// Removes each of `outputs` (a file or a directory) that exists.
pub fn clean(outputs: &[PathBuf]) -> Result<()> {
    for path in outputs {
        let result = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}
