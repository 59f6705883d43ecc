//! Per-server rules (`mcpBridge.servers.NAME.policy`) and the effective rules for one client.
//!
//! ```json
//! "policy": {
//!   "tools":     { "allow": ["get_*", "echo"], "deny": ["*delete*"] },
//!   "prompts":   { "deny": ["internal_*"] },
//!   "resources": { "allow": ["file:///srv/docs/*"] },
//!   "readOnly":  true,
//!   "clients":   { "ci": { "readOnly": false, "tools": { "allow": ["*"] } } }
//! }
//! ```
//! A name is exposed when no `deny` pattern matches it and, if `allow` is given, an `allow`
//! pattern does (deny wins; `"allow": []` exposes nothing). `readOnly` exposes only tools whose
//! `annotations.readOnlyHint` is `true`. Resources match on the URI (`uriTemplate` for
//! templates). An entry under `clients` replaces, for that client, each key it gives (`allow`,
//! `deny`, `readOnly`) and inherits the others from the server's level.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::glob::Glob;
use super::{ConfigError, member, object, only_keys, type_name};

/// What is exposed of one kind (tools, prompts or resources).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patterns {
    /// `None`: everything not denied.
    pub allow: Option<Vec<Glob>>,
    /// Names matching any of these are hidden, whatever `allow` says.
    pub deny: Vec<Glob>,
    /// Verdicts already reached: a call names one of a handful of tools, and a memo lookup
    /// costs the same however many patterns there are.
    pub memo: Memo,
}

/// Names checked so far and their verdicts, at most [`Memo::MAX`] of them (then further names
/// are matched every time: a client sending endless made-up names grows nothing). Belongs to
/// one [`Patterns`]: a reload builds new rules, with an empty memo.
#[derive(Default)]
pub struct Memo(std::sync::RwLock<HashMap<Box<str>, Option<Refusal>>>);

impl Memo {
    /// Names remembered, at most.
    pub const MAX: usize = 512;
    /// Names longer than this are not remembered.
    const LONGEST: usize = 256;

    fn get(&self, name: &str) -> Option<Option<Refusal>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    fn put(&self, name: &str, verdict: Option<Refusal>) {
        if name.len() > Self::LONGEST {
            return;
        }
        let mut memo = self.0.write().unwrap_or_else(|p| p.into_inner());
        if memo.len() < Self::MAX {
            memo.insert(name.into(), verdict);
        }
    }

    /// How many names are remembered.
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.0.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A copy starts with nothing remembered.
impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

/// What is remembered is not part of the rules: equal patterns are equal rules.
impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// Why a name is not exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A `deny` pattern matched.
    Denied,
    /// An `allow` list is given and no pattern in it matched.
    NotAllowed,
    /// `readOnly` is on and the tool is not annotated `readOnlyHint: true`.
    NotReadOnly,
    /// The request did not name what it asks for in a form the gateway can check.
    Malformed,
}

impl Refusal {
    /// The word for `error.data.rule` and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Denied => "deny",
            Refusal::NotAllowed => "not-allowed",
            Refusal::NotReadOnly => "read-only",
            Refusal::Malformed => "malformed",
        }
    }
}

impl Patterns {
    /// Nothing is refused: requests and lists of this kind need not be parsed.
    pub fn is_open(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty()
    }

    /// Why `name` is not exposed, or `None` when it is.
    pub fn refusal(&self, name: &str) -> Option<Refusal> {
        if let Some(verdict) = self.memo.get(name) {
            return verdict;
        }
        let verdict = self.matched(name);
        self.memo.put(name, verdict);
        verdict
    }

    /// [`refusal`](Self::refusal), by the patterns themselves.
    fn matched(&self, name: &str) -> Option<Refusal> {
        if self.deny.iter().any(|g| g.matches(name)) {
            return Some(Refusal::Denied);
        }
        match &self.allow {
            Some(allow) if !allow.iter().any(|g| g.matches(name)) => Some(Refusal::NotAllowed),
            _ => None,
        }
    }
}

/// The effective rules for one client on one server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Tool names.
    pub tools: Patterns,
    /// Prompt names.
    pub prompts: Patterns,
    /// Resource URIs (and template `uriTemplate`s).
    pub resources: Patterns,
    /// Only tools annotated `readOnlyHint: true` are exposed.
    pub read_only: bool,
}

impl Rules {
    /// Nothing is refused at all.
    pub fn is_open(&self) -> bool {
        self.tools.is_open()
            && self.prompts.is_open()
            && self.resources.is_open()
            && !self.read_only
    }

    /// Why tool `name` is refused (`read_only_hint`: its annotation, when known), or `None`.
    pub fn tool_refusal(&self, name: &str, read_only_hint: bool) -> Option<Refusal> {
        self.tools
            .refusal(name)
            .or((self.read_only && !read_only_hint).then_some(Refusal::NotReadOnly))
    }
}

#[derive(Clone, Debug, Default)]
struct KindLayer {
    allow: Option<Vec<Glob>>,
    deny: Option<Vec<Glob>>,
}

#[derive(Clone, Debug, Default)]
struct Layer {
    tools: KindLayer,
    prompts: KindLayer,
    resources: KindLayer,
    read_only: Option<bool>,
}

impl Layer {
    fn over(&self, base: &Layer) -> Layer {
        let kind = |top: &KindLayer, low: &KindLayer| KindLayer {
            allow: top.allow.clone().or_else(|| low.allow.clone()),
            deny: top.deny.clone().or_else(|| low.deny.clone()),
        };
        Layer {
            tools: kind(&self.tools, &base.tools),
            prompts: kind(&self.prompts, &base.prompts),
            resources: kind(&self.resources, &base.resources),
            read_only: self.read_only.or(base.read_only),
        }
    }

    fn rules(&self) -> Option<Arc<Rules>> {
        let kind = |k: &KindLayer| Patterns {
            allow: k.allow.clone(),
            deny: k.deny.clone().unwrap_or_default(),
            memo: Memo::default(),
        };
        let rules = Rules {
            tools: kind(&self.tools),
            prompts: kind(&self.prompts),
            resources: kind(&self.resources),
            read_only: self.read_only.unwrap_or(false),
        };
        (!rules.is_open()).then(|| Arc::new(rules))
    }
}

/// One server's policy, resolved for every client named in it and for everyone else.
#[derive(Clone, Debug, Default)]
pub struct ServerPolicy {
    base: Option<Arc<Rules>>,
    clients: HashMap<String, Option<Arc<Rules>>>,
}

impl ServerPolicy {
    /// Parses `mcpBridge.servers.NAME.policy` (`path` is that JSON path).
    pub fn parse(value: &Value, path: &str) -> Result<ServerPolicy, ConfigError> {
        let obj = object(value, path)?;
        only_keys(
            obj,
            path,
            &["tools", "prompts", "resources", "readOnly", "clients"],
        )?;
        let base = layer(obj, path)?;
        let mut clients = HashMap::new();
        if let Some(v) = obj.get("clients") {
            let cpath = member(path, "clients");
            for (name, entry) in object(v, &cpath)? {
                let p = member(&cpath, name);
                let o = object(entry, &p)?;
                only_keys(o, &p, &["tools", "prompts", "resources", "readOnly"])?;
                clients.insert(name.clone(), layer(o, &p)?.over(&base).rules());
            }
        }
        Ok(ServerPolicy {
            base: base.rules(),
            clients,
        })
    }

    /// Refuses entries under `clients` that name no configured client (`known` says which exist).
    pub fn check_clients(
        &self,
        path: &str,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        let mut names: Vec<&String> = self.clients.keys().collect();
        names.sort();
        match names.into_iter().find(|n| !known(n)) {
            Some(bad) => Err(ConfigError::new(
                member(&member(path, "clients"), bad),
                format!("no client called `{bad}` in mcpBridge.clients"),
            )),
            None => Ok(()),
        }
    }

    /// The rules for `client` (the anonymous client of a gateway without named clients may pass
    /// any name that is not configured, e.g. `""`). `None` means nothing is refused: serve then
    /// skips every check and every list filter without parsing a byte.
    pub fn rules_for(&self, client: &str) -> Option<Arc<Rules>> {
        match self.clients.get(client) {
            Some(rules) => rules.clone(),
            None => self.base.clone(),
        }
    }
}

fn layer(obj: &serde_json::Map<String, Value>, path: &str) -> Result<Layer, ConfigError> {
    let mut out = Layer::default();
    for (key, slot) in [
        ("tools", &mut out.tools),
        ("prompts", &mut out.prompts),
        ("resources", &mut out.resources),
    ] {
        if let Some(v) = obj.get(key) {
            let p = member(path, key);
            let o = object(v, &p)?;
            only_keys(o, &p, &["allow", "deny"])?;
            slot.allow = o
                .get("allow")
                .map(|v| globs(v, &member(&p, "allow")))
                .transpose()?;
            slot.deny = o
                .get("deny")
                .map(|v| globs(v, &member(&p, "deny")))
                .transpose()?;
        }
    }
    if let Some(v) = obj.get("readOnly") {
        out.read_only = Some(v.as_bool().ok_or_else(|| {
            ConfigError::new(
                member(path, "readOnly"),
                format!("expected true or false, found {}", type_name(v)),
            )
        })?);
    }
    Ok(out)
}

fn globs(v: &Value, path: &str) -> Result<Vec<Glob>, ConfigError> {
    let items = v.as_array().ok_or_else(|| {
        ConfigError::new(
            path,
            format!("expected a list of patterns, found {}", type_name(v)),
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = format!("{path}[{i}]");
            let s = item.as_str().ok_or_else(|| {
                ConfigError::new(
                    &p,
                    format!("expected a pattern (a string), found {}", type_name(item)),
                )
            })?;
            Glob::new(s).map_err(|m| ConfigError::new(&p, format!("bad pattern `{s}`: {m}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATH: &str = "mcpBridge.servers.everything.policy";

    fn policy(v: Value) -> ServerPolicy {
        ServerPolicy::parse(&v, PATH).unwrap()
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = policy(json!({"tools": {"allow": ["get_*", "echo"], "deny": ["*secret*"]}}));
        let r = p.rules_for("anyone").unwrap();
        assert_eq!(r.tools.refusal("echo"), None);
        assert_eq!(r.tools.refusal("get_sum"), None);
        assert_eq!(r.tools.refusal("get_secret"), Some(Refusal::Denied));
        assert_eq!(r.tools.refusal("add"), Some(Refusal::NotAllowed));
        assert!(r.prompts.is_open());
    }

    #[test]
    fn no_rules_means_nothing_to_check() {
        assert!(policy(json!({})).rules_for("x").is_none());
        assert!(
            policy(json!({"tools": {}, "readOnly": false}))
                .rules_for("x")
                .is_none()
        );
        let empty_allow = policy(json!({"tools": {"allow": []}}));
        assert_eq!(
            empty_allow.rules_for("x").unwrap().tools.refusal("echo"),
            Some(Refusal::NotAllowed)
        );
    }

    #[test]
    fn read_only_refuses_tools_without_the_hint() {
        let r = policy(json!({"readOnly": true})).rules_for("x").unwrap();
        assert_eq!(r.tool_refusal("echo", true), None);
        assert_eq!(r.tool_refusal("echo", false), Some(Refusal::NotReadOnly));
    }

    #[test]
    fn a_client_entry_replaces_only_the_keys_it_gives() {
        let p = policy(json!({
            "tools": {"allow": ["get_*"], "deny": ["*delete*"]},
            "readOnly": true,
            "clients": {
                "admin": {"readOnly": false, "tools": {"allow": ["*"]}},
                "open": {"readOnly": false, "tools": {"allow": ["*"], "deny": []}}
            }
        }));
        let admin = p.rules_for("admin").unwrap();
        assert!(!admin.read_only);
        assert_eq!(admin.tools.refusal("add"), None);
        assert_eq!(admin.tools.refusal("bulk_delete"), Some(Refusal::Denied));
        let other = p.rules_for("someone").unwrap();
        assert!(other.read_only);
        assert_eq!(other.tools.refusal("add"), Some(Refusal::NotAllowed));
        // Everything allowed, nothing denied, not read-only: nothing to check.
        assert!(
            p.rules_for("open")
                .unwrap()
                .tools
                .refusal("bulk_delete")
                .is_none()
        );
    }

    #[test]
    fn errors_name_the_json_path() {
        let e = ServerPolicy::parse(&json!({"tools": {"allow": ["ok", 3]}}), PATH).unwrap_err();
        assert_eq!(e.path, format!("{PATH}.tools.allow[1]"));
        let e = ServerPolicy::parse(&json!({"tools": {"deny": ["[x"]}}), PATH).unwrap_err();
        assert_eq!(e.path, format!("{PATH}.tools.deny[0]"));
        assert!(e.message.contains("unclosed"));
        let e = ServerPolicy::parse(&json!({"readonly": true}), PATH).unwrap_err();
        assert_eq!(e.path, format!("{PATH}.readonly"));
        let e = ServerPolicy::parse(&json!({"readOnly": "yes"}), PATH).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{PATH}.readOnly: expected true or false"))
        );
        let e = ServerPolicy::parse(&json!({"clients": {"a": {"clients": {}}}}), PATH).unwrap_err();
        assert_eq!(e.path, format!("{PATH}.clients.a.clients"));
    }

    #[test]
    fn client_entries_must_name_real_clients() {
        let p = policy(json!({"clients": {"ci": {"readOnly": true}}}));
        assert!(p.check_clients(PATH, &|n| n == "ci").is_ok());
        let e = p.check_clients(PATH, &|_| false).unwrap_err();
        assert_eq!(e.path, format!("{PATH}.clients.ci"));
    }
}
