//! Walks a tar as it is decompressed and keeps in a skeleton every byte a
//! header-only reader reads: each header block, the data of extension
//! entries (PAX `x`/`g`, GNU long names `L`/`K`) and the archive's tail.
//! Sizes come from the header (octal or base-256) or a PAX `size` record
//! for the next entry. Anything it cannot parse ends the walk: what it kept
//! is still exact, the rest is read by decompressing.

use super::skeleton::Recorder;

/// A tar block.
const BLOCK: u64 = 512;
/// Most bytes of the archive's tail (from its first zero block) kept.
const MAX_TAIL: u64 = 64 << 10;
/// Largest PAX header parsed for a `size` record.
const MAX_PAX: usize = 1 << 20;

/// Where the walk is.
enum State {
    /// Reading a header block (`have` bytes of it so far).
    Header { block: Box<[u8; 512]>, have: usize },
    /// Passing over `left` bytes of a file's data.
    Data { left: u64 },
    /// Keeping `left` bytes of an extension entry's data; a PAX one's
    /// bytes are gathered to find its `size` record.
    Extension { left: u64, pax: Option<Vec<u8>> },
    /// Keeping the tail, `left` bytes more at most.
    Tail { left: u64 },
    /// Not keeping anything more.
    Done,
}

/// A tar walker feeding a [`Recorder`].
pub(crate) struct Walker {
    recorder: Recorder,
    state: State,
    /// Offset in the tar of the next byte observed.
    pos: u64,
    /// A PAX header's `size` for the next entry.
    next_size: Option<u64>,
}

impl Walker {
    pub(crate) fn new(recorder: Recorder) -> Walker {
        Walker {
            recorder,
            state: header(),
            pos: 0,
            next_size: None,
        }
    }

    /// The recorder, once the whole tar was observed.
    pub(crate) fn into_recorder(self) -> Recorder {
        self.recorder
    }

    /// Observes the next bytes of the tar.
    pub(crate) fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let taken = self.step(bytes);
            self.pos += taken as u64;
            bytes = &bytes[taken..];
        }
    }

    /// Takes some of `bytes` in the current state; returns how many.
    fn step(&mut self, bytes: &[u8]) -> usize {
        let pos = self.pos;
        match &mut self.state {
            State::Header { block, have } => {
                let n = (512 - *have).min(bytes.len());
                block[*have..*have + n].copy_from_slice(&bytes[..n]);
                *have += n;
                if *have == 512 {
                    let block = std::mem::replace(block, Box::new([0; 512]));
                    self.recorder.keep(pos + n as u64 - BLOCK, &block[..]);
                    self.state = self.after_header(&block);
                }
                n
            }
            State::Data { left } => {
                let n = take(left, bytes);
                if *left == 0 {
                    self.state = header();
                }
                n
            }
            State::Extension { left, pax } => {
                let n = take(left, bytes);
                self.recorder.keep(pos, &bytes[..n]);
                if let Some(gathered) = pax {
                    gathered.extend_from_slice(&bytes[..n]);
                }
                if *left == 0 {
                    if let Some(gathered) = pax.take() {
                        self.next_size = pax_size(&gathered);
                    }
                    self.state = header();
                }
                n
            }
            State::Tail { left } => {
                let n = take(left, bytes);
                self.recorder.keep(pos, &bytes[..n]);
                if *left == 0 {
                    self.state = State::Done;
                }
                n
            }
            State::Done => bytes.len(),
        }
    }

    /// What follows the header `block`.
    fn after_header(&mut self, block: &[u8; 512]) -> State {
        if block.iter().all(|&b| b == 0) {
            // The end blocks: what follows is kept as is, up to a bound.
            return State::Tail {
                left: MAX_TAIL - BLOCK,
            };
        }
        if !checksum_ok(block) {
            return State::Done;
        }
        let Some(size) = parse_size(&block[124..136]) else {
            return State::Done;
        };
        let kind = block[156];
        let padded = |size: u64| size.checked_next_multiple_of(BLOCK);
        match kind {
            b'x' | b'g' | b'L' | b'K' => {
                let Some(left) = padded(size) else {
                    return State::Done;
                };
                let pax = (kind == b'x' && size <= MAX_PAX as u64)
                    .then(|| Vec::with_capacity(size as usize));
                empty_or(left, State::Extension { left, pax })
            }
            _ => {
                let size = self.next_size.take().unwrap_or(size);
                match padded(size) {
                    Some(left) => empty_or(left, State::Data { left }),
                    None => State::Done,
                }
            }
        }
    }
}

/// A fresh header state.
fn header() -> State {
    State::Header {
        block: Box::new([0; 512]),
        have: 0,
    }
}

/// `state`, or the next header's if it has no bytes to take.
fn empty_or(left: u64, state: State) -> State {
    if left == 0 { header() } else { state }
}

/// Takes up to `left` of `bytes`: how many, `left` lowered by them.
fn take(left: &mut u64, bytes: &[u8]) -> usize {
    let n = usize::try_from(*left)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    *left -= n as u64;
    n
}

/// Whether the header's checksum (unsigned or signed sum, the checksum
/// field counted as spaces) is the one it holds.
fn checksum_ok(block: &[u8; 512]) -> bool {
    let Some(stored) = parse_octal(&block[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// A size field: octal (NUL or space ended) or base-256 (high bit set).
fn parse_size(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut value = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    parse_octal(field)
}

/// An octal number with optional leading spaces, ended by NUL or space.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != 0 && b != b' ');
    let mut value = 0u64;
    let mut any = false;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// The `size` record of a PAX header's records, if it has a valid one.
fn pax_size(records: &[u8]) -> Option<u64> {
    let mut rest = records;
    let mut size = None;
    while !rest.is_empty() && rest[0] != 0 {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        let record = record.strip_suffix(b"\n")?;
        if let Some(value) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(value).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    size
}
