//! Tests of the whole reader on images built by [`crate::testutil`], by
//! concern; the helpers they share are here.

mod copying;
mod editing;
mod fetching;
mod inputs;
mod nulls;
mod reading;
mod selection;
mod sharing;
mod validation;

use std::io::Read;

use crate::{Blob, Error, open};

fn err(input: &str) -> Error {
    match open(input) {
        Ok(img) => panic!("{input} opened: root {:?}", img.root()),
        Err(e) => e,
    }
}

fn read_to_end(blob: &Blob) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = blob.open();
    let mut buf = [0u8; 7]; // odd chunk size on purpose
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}
