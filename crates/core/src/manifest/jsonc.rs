//! `taskdef.json` as the seed documents write it: JSON with `//` (and `/* */`) comments.
//!
//! Comments are blanked out with spaces rather than removed, so every line and column that
//! serde_json reports still points at the author's file.

/// Replaces comments outside strings with spaces, keeping newlines.
pub(crate) fn blank_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if b == b'"' {
                in_string = false;
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            out.extend_from_slice(b"  ");
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            if i < bytes.len() {
                out.extend_from_slice(b"  ");
                i += 2;
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    // Only ASCII bytes were replaced by ASCII spaces, and multi-byte sequences inside comments
    // became one space per byte, so the result is valid UTF-8.
    String::from_utf8(out).expect("blanking comments keeps UTF-8 valid")
}

/// Parses JSON that may carry comments. Errors carry serde_json's line and column.
pub fn parse(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str(&blank_comments(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_comments_are_dropped_but_urls_in_strings_survive() {
        let text = "{\n  // the role\n  \"a\": \"http://x//y\" // trailing\n}";
        let v = parse(text).unwrap();
        assert_eq!(v["a"], "http://x//y");
    }

    #[test]
    fn block_comments_keep_line_numbers() {
        let text = "{ /* one\n two */ \"a\": 1,\n \"b\": }";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line(), 3);
    }

    #[test]
    fn escaped_quotes_do_not_end_a_string() {
        let v = parse(r#"{"a": "say \"//hi\""}"#).unwrap();
        assert_eq!(v["a"], "say \"//hi\"");
    }
}
