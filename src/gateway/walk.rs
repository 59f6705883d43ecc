//! Typed reads from a `serde_json::Value` that turn every mismatch into a [`ConfigError`] naming
//! the JSON path and the kind of value found (never the value: it may be a secret).

use super::error::{ConfigError, JsonPath};
use super::expand::expand_vars;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The variable lookup used for `${VAR}`: the host environment, or a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads values of one file; carries the file name for errors and the variable lookup.
pub(super) struct Walker<'a> {
    pub file: &'a str,
    pub lookup: Lookup<'a>,
}

impl Walker<'_> {
    pub fn err(&self, path: &JsonPath, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            path: path.to_string(),
            problem: problem.into(),
        }
    }

    fn expected(&self, path: &JsonPath, what: &str, found: &Value) -> ConfigError {
        self.err(path, format!("expected {what}, found {}", kind(found)))
    }

    pub fn object<'v>(
        &self,
        v: &'v Value,
        path: &JsonPath,
    ) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object()
            .ok_or_else(|| self.expected(path, "an object", v))
    }

    pub fn string<'v>(&self, v: &'v Value, path: &JsonPath) -> Result<&'v str, ConfigError> {
        v.as_str().ok_or_else(|| self.expected(path, "a string", v))
    }

    pub fn bool(&self, v: &Value, path: &JsonPath) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.expected(path, "true or false", v))
    }

    /// A string with `${VAR}` expanded.
    pub fn expanded(&self, v: &Value, path: &JsonPath) -> Result<String, ConfigError> {
        let s = self.string(v, path)?;
        expand_vars(s, self.lookup).map_err(|e| self.err(path, e.to_string()))
    }

    /// An array of strings, each expanded.
    pub fn expanded_list(&self, v: &Value, path: &JsonPath) -> Result<Vec<String>, ConfigError> {
        let items = v
            .as_array()
            .ok_or_else(|| self.expected(path, "an array of strings", v))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.expanded(item, &path.index(i)))
            .collect()
    }

    /// An object of strings, each value expanded.
    pub fn expanded_map(
        &self,
        v: &Value,
        path: &JsonPath,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        self.object(v, path)?
            .iter()
            .map(|(k, item)| Ok((k.clone(), self.expanded(item, &path.key(k))?)))
            .collect()
    }

    /// `"10m"`, `"250ms"`, or a number of seconds.
    pub fn duration(&self, v: &Value, path: &JsonPath) -> Result<Duration, ConfigError> {
        let parsed = match v {
            Value::String(s) => crate::cli::parse_duration(s),
            Value::Number(n) => crate::cli::parse_duration(&n.to_string()),
            other => return Err(self.expected(path, "a duration such as \"10m\"", other)),
        };
        parsed.map_err(|e| self.err(path, e))
    }

    /// A whole number of at least 1.
    pub fn count(&self, v: &Value, path: &JsonPath) -> Result<usize, ConfigError> {
        v.as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.expected(path, "a whole number of at least 1", v))
    }
}

/// `map[key]`, with JSON `null` read as absent (some tools write `"env": null`).
pub(super) fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// What kind of JSON value this is, for error messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn walker(lookup: Lookup<'_>) -> Walker<'_> {
        Walker {
            file: "f.json",
            lookup,
        }
    }

    #[test]
    fn type_errors_name_path_and_kind_not_value() {
        let none = |_: &str| None;
        let w = walker(&none);
        let p = JsonPath::root().key("mcpServers").key("gh").key("args");
        let err = w
            .expanded_list(&json!(["a", "b", {"secret": 1}]), &p)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.json: mcpServers.gh.args[2]: expected a string, found an object"
        );
        let err = w
            .expanded_map(&json!({"K": 42}), &JsonPath::root().key("env"))
            .unwrap_err();
        assert_eq!(err.path(), "env.K");
        let err = w.bool(&json!("sup3rs3cret"), &p).unwrap_err();
        assert!(!err.to_string().contains("sup3rs3cret"));
    }

    #[test]
    fn expansion_errors_name_path_and_variable() {
        let env = |k: &str| (k == "A").then(|| "1".to_owned());
        let w = walker(&env);
        let p = JsonPath::root().key("headers").key("Authorization");
        assert_eq!(w.expanded(&json!("x${A}"), &p).unwrap(), "x1");
        let err = w.expanded(&json!("Bearer ${GH_TOKEN}"), &p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.json: headers.Authorization: environment variable GH_TOKEN is not set"
        );
    }

    #[test]
    fn durations_and_counts() {
        let none = |_: &str| None;
        let w = walker(&none);
        let p = JsonPath::root();
        assert_eq!(
            w.duration(&json!("10m"), &p).unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(w.duration(&json!(3), &p).unwrap(), Duration::from_secs(3));
        assert!(w.duration(&json!("5y"), &p).is_err());
        assert!(w.duration(&json!(true), &p).is_err());
        assert_eq!(w.count(&json!(5), &p).unwrap(), 5);
        assert!(w.count(&json!(0), &p).is_err());
        assert!(w.count(&json!(-1), &p).is_err());
        assert!(w.count(&json!(1.5), &p).is_err());
    }
}
