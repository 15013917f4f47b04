//! Sizes on the command line (`--blob-store-max 10GiB`): a number of
//! bytes, or one with a binary unit, as docker's `--memory` reads them
//! (`k`, `m`, `g`, `t`, with or without `b`/`ib`, any case: powers of 1024).

/// Parses `text` as a size in bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let bad = || {
        format!(
            "{text:?} is not a size: expected bytes, or a number with k, m, g or t (KiB … TiB), e.g. 10GiB"
        )
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is more bytes than outport counts"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert_eq!(parse_size("3 MB"), Ok(3 << 20));
        assert_eq!(parse_size("1k"), Ok(1024));
        for bad in ["", "GiB", "1.5G", "-1", "1x", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
