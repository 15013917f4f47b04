//! Copying many files' bytes out of several layers' views into one file in
//! one host call (`copy-ranges`, contract 0.1.3).
//!
//! A compressed layer's view keeps no decompressed copy: the host
//! decompresses its bytes again as they are copied out. Asked for one file
//! at a time, those decompressions ran one layer after another, each file
//! a round trip through the component; given every range at once, the host
//! copies the ranges of different layers at once, on its cores, each
//! layer's in the order listed (tar order: its view decompresses once).

use super::FileBytes;
use crate::bindings::outport::exporter::image::{self, BlobRange};
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::types::Descriptor;

/// Ranges and blobs one call takes at most (the contract's bounds).
const MAX_RANGES: usize = 1 << 18;
const MAX_BLOBS: usize = 4096;

/// The bytes of one file, to go at `at` of the file written.
pub struct Pending<'a> {
    /// Where they are.
    pub bytes: FileBytes<'a>,
    /// Their size.
    pub len: u64,
    /// Where they go.
    pub at: u64,
}

/// Copies every file of `layers` (each a layer's files, in tar order, all
/// out of the same view) into `file`, in as few `copy-ranges` calls as the
/// contract's bounds allow; `name` names the file written in messages.
pub fn copy_all(file: &Descriptor, layers: &[Vec<Pending<'_>>], name: &str) -> Result<(), Error> {
    let counts: Vec<usize> = layers.iter().map(Vec::len).collect();
    for call in calls(&counts, MAX_RANGES, MAX_BLOBS) {
        let mut blobs: Vec<&image::Blob> = Vec::new();
        let mut ranges = Vec::new();
        for (layer, files) in call {
            let files = &layers[layer][files];
            let Some(first) = files.first() else {
                continue;
            };
            let blob = u32::try_from(blobs.len()).unwrap_or(u32::MAX);
            blobs.push(first.bytes.blob);
            ranges.extend(files.iter().filter(|p| p.len > 0).map(|p| BlobRange {
                blob,
                start: p.bytes.start,
                len: p.len,
                offset: p.at,
            }));
        }
        if ranges.is_empty() {
            continue;
        }
        image::copy_ranges(&blobs, &ranges, file).map_err(|e| match e {
            Error::InvalidImage(m) => Error::InvalidImage(format!("writing {name}: {m}")),
            other => other,
        })?;
    }
    Ok(())
}

/// How the files of some layers (`counts`: how many each has) go into
/// calls of at most `max_ranges` files and `max_blobs` layers: each call's
/// layers with the run of their files it takes, in order.
fn calls(
    counts: &[usize],
    max_ranges: usize,
    max_blobs: usize,
) -> Vec<Vec<(usize, std::ops::Range<usize>)>> {
    let mut calls = vec![Vec::new()];
    let mut files = 0;
    for (layer, &count) in counts.iter().enumerate() {
        let mut from = 0;
        while from < count {
            let full =
                files == max_ranges || calls.last().is_some_and(|call| call.len() == max_blobs);
            if full {
                calls.push(Vec::new());
                files = 0;
            }
            let to = count.min(from + (max_ranges - files));
            if let Some(call) = calls.last_mut() {
                call.push((layer, from..to));
            }
            files += to - from;
            from = to;
        }
    }
    calls.retain(|call| !call.is_empty());
    calls
}

#[cfg(test)]
mod tests {
    use super::calls;

    #[test]
    fn files_go_into_calls_within_both_bounds() {
        // Everything fits one call.
        assert_eq!(calls(&[3, 0, 2], 10, 10), vec![vec![(0, 0..3), (2, 0..2)]]);
        // A layer cut where a call is full of files.
        assert_eq!(
            calls(&[3, 4], 5, 10),
            vec![vec![(0, 0..3), (1, 0..2)], vec![(1, 2..4)]]
        );
        // A layer larger than a call goes in several.
        assert_eq!(
            calls(&[7], 3, 10),
            vec![vec![(0, 0..3)], vec![(0, 3..6)], vec![(0, 6..7)]]
        );
        // Calls of at most two layers.
        assert_eq!(
            calls(&[1, 1, 1], 10, 2),
            vec![vec![(0, 0..1), (1, 0..1)], vec![(2, 0..1)]]
        );
        assert!(calls(&[0, 0], 4, 4).is_empty());
    }
}
