//! Guest text made safe to show: a guest's log lines, progress labels,
//! stdout and stderr, error messages and response values reach a terminal,
//! a log file or a CI console. Raw, a newline would let a guest forge a
//! line of another instance (`[other] error: …`) or a summary line, and an
//! escape sequence would set the terminal's title or colours.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters shown escaped: C0 and C1 controls, DEL, and the
/// Unicode characters that break lines or reorder text on a terminal
/// (line and paragraph separators, bidirectional controls).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` as one line: every control character escaped (`\n`, `\r`, `\t`,
/// `\u{1b}`), so what the guest wrote is still readable but cannot start a
/// line or reach the terminal as a control sequence.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("plain text"), "plain text");
        assert_eq!(
            one_line("ok\n[other] error: forged\r\x1b]0;title\x07"),
            "ok\\n[other] error: forged\\r\\u{1b}]0;title\\u{7}"
        );
        assert_eq!(one_line("a\u{202e}b\u{85}c"), "a\\u{202e}b\\u{85}c");
        assert!(!one_line("x\u{2028}y").contains('\u{2028}'));
    }

    #[test]
    fn truncate_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
