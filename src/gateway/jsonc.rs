//! JSON with comments (VS Code's `mcp.json` is JSONC): `//` and `/* */` comments and trailing
//! commas become spaces, so serde_json reads the rest and its line and column stay true.

/// The text with comments and trailing commas blanked out (newlines kept); strings untouched.
pub fn strip(text: &str) -> String {
    let mut b = text.as_bytes().to_vec();
    blank_comments(&mut b);
    blank_trailing_commas(&mut b);
    // Only whole comments (ASCII delimiters plus everything between) became ASCII spaces, so
    // every multi-byte character is either intact or entirely blanked.
    String::from_utf8(b).unwrap_or_else(|_| text.to_owned())
}

fn blank_comments(b: &mut [u8]) {
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (c, b.get(i + 1)) {
            (b'"', _) => in_string = true,
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    b[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (b'/', Some(b'*')) => {
                // An unclosed block comment is left for serde_json to report where it starts.
                let Some(p) = b[i + 2..].windows(2).position(|w| w == b"*/") else {
                    return;
                };
                let end = i + 2 + p + 2;
                for x in &mut b[i..end] {
                    if *x != b'\n' {
                        *x = b' ';
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn blank_trailing_commas(b: &mut [u8]) {
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b',' {
            let next = b[i + 1..].iter().find(|x| !x.is_ascii_whitespace());
            if matches!(next, Some(b'}') | Some(b']')) {
                b[i] = b' ';
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_trailing_commas_go_positions_stay() {
        let src = "{\n  // a comment, with \"quotes\"\n  \"a\": [1, 2,], /* é */ \"b\": \"x//y/*z*/,}\",\n}";
        let out = strip(src);
        assert_eq!(out.len(), src.len());
        assert_eq!(out.lines().count(), src.lines().count());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], serde_json::json!([1, 2]));
        assert_eq!(v["b"], "x//y/*z*/,}");
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        let out = strip(r#"{"a": "q\"//not a comment", "b": 1,}"#);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], "q\"//not a comment");
    }

    #[test]
    fn block_comments_keep_line_numbers() {
        let out = strip("/* one\ntwo */\n{\"a\": }");
        let err = serde_json::from_str::<serde_json::Value>(&out).unwrap_err();
        assert_eq!(err.line(), 3);
    }

    #[test]
    fn an_unclosed_comment_is_left_for_the_parser() {
        let out = strip("{\"a\": 1} /* never closed");
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_err());
    }

    #[test]
    fn odd_inputs_do_not_panic_and_stay_utf8() {
        for s in [
            "",
            "/",
            "/*",
            "*/",
            "\"\\",
            "\"",
            ",",
            "/*é*/",
            "//é",
            "é,]",
            "{\"a\":1,/*x*/}",
        ] {
            let out = strip(s);
            assert_eq!(out.len(), s.len(), "{s:?}");
        }
        let v: serde_json::Value = serde_json::from_str(&strip("{\"a\":1,/*x*/}")).unwrap();
        assert_eq!(v["a"], 1);
    }
}
