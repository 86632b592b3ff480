//! Clipping of caller-supplied values echoed in error messages: an invalid 4 MB name must
//! not come back as a 4 MB answer (or a 4 MB log line).

/// Longest echo of a caller's value inside a message, in bytes.
pub const ECHO_MAX: usize = 64;

/// Longest message built from caller input (several problems joined), in bytes.
pub const MESSAGE_MAX: usize = 1024;

/// Longest quote of a request value (a URL, a query, a name) inside a backend error, in
/// bytes: enough to recognise it.
pub const QUOTE_MAX: usize = 200;

/// `s` itself when it is at most `max` bytes; otherwise its first `max` bytes (cut at a
/// character boundary) followed by `…` and the full length.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A caller's value as JSON text, clipped for an error message.
pub fn clip_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) if s.len() > ECHO_MAX => format!("\"{}\"", clip(s, ECHO_MAX)),
        _ => {
            let text = v.to_string();
            clip(&text, ECHO_MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_at_a_character_boundary() {
        assert_eq!(clip("abc", 8), "abc");
        let long = "é".repeat(100);
        let c = clip(&long, 5);
        assert!(c.starts_with("éé…"), "{c}");
        assert!(c.ends_with("(200 bytes)"), "{c}");
    }

    #[test]
    fn a_four_megabyte_value_is_echoed_in_under_a_hundred_bytes() {
        let v = serde_json::Value::String("x".repeat(4 << 20));
        assert!(clip_json(&v).len() < 100);
    }
}
