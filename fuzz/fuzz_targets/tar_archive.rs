//! An input archive that is the fuzz input itself (tar headers, names,
//! sizes, the layout or docker files inside): opening it must give an
//! image or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("input.tar");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Some(path) = path.to_str() {
        let _ = outport_image::open(path);
    }
});
