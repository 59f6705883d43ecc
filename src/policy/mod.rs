//! Least privilege for a sandbox: who a request comes from (named clients), what it may see and
//! call (per-server rules), how often (rate limit) and what it did (audit log). Each part parses
//! its own piece of the config file's `mcpBridge` section; serve calls them per request.

pub mod audit;
mod audit_line;
pub mod check;
pub mod clients;
pub mod filter;
pub mod glob;
pub mod ratelimit;
pub mod rules;

use serde_json::Value;

/// A setting in the `mcpBridge` section that cannot be used. `path` is the JSON path of the
/// offending value (`mcpBridge.servers.everything.policy.tools.allow[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The JSON path of member `key` of the object at `path`.
pub(crate) fn member(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

/// The JSON type of a value, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The object at `path`, or an error naming what it is instead.
pub(crate) fn object<'a>(
    v: &'a Value,
    path: &str,
) -> Result<&'a serde_json::Map<String, Value>, ConfigError> {
    v.as_object().ok_or_else(|| {
        ConfigError::new(path, format!("expected an object, found {}", type_name(v)))
    })
}

/// Refuses members of an object that are not in `known`, so a typo is an error, not a silently
/// ignored rule.
pub(crate) fn only_keys(
    obj: &serde_json::Map<String, Value>,
    path: &str,
    known: &[&str],
) -> Result<(), ConfigError> {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            return Err(ConfigError::new(
                member(path, key),
                format!("unknown setting (expected one of: {})", known.join(", ")),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_names_that_are_not_plain() {
        assert_eq!(
            member("mcpBridge.servers", "everything"),
            "mcpBridge.servers.everything"
        );
        assert_eq!(
            member("mcpBridge.servers", "a b"),
            "mcpBridge.servers[\"a b\"]"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let v = serde_json::json!({"allow": [], "dney": []});
        let err = only_keys(v.as_object().unwrap(), "p.tools", &["allow", "deny"]).unwrap_err();
        assert_eq!(err.path, "p.tools.dney");
        assert!(err.to_string().contains("unknown setting"));
    }
}
