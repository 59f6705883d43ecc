//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9110 §11.6.1): the `Bearer` challenge's
//! parameters (`resource_metadata`, `scope`, `error`) out of a header that may hold several.

use std::collections::BTreeMap;

/// The parameters of a `Bearer` challenge (RFC 6750 §3), names lowercased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    /// Parameter name (lowercased) → value.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
    /// The `scope` parameter split into scopes.
    pub fn scopes(&self) -> Option<Vec<String>> {
        self.get("scope")
            .map(split_scopes)
            .filter(|s| !s.is_empty())
    }
}

/// Splits a space-separated scope string.
pub fn split_scopes(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

/// Finds the `Bearer` challenge in a `WWW-Authenticate` value (which may hold several
/// challenges). Tolerant of junk: a malformed header gives what could be read, never a panic.
pub fn parse_bearer(header: &str) -> Option<Challenge> {
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        let scheme_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == ',')
            .unwrap_or(rest.len());
        let scheme = &rest[..scheme_end];
        rest = &rest[scheme_end..];
        let mut params = BTreeMap::new();
        // Parameters run until a token that is not followed by `=` (the next scheme).
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
            let name_end = rest
                .find(|c: char| c == '=' || c.is_ascii_whitespace() || c == ',')
                .unwrap_or(rest.len());
            let after = rest[name_end..].trim_start();
            if name_end == 0 || !after.starts_with('=') || after.starts_with("==") {
                break;
            }
            let name = rest[..name_end].to_ascii_lowercase();
            let after = after[1..].trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, next)) = chars.next() {
                                value.push(next);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            } else {
                let end = after.find([',', ' ', '\t']).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            params.insert(name, value);
            rest = remaining;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(Challenge { params });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_in_any_company() {
        let c = parse_bearer(
            r#"Bearer resource_metadata="http://x/.well-known/oauth-protected-resource/mcp", scope="a b""#,
        )
        .unwrap();
        assert_eq!(
            c.get("resource_metadata").unwrap(),
            "http://x/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(c.scopes().unwrap(), vec!["a", "b"]);
        let c = parse_bearer(r#"Basic realm="x", Bearer error="insufficient_scope",scope=read"#)
            .unwrap();
        assert_eq!(c.get("error"), Some("insufficient_scope"));
        assert_eq!(c.get("scope"), Some("read"));
        let c = parse_bearer(r#"bearer realm="a\"b""#).unwrap();
        assert_eq!(c.get("realm"), Some("a\"b"));
        assert!(parse_bearer("Basic realm=x").is_none());
        assert_eq!(parse_bearer("Bearer").unwrap(), Challenge::default());
        for junk in [
            "",
            "=",
            "Bearer =",
            "Bearer a=\"",
            "Bearer a=\"\\",
            ",,,",
            "Bearer ==x",
            "\u{0}é=\"é",
        ] {
            let _ = parse_bearer(junk);
        }
    }
}
