//! Text that came from the network or from a user, made safe to show in one line of a log,
//! a Kubernetes condition or an event: control characters (newlines included) become spaces,
//! and the length is bounded, so that no peer can forge log lines or grow what is stored.

/// `text` on one line, at most `max_chars` characters (an ellipsis marks a cut).
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    for (count, c) in text.chars().enumerate() {
        if count >= max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_become_spaces_and_length_is_bounded() {
        assert_eq!(one_line("a\nb\r\tc\u{1b}[31m", 100), "a b  c [31m");
        assert_eq!(one_line("héllo wörld", 5), "héllo…");
        assert_eq!(one_line("short", 5), "short");
        assert_eq!(one_line(&"x".repeat(1 << 20), 10).chars().count(), 11);
    }
}
