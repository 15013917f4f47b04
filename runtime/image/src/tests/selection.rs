//! Choosing one image of an input holding several (`INPUT:REF`): by name,
//! tag or digest, and the errors naming the images to choose from.

use super::err;
use crate::testutil::*;
use crate::{Error, open, sha256_digest};

#[test]
fn ref_selection() {
    let f = Fixture::new();
    let a = f.add_image("amd64", b"a");
    let b = f.add_image("amd64", b"b");
    f.write_index(vec![
        entry(&a, &[(crate::layout::REF_NAME, "latest")], true),
        entry(&b, &[(crate::layout::REF_NAME, "v2")], true),
    ]);
    let p = f.path();
    assert_eq!(
        open(&format!("{p}:latest"))
            .unwrap()
            .root()
            .digest()
            .to_string(),
        a.manifest.digest
    );
    assert_eq!(
        open(&format!("{p}:v2"))
            .unwrap()
            .root()
            .digest()
            .to_string(),
        b.manifest.digest
    );
    let by_digest = open(&format!("{p}:{}", b.manifest.digest)).unwrap();
    assert_eq!(by_digest.root().digest().to_string(), b.manifest.digest);
    assert_eq!(by_digest.name(), format!("{p}:{}", b.manifest.digest));

    assert_eq!(
        err(&p).to_string(),
        format!("input {p} holds 2 images (latest, v2); choose one with {p}:REF")
    );
    assert_eq!(
        err(&format!("{p}:nope")).to_string(),
        format!("{p}: no image matches \"nope\" (available: latest, v2)")
    );
    let other = sha256_digest(b"other");
    assert_eq!(
        err(&format!("{p}:{other}")).to_string(),
        format!("{p}: no image matches \"{other}\" (available: latest, v2)")
    );
    assert!(matches!(
        err(&format!("{p}:sha256:abc")),
        Error::InvalidDigest { .. }
    ));
}

#[test]
fn ambiguous_bare_tag() {
    let f = Fixture::new();
    let a = f.add_image("amd64", b"a");
    let b = f.add_image("amd64", b"b");
    f.write_index(vec![
        entry(
            &a,
            &[(crate::layout::CONTAINERD_NAME, "docker.io/library/foo:1")],
            false,
        ),
        entry(
            &b,
            &[(crate::layout::CONTAINERD_NAME, "docker.io/library/bar:1")],
            false,
        ),
    ]);
    let p = f.path();
    assert_eq!(
        err(&format!("{p}:1")).to_string(),
        format!("{p}: several images match \"1\" (available: foo:1, bar:1)")
    );
    assert_eq!(
        open(&format!("{p}:bar:1"))
            .unwrap()
            .root()
            .digest()
            .to_string(),
        b.manifest.digest
    );
}
