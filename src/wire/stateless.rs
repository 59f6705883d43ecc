//! What both directions of the bridge need to know about the stateless 2026-07-28 revision: the
//! `_meta` envelope keys, how header values are written (`=?base64?…?=` for anything not plain)
//! and read back, and which tool arguments a schema's `x-mcp-header` annotations mirror into
//! `Mcp-Param-*` headers.

use base64::Engine;
use serde_json::Value;

/// The `_meta` key naming a stateless request's protocol version.
pub const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key holding a stateless request's client capabilities.
pub const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The `_meta` key of a result naming the server.
pub const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// A header value as 2026-07-28 writes it: plain when it is visible ASCII without surrounding
/// spaces, otherwise `=?base64?…?=` around the UTF-8 in standard base64.
pub fn encode_header_value(value: &str) -> String {
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !looks_encoded;
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// An argument's header text: strings as they are, integers in decimal, booleans as words;
/// anything else (null, objects, arrays, fractions) sends no header.
pub fn param_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.007e15)
            .map(|f| format!("{}", f as i64)),
        _ => None,
    }
}

/// Where a tool's `x-mcp-header` arguments live: (path of property names, header token).
pub type ParamMap = Vec<(Vec<String>, String)>;

/// Reads the `x-mcp-header` annotations of a tool's input schema. `Err` names why the tool's
/// annotations are invalid (the spec's rules: a token, on a string/integer/boolean property
/// reached through `properties` only, unique ignoring case).
pub fn header_params(schema: &Value) -> Result<ParamMap, String> {
    fn walk(
        node: &Value,
        path: &mut Vec<String>,
        reachable: bool,
        out: &mut ParamMap,
    ) -> Result<(), String> {
        let Value::Object(obj) = node else {
            if let Value::Array(items) = node {
                for item in items {
                    walk(item, path, false, out)?;
                }
            }
            return Ok(());
        };
        for (key, child) in obj {
            if key == "x-mcp-header" {
                if !reachable || path.is_empty() {
                    return Err("x-mcp-header outside a plain property".into());
                }
                let token = child.as_str().ok_or("x-mcp-header is not a string")?;
                let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if token.is_empty() || !token.chars().all(is_tchar) {
                    return Err(format!("x-mcp-header `{token}` is not a header token"));
                }
                if !matches!(
                    obj.get("type").and_then(Value::as_str),
                    Some("string" | "integer" | "boolean")
                ) {
                    return Err(format!(
                        "x-mcp-header `{token}` is on a property that is not a string, integer or boolean"
                    ));
                }
                if out.iter().any(|(_, t)| t.eq_ignore_ascii_case(token)) {
                    return Err(format!("x-mcp-header `{token}` is used twice"));
                }
                out.push((path.clone(), token.to_owned()));
            } else if key == "properties" && reachable {
                if let Value::Object(props) = child {
                    for (name, prop) in props {
                        path.push(name.clone());
                        walk(prop, path, true, out)?;
                        path.pop();
                    }
                }
            } else {
                let mut detached = Vec::new();
                walk(child, &mut detached, false, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), true, &mut out)?;
    Ok(out)
}

/// Reads a header value written by [`encode_header_value`]: the sentinel form is decoded,
/// anything else is taken as it is. `None` for a malformed sentinel (bad base64, not UTF-8).
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(inner) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The value at `path` (property names from the root) of a tool call's `arguments`.
pub fn argument_at<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(arguments, |node, key| node.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_values_are_plain_or_base64() {
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("line1\nline2"),
            "=?base64?bGluZTEKbGluZTI=?="
        );
        assert_eq!(
            encode_header_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(encode_header_value("tab\there"), "=?base64?dGFiCWhlcmU=?=");
        assert_eq!(encode_header_value(""), "");
    }

    #[test]
    fn header_params_follow_properties_only() {
        let schema = json!({"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "nested":{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"}}},
            "plain":{"type":"string"}
        }});
        let map = header_params(&schema).unwrap();
        assert!(map.contains(&(vec!["region".into()], "Region".into())));
        assert!(map.contains(&(vec!["nested".into(), "n".into()], "N".into())));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn invalid_annotations_are_refused() {
        let bad = [
            json!({"properties":{"a":{"type":"number","x-mcp-header":"A"}}}),
            json!({"properties":{"a":{"type":"string","x-mcp-header":"has space"}}}),
            json!({"properties":{"a":{"type":"string","x-mcp-header":"X"},"b":{"type":"string","x-mcp-header":"x"}}}),
            json!({"properties":{"a":{"type":"array","items":{"type":"string","x-mcp-header":"I"}}}}),
            json!({"anyOf":[{"properties":{"a":{"type":"string","x-mcp-header":"A"}}}]}),
        ];
        for schema in bad {
            assert!(header_params(&schema).is_err(), "{schema}");
        }
    }

    #[test]
    fn param_values_render_as_the_spec_says() {
        assert_eq!(param_text(&json!("x")).as_deref(), Some("x"));
        assert_eq!(param_text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(param_text(&json!(42.0)).as_deref(), Some("42"));
        assert_eq!(param_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(param_text(&json!(null)), None);
        assert_eq!(param_text(&json!(1.5)), None);
        assert_eq!(param_text(&json!({"a":1})), None);
    }

    #[test]
    fn header_values_decode_back() {
        for v in [
            "us-west1",
            "Hello, 世界",
            " padded ",
            "=?base64?literal?=",
            "tab\there",
            "",
        ] {
            assert_eq!(
                decode_header_value(&encode_header_value(v)).as_deref(),
                Some(v)
            );
        }
        assert_eq!(decode_header_value("=?base64?!!!?="), None);
    }
}
