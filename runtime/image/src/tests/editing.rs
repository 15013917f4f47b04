//! An image changed by its caller: a blob inserted, the root replaced.

use std::os::unix::fs::FileExt;

use crate::testutil::*;
use crate::{open, sha256_digest};

#[test]
fn insert_blob_and_set_root() {
    let (f, _) = Fixture::multi_platform();
    let mut image = open(&f.path()).unwrap();
    let before = image.blobs().count();
    let data = br#"{"schemaVersion":2}"#.to_vec();
    let desc = image.insert_blob(OCI_INDEX, data.clone());
    assert_eq!(desc.digest().to_string(), sha256_digest(&data));
    assert_eq!(desc.size(), data.len() as u64);
    assert_eq!(image.blobs().count(), before + 1);
    image.insert_blob(OCI_INDEX, data.clone());
    assert_eq!(
        image.blobs().count(),
        before + 1,
        "same digest is not added twice"
    );
    image.set_root(desc.clone());
    assert_eq!(image.root(), &desc);
    let blob = image.blob(desc.digest().as_ref()).unwrap();
    assert!(blob.is_verified());
    let dest = tempfile::tempfile().unwrap();
    assert_eq!(blob.copy_to_file(&dest, 3).unwrap(), data.len() as u64);
    let mut back = vec![0; data.len()];
    dest.read_exact_at(&mut back, 3).unwrap();
    assert_eq!(back, data);
}
