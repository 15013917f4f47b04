//! `touch_refresh`, as BuildKit's s3 cache has it: a blob already in the
//! bucket whose `Last-Modified` is older than this is copied onto itself
//! (a "touch"), so lifecycle rules that expire old objects keep the blobs a
//! cache still names. The value is a Go duration (`24h`, `30m`, `1h30m`,
//! `1.5h`, `0s`), read the way Go's `time.ParseDuration` reads it.

/// Nanoseconds in one unit of each Go duration suffix.
const UNITS: &[(&str, i128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The largest duration Go represents (an `int64` of nanoseconds).
const MAX_NANOS: i128 = i64::MAX as i128;

/// A `touch_refresh=` value that is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotADuration(pub String);

impl std::fmt::Display for NotADuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "touch_refresh={:?}: expected a duration such as 24h, 30m, 1h30m or 0s (units ns, us, ms, s, m, h)",
            self.0
        )
    }
}

impl std::error::Error for NotADuration {}

/// How old a blob may get before an export refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TouchRefresh {
    nanos: i128,
}

impl TouchRefresh {
    /// BuildKit's default, 24 hours.
    pub const DEFAULT: TouchRefresh = TouchRefresh {
        nanos: 24 * 3_600_000_000_000,
    };

    /// Reads a Go duration: an optional sign, then one or more decimal
    /// numbers (with an optional fraction), each with a unit of `ns`, `us`
    /// (`µs`), `ms`, `s`, `m` or `h`; `0` alone needs none.
    pub fn parse(text: &str) -> Result<TouchRefresh, NotADuration> {
        let bad = || NotADuration(text.to_owned());
        let (negative, mut rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if rest == "0" {
            return Ok(TouchRefresh { nanos: 0 });
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut nanos: i128 = 0;
        while !rest.is_empty() {
            let whole_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (whole, after) = rest.split_at(whole_end);
            let (fraction, after) = match after.strip_prefix('.') {
                Some(after) => {
                    let end = after
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(after.len());
                    after.split_at(end)
                }
                None => ("", after),
            };
            if whole.is_empty() && fraction.is_empty() {
                return Err(bad());
            }
            let unit_end = after.find(|c: char| c == '.' || c.is_ascii_digit());
            let (unit, after) = after.split_at(unit_end.unwrap_or(after.len()));
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(bad)?;
            nanos += component(whole, fraction, scale).ok_or_else(bad)?;
            if nanos > MAX_NANOS {
                return Err(bad());
            }
            rest = after;
        }
        Ok(TouchRefresh {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// Whether a blob last modified at `modified` (Unix seconds) is due a
    /// refresh at `now` (Unix seconds and nanoseconds): older than the
    /// duration. A blob of unknown age is refreshed.
    pub fn due(&self, modified: Option<i64>, now: (u64, u32)) -> bool {
        let Some(modified) = modified else {
            return true;
        };
        let now = i128::from(now.0) * 1_000_000_000 + i128::from(now.1);
        now - i128::from(modified) * 1_000_000_000 > self.nanos
    }
}

/// `whole.fraction` units of `scale` nanoseconds (the fraction's digits
/// beyond a nanosecond dropped); `None` past Go's range.
fn component(whole: &str, fraction: &str, scale: i128) -> Option<i128> {
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        nanos += i128::from(digit - b'0') * place;
    }
    (nanos <= MAX_NANOS).then_some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i128 {
        TouchRefresh::parse(text).unwrap().nanos
    }

    #[test]
    fn go_durations() {
        const S: i128 = 1_000_000_000;
        assert_eq!(nanos("24h"), 24 * 3600 * S);
        assert_eq!(TouchRefresh::parse("24h"), Ok(TouchRefresh::DEFAULT));
        assert_eq!(nanos("30m"), 1800 * S);
        assert_eq!(nanos("1h30m"), 5400 * S);
        assert_eq!(nanos("1.5h"), 5400 * S);
        assert_eq!(nanos(".5s"), S / 2);
        assert_eq!(nanos("1.s"), S);
        assert_eq!(nanos("0s"), 0);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("+5s"), 5 * S);
        assert_eq!(nanos("-1m"), -60 * S);
        assert_eq!(nanos("1h2m3s4ms5us6ns"), 3723 * S + 4_005_006);
        assert_eq!(nanos("3\u{b5}s"), 3000);
        assert_eq!(nanos("2562047h"), 2_562_047 * 3600 * S);
        for bad in [
            "", "-", "1", "h", "1d", "1 h", "1h ", ".s", "1..5s", "1hh", "24H", "2562048h", "s1",
        ] {
            let e = TouchRefresh::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("touch_refresh="), "{bad:?}: {e}");
        }
    }

    #[test]
    fn older_than_the_duration_is_due() {
        let hour = TouchRefresh::parse("1h").unwrap();
        let modified = 1_700_000_000;
        let now = |secs: i64| (u64::try_from(modified + secs).unwrap(), 0);
        assert!(!hour.due(Some(modified), now(3600)));
        assert!(hour.due(Some(modified), (now(3600).0, 1)));
        assert!(!hour.due(Some(modified), now(10)));
        assert!(hour.due(None, now(0)));
        let zero = TouchRefresh::parse("0s").unwrap();
        assert!(zero.due(Some(modified), now(1)));
        assert!(!zero.due(Some(modified), now(0)));
    }
}
