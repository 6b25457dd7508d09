//! Text that leaves bn-lab for a shell or a terminal: words quoted so a shell reads them back
//! unchanged on one line ([`shell_quote`]), and text with its control characters made visible
//! ([`visible`]) so that nothing bn-lab prints can move the cursor, clear the screen or retitle
//! the terminal. No other module of the crate is used here.

/// Whether `c` must not reach a terminal raw: a C0 or C1 control character (ESC, BEL, CR, ...;
/// also newline and tab, which callers allow where they mean them) or a bidirectional
/// override or isolate, which reorders what is shown around it.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character of `s` that must not reach a terminal, other than those of `allowed`
/// (`"\n"` for a multi-line field).
pub fn first_unsafe_char(s: &str, allowed: &str) -> Option<char> {
    s.chars()
        .find(|&c| is_unsafe_char(c) && !allowed.contains(c))
}

/// `c` as a message shows it: `U+001B`.
pub fn describe_char(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// `s` with every character [`is_unsafe_char`] holds for, other than newlines, written as a
/// `\uXXXX` escape (`\u001b`): safe to print on a terminal. Everything else is unchanged. The
/// escape is JSON's, so JSON stays valid and means the same (inside a string the escape
/// decodes to the character it replaces; outside strings JSON has no such characters).
pub fn visible(s: &str) -> String {
    visible_except(s, "\n")
}

/// [`visible`], keeping the characters of `allowed` raw (`""` escapes newlines too).
pub fn visible_except(s: &str, allowed: &str) -> String {
    if first_unsafe_char(s, allowed).is_none() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) && !allowed.contains(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A word as a POSIX shell reads it back unchanged, always as one word on one line: as is
/// when made of safe characters, in single quotes otherwise (a `'` inside as `'\''`), and in
/// bash's `$'...'` with `\xHH` escapes when it holds a control character (a newline, say),
/// which single quotes would carry raw onto a second line.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:,=+@%".contains(c));
    if safe {
        return s.to_string();
    }
    if !s.chars().any(|c| c.is_control()) {
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            // C1 controls: their UTF-8 bytes, escaped (no raw byte of them is a newline, but
            // a terminal may read them as controls).
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Words joined by spaces, each [`shell_quote`]d: a command line to copy into a shell.
pub fn shell_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_stay_bare_and_others_are_quoted_on_one_line() {
        assert_eq!(shell_quote("--depth"), "--depth");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(touch x)"), "'$(touch x)'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a\nb'c\\"), r"$'a\x0ab\'c\\'");
        assert_eq!(shell_quote("\u{1b}[2J"), r"$'\x1b[2J'");
        assert_eq!(shell_quote("\u{85}"), r"$'\xc2\x85'");
        assert!(!shell_quote("x\ry\nz").contains(['\n', '\r']));
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(visible("plain text"), "plain text");
        assert_eq!(visible("a\u{1b}]0;x\u{7}b"), r"a\u001b]0;x\u0007b");
        assert_eq!(visible("fake\rverdict"), r"fake\u000dverdict");
        assert_eq!(visible("two\nlines"), "two\nlines");
        assert_eq!(visible_except("two\nlines", ""), r"two\u000alines");
        assert_eq!(visible("\u{202e}abc"), r"\u202eabc");
        // In JSON, the escape means the character it replaces.
        let json = serde_json::to_string("a\u{85}b\u{202e}").unwrap();
        let back: String = serde_json::from_str(&visible(&json)).unwrap();
        assert_eq!(back, "a\u{85}b\u{202e}");
        assert_eq!(first_unsafe_char("ok\tno", ""), Some('\t'));
        assert_eq!(first_unsafe_char("ok\nyes", "\n"), None);
    }
}
