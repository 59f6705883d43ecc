//! Least privilege for a sandbox: who a request comes from (named clients), what it may see and
//! call (per-server rules), how often (rate limit) and what it did (audit log). Each part parses
//! its own piece of the config file's `mcpBridge` section; serve calls them per request.

pub mod audit;
pub(crate) mod audit_line;
mod audit_queue;
pub mod check;
pub mod clients;
pub mod filter;
pub mod glob;
pub mod ratelimit;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use self::audit::AuditConfig;
use self::clients::Clients;
use self::ratelimit::Rate;
use self::rules::{Rules, ServerPolicy};

/// One raw setting from the config loader: its value and its JSON path.
pub type Setting<'a> = (&'a Value, &'a str);

/// Everything this module reads from `mcpBridge`, parsed and cross-checked. Built anew on each
/// reload; serve swaps it in whole (the [`RateLimiter`](ratelimit::RateLimiter) and
/// [`AuditLog`](audit::AuditLog) live outside it and are reconfigured, not rebuilt).
#[derive(Debug, Default)]
pub struct Policy {
    /// `mcpBridge.clients`; empty when not set (serve keeps its single token then).
    pub clients: Clients,
    /// `mcpBridge.rateLimit`: the rate of clients without their own.
    pub default_rate: Option<Rate>,
    /// `mcpBridge.audit`; `None`: no audit log.
    pub audit: Option<AuditConfig>,
    /// `mcpBridge.servers.NAME.policy` by server name; servers without one are absent.
    pub servers: HashMap<String, ServerPolicy>,
}

impl Policy {
    /// Parses the settings the loader hands over (`None` where the file has none) and checks
    /// that clients are granted servers that exist and policies name clients that exist.
    /// `servers` lists every server name in the file with its `policy`, if any; `env` reads
    /// host environment variables for `tokenEnv`.
    pub fn parse<'a>(
        clients: Option<Setting<'a>>,
        rate_limit: Option<Setting<'a>>,
        audit: Option<Setting<'a>>,
        servers: &[(&'a str, Option<Setting<'a>>)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Policy, ConfigError> {
        let clients = match clients {
            Some((v, path)) => {
                let table = Clients::parse(v, path, env)?;
                table.check_servers(path, &|name| servers.iter().any(|(n, _)| *n == name))?;
                table
            }
            None => Clients::default(),
        };
        let mut policies = HashMap::new();
        for (name, setting) in servers {
            if let Some((v, path)) = setting {
                let policy = ServerPolicy::parse(v, path)?;
                policy.check_clients(path, &|c| clients.get(c).is_some())?;
                policies.insert((*name).to_owned(), policy);
            }
        }
        Ok(Policy {
            clients,
            default_rate: rate_limit.map(|(v, p)| Rate::parse(v, p)).transpose()?,
            audit: audit.map(|(v, p)| AuditConfig::parse(v, p)).transpose()?,
            servers: policies,
        })
    }

    /// The rules for `client` on `server`; `None`: nothing to check or filter (the fast path).
    pub fn rules_for(&self, server: &str, client: &str) -> Option<Arc<Rules>> {
        self.servers.get(server)?.rules_for(client)
    }
}

/// A setting in the `mcpBridge` section that cannot be used. `path` is the JSON path of the
/// offending value (`mcpBridge.servers.everything.policy.tools.allow[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The JSON path of the offending value.
    pub path: String,
    /// What is wrong with it.
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
    fn the_whole_section_is_parsed_and_cross_checked() {
        let clients = serde_json::json!({
            "ci": {"tokenEnv": "CI_TOKEN", "servers": ["everything"]},
            "agent": {"uid": 1000, "servers": "*"}
        });
        let policy = serde_json::json!({"readOnly": true, "clients": {"ci": {"readOnly": false}}});
        let rate = serde_json::json!({"calls": 10, "per": "1s"});
        let env = |n: &str| (n == "CI_TOKEN").then(|| "t".to_owned());
        let servers = [
            (
                "everything",
                Some((&policy, "mcpBridge.servers.everything.policy")),
            ),
            ("memory", None),
        ];
        let p = Policy::parse(
            Some((&clients, "mcpBridge.clients")),
            Some((&rate, "mcpBridge.rateLimit")),
            None,
            &servers,
            &env,
        )
        .unwrap();
        assert!(p.rules_for("everything", "agent").unwrap().read_only);
        assert!(p.rules_for("everything", "ci").is_none());
        assert!(p.rules_for("memory", "agent").is_none());
        assert_eq!(p.default_rate.unwrap().calls, 10);
        assert!(p.audit.is_none());

        let bad = serde_json::json!({"clients": {"nobody": {}}});
        let servers = [(
            "everything",
            Some((&bad, "mcpBridge.servers.everything.policy")),
        )];
        let e = Policy::parse(
            Some((&clients, "mcpBridge.clients")),
            None,
            None,
            &servers,
            &env,
        )
        .unwrap_err();
        assert_eq!(e.path, "mcpBridge.servers.everything.policy.clients.nobody");
        let e = Policy::parse(Some((&clients, "mcpBridge.clients")), None, None, &[], &env)
            .unwrap_err();
        assert_eq!(e.path, "mcpBridge.clients.ci.servers");
    }

    #[test]
    fn unknown_keys_are_named() {
        let v = serde_json::json!({"allow": [], "dney": []});
        let err = only_keys(v.as_object().unwrap(), "p.tools", &["allow", "deny"]).unwrap_err();
        assert_eq!(err.path, "p.tools.dney");
        assert!(err.to_string().contains("unknown setting"));
    }
}
