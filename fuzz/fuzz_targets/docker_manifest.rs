//! A `docker save` tarball whose `manifest.json` is the fuzz input, beside
//! a config and a layer it may name: opening it must give an image or an
//! error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// Appends one regular file to the archive.
fn add(builder: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, name, data)
}

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("save.tar");
    let Ok(file) = std::fs::File::create(&path) else {
        return;
    };
    let mut builder = tar::Builder::new(file);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let written = add(&mut builder, "manifest.json", data)
        .and_then(|()| add(&mut builder, "config.json", config))
        .and_then(|()| add(&mut builder, "layer.tar", &[0u8; 1024]))
        .and_then(|()| builder.finish());
    if written.is_err() {
        return;
    }
    if let Some(path) = path.to_str() {
        let _ = outport_image::open(path);
    }
});
