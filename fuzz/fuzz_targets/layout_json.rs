//! An OCI layout directory whose `index.json` is the fuzz input: opening it
//! must give an image or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    if std::fs::write(dir.path().join("oci-layout"), layout).is_err()
        || std::fs::write(dir.path().join("index.json"), data).is_err()
        || std::fs::create_dir_all(dir.path().join("blobs/sha256")).is_err()
    {
        return;
    }
    if let Some(path) = dir.path().to_str() {
        let _ = outport_image::open(path);
    }
});
