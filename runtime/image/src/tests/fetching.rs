//! Layers an input only names, fetched by a [`Fetch`] on first read: never
//! ahead of the consumers, once however many read at once, a failure met
//! by every reader; other missing blobs are still errors.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use oci_spec::image::Descriptor;

use crate::testutil::Fixture;
use crate::{Error, Fetch, FetchError, open_path_fetching};

/// Serves blobs from a directory the layout does not see, counting calls.
#[derive(Debug)]
struct FromDir {
    dir: PathBuf,
    calls: AtomicUsize,
}

impl Fetch for FromDir {
    fn fetch(&self, descriptor: &Descriptor) -> Result<File, FetchError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Slow enough that concurrent readers meet the fetch in flight.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let hex = descriptor.digest().digest().to_owned();
        File::open(self.dir.join(hex)).map_err(|e| Arc::new(e) as FetchError)
    }
}

/// The two-platform fixture with its layers moved out of the layout.
fn remote_layers() -> (Fixture, Vec<crate::testutil::Img>, Arc<FromDir>) {
    let (f, imgs) = Fixture::multi_platform();
    let dir = f.tmp.path().join("remote");
    std::fs::create_dir(&dir).unwrap();
    for img in &imgs {
        std::fs::rename(f.blob_path(&img.layer), dir.join(img.layer.hex())).unwrap();
    }
    let fetch = Arc::new(FromDir {
        dir,
        calls: AtomicUsize::new(0),
    });
    (f, imgs, fetch)
}

#[test]
fn a_layer_is_fetched_on_first_read_once() {
    let (f, imgs, fetch) = remote_layers();
    let image = open_path_fetching(&f.dir, "remote", None, fetch.clone()).unwrap();
    // Verifying ahead leaves layers still to fetch alone.
    image.verify_ahead(&AtomicUsize::new(0), &AtomicBool::new(false));
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 0);
    let blob = image.blob(&imgs[0].layer.digest).unwrap();
    assert!(!blob.is_present());
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (blob, barrier, f, want) = (blob, &barrier, &f, &imgs[0].layer_bytes);
            s.spawn(move || {
                let dest = File::create(f.out(&format!("copy-{i}"))).unwrap();
                barrier.wait();
                blob.copy_to_file(&dest, 0).unwrap();
                assert_eq!(&std::fs::read(f.out(&format!("copy-{i}"))).unwrap(), want);
            });
        }
    });
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 1);
    assert!(blob.is_present() && blob.is_verified());
    // The other platform's layer was never asked for.
    assert!(!image.blob(&imgs[1].layer.digest).unwrap().is_present());
}

#[test]
fn a_failed_fetch_fails_every_read() {
    let (f, imgs, fetch) = remote_layers();
    std::fs::remove_file(fetch.dir.join(imgs[1].layer.hex())).unwrap();
    let image = open_path_fetching(&f.dir, "remote", None, fetch.clone()).unwrap();
    let blob = image.blob(&imgs[1].layer.digest).unwrap();
    for _ in 0..2 {
        let e = blob.read_all(1 << 20).unwrap_err();
        assert!(
            matches!(e, Error::Fetch { .. }) && e.is_damaged_blob(),
            "{e}"
        );
        assert!(e.to_string().contains(&imgs[1].layer.digest), "{e}");
        let copied = blob.copy_to_file(&File::create(f.out("copy")).unwrap(), 0);
        assert!(matches!(copied, Err(Error::Fetch { .. })));
    }
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn only_layers_are_left_to_fetch() {
    let (f, imgs, fetch) = remote_layers();
    std::fs::remove_file(f.blob_path(&imgs[0].config)).unwrap();
    let e = open_path_fetching(&f.dir, "remote", None, fetch).unwrap_err();
    assert!(matches!(e, Error::MissingBlob { .. }), "{e}");
}
