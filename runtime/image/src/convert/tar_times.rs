//! Clamping the file times in a layer's tar to a source date epoch, entry
//! by entry, PAX records included.

use std::io::{self, Read, Write};

/// Largest PAX extended header a conversion reads (into memory): Go's
/// archive/tar refuses larger ones too.
pub const MAX_PAX_HEADER: u64 = 1 << 20;

/// Copies the tar `input` to `out` entry by entry, as raw entries (GNU long
/// names and PAX headers kept as they are), with every time later than
/// `epoch` set to `epoch`: the header's mtime (and a GNU header's atime and
/// ctime), and a PAX header's `mtime`, `atime` and `ctime` records.
pub(super) fn rewrite_timestamps(input: impl Read, out: impl Write, epoch: u64) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(out);
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let mut header = entry.header().clone();
        if header.mtime()? > epoch {
            header.set_mtime(epoch);
        }
        if let Some(gnu) = header.as_gnu_mut() {
            if gnu.atime().is_ok_and(|t| t > epoch) {
                gnu.set_atime(epoch);
            }
            if gnu.ctime().is_ok_and(|t| t > epoch) {
                gnu.set_ctime(epoch);
            }
        }
        let kind = header.entry_type();
        if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
            let size = entry.size();
            if size > MAX_PAX_HEADER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a PAX extended header of {size} bytes is over the {MAX_PAX_HEADER}-byte limit"
                    ),
                ));
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            let data = clamp_pax(&data, epoch)?;
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data.as_slice())?;
        } else {
            header.set_cksum();
            builder.append(&header, &mut entry)?;
        }
    }
    builder.into_inner()?;
    Ok(())
}

/// PAX records with their time records later than `epoch` set to `epoch`.
fn clamp_pax(data: &[u8], epoch: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    for record in tar::PaxExtensions::new(data) {
        let record = record?;
        let key = record.key_bytes();
        let mut value = record.value_bytes();
        let clamped = epoch.to_string();
        if matches!(key, b"mtime" | b"atime" | b"ctime") && pax_time_after(value, epoch) {
            value = clamped.as_bytes();
        }
        pax_record(&mut out, key, value);
    }
    Ok(out)
}

/// Whether a PAX time (`seconds[.fraction]`) is later than `epoch`.
fn pax_time_after(value: &[u8], epoch: u64) -> bool {
    let text = String::from_utf8_lossy(value);
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    match whole.parse::<i64>() {
        Ok(seconds) => {
            let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
            seconds > epoch || (seconds == epoch && fraction.bytes().any(|b| b != b'0'))
        }
        Err(_) => false,
    }
}

/// Appends one PAX record, `"<length> <key>=<value>\n"`, its length
/// counting its own digits.
pub(super) fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}
