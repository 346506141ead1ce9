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

/// `text` on one line, at most `max_bytes` bytes in UTF-8, the ellipsis that marks a cut
/// included, cut on a character boundary: for limits the API server counts in bytes (an
/// Event's note, 1024 bytes in `events.k8s.io/v1`).
pub fn one_line_bytes(text: &str, max_bytes: usize) -> String {
    const ELLIPSIS: char = '…';
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for (at, c) in text.char_indices() {
        let c = if c.is_control() { ' ' } else { c };
        // The rest fits whole: no ellipsis needed.
        let rest_fits = out.len() + (text.len() - at) <= max_bytes;
        if !rest_fits && out.len() + c.len_utf8() + ELLIPSIS.len_utf8() > max_bytes {
            out.push(ELLIPSIS);
            return out;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{one_line, one_line_bytes};

    #[test]
    fn a_byte_bound_cuts_on_a_character_boundary_ellipsis_included() {
        assert_eq!(one_line_bytes("short", 5), "short");
        assert_eq!(one_line_bytes("a\nb", 10), "a b");
        // 1024 ASCII bytes fit exactly; one more is cut with the ellipsis inside the bound.
        let ascii = "x".repeat(1024);
        assert_eq!(one_line_bytes(&ascii, 1024), ascii);
        let cut = one_line_bytes(&"x".repeat(1025), 1024);
        assert_eq!(cut.len(), 1024);
        assert!(cut.ends_with('…'));
        // Multi-byte text: 2, 3 and 4 bytes a character.
        for c in ['é', '日', '😀'] {
            let text: String = std::iter::repeat_n(c, 600).collect();
            let cut = one_line_bytes(&text, 1024);
            assert!(cut.len() <= 1024, "{} bytes", cut.len());
            assert!(cut.len() > 1024 - 3 - c.len_utf8(), "{} bytes", cut.len());
            assert!(cut.ends_with('…'));
            assert!(cut.trim_end_matches('…').chars().all(|x| x == c));
        }
    }

    #[test]
    fn control_characters_become_spaces_and_length_is_bounded() {
        assert_eq!(one_line("a\nb\r\tc\u{1b}[31m", 100), "a b  c [31m");
        assert_eq!(one_line("héllo wörld", 5), "héllo…");
        assert_eq!(one_line("short", 5), "short");
        assert_eq!(one_line(&"x".repeat(1 << 20), 10).chars().count(), 11);
    }
}
