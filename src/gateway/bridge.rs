//! The `mcpBridge` section: settings of the bridge itself, which the other tools ignore. Typed
//! here where this module owns them; `clients`, `audit`, `rateLimit` and per-server `policy` are
//! carried as raw JSON with their path for the modules that own those.

use super::error::{ConfigError, JsonPath};
use super::walk::{Walker, get};
use crate::net::ListenAddr;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Keys `mcpBridge` may have; any other is refused, so a typo is not silently ignored.
pub const BRIDGE_KEYS: &[&str] = &[
    "listen",
    "authTokenFile",
    "sessionTtl",
    "maxSessions",
    "drainTimeout",
    "servers",
    "clients",
    "audit",
    "rateLimit",
];

/// Keys `mcpBridge.servers.NAME` may have.
pub const SERVER_KEYS: &[&str] = &["sessionTtl", "scope", "keepAlive", "policy", "oauth"];

/// Settings from `mcpBridge`; `None` (or empty) where the file does not set them, so flags and
/// built-in defaults apply. Flags override the file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bridge {
    /// `listen`: where to listen, same syntax as `--listen`.
    pub listen: Option<Vec<ListenAddr>>,
    /// `authTokenFile`, relative to the config file's directory, `${VAR}` expanded.
    pub auth_token_file: Option<PathBuf>,
    /// `sessionTtl`: default for every server.
    pub session_ttl: Option<Duration>,
    /// `maxSessions`: across all servers.
    pub max_sessions: Option<usize>,
    /// `drainTimeout`: how long sessions of a removed or changed server may run on after a reload.
    pub drain_timeout: Option<Duration>,
    /// `clients`, unparsed (named clients: another module validates it).
    pub clients: Option<Raw>,
    /// `audit`, unparsed.
    pub audit: Option<Raw>,
    /// `rateLimit`, unparsed.
    pub rate_limit: Option<Raw>,
}

/// Per-server settings from `mcpBridge.servers.NAME`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerOptions {
    /// `sessionTtl`: overrides the bridge-wide one for this server.
    pub session_ttl: Option<Duration>,
    /// `scope`: which sessions share a child.
    pub scope: Scope,
    /// `keepAlive`: how long a per-key or shared child outlives its last session.
    pub keep_alive: Option<Duration>,
    /// `policy`, unparsed (tool allow/deny: another module validates it).
    pub policy: Option<Raw>,
    /// `oauth`, unparsed: a remote server's OAuth client (`crate::oauth::OAuthClientConfig`).
    pub oauth: Option<Raw>,
}

/// Which sessions share one child process of a stdio server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// `per-session`: a child per MCP session (the default).
    #[default]
    PerSession,
    /// `per-key`: sessions presenting the same session key share a child.
    PerKey,
    /// `shared`: one child for every session.
    Shared,
}

impl Scope {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PerSession => "per-session",
            Scope::PerKey => "per-key",
            Scope::Shared => "shared",
        }
    }
}

/// A section carried through unparsed, with where it came from so its owner's errors can name
/// the JSON path. `Debug` shows only the path: such sections may hold tokens.
#[derive(Clone, PartialEq)]
pub struct Raw {
    /// JSON path of the value, e.g. `mcpBridge.servers.db.policy`.
    pub path: String,
    /// The value as the file has it (no `${VAR}` expanded).
    pub value: Value,
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raw({})", self.path)
    }
}

/// Reads `mcpBridge` (absent: all defaults). Per-server options come back keyed by name, with
/// the path of each for errors about names that match no server.
pub(super) fn parse(
    w: &Walker<'_>,
    dir: &Path,
    section: Option<&Value>,
) -> Result<(Bridge, BTreeMap<String, ServerOptions>), ConfigError> {
    let root = JsonPath::root().key("mcpBridge");
    let Some(section) = section else {
        return Ok(Default::default());
    };
    let map = w.object(section, &root)?;
    known_keys(w, map, &root, BRIDGE_KEYS)?;
    let raw = |key: &str| {
        get(map, key).map(|v| Raw {
            path: root.key(key).to_string(),
            value: v.clone(),
        })
    };
    let mut bridge = Bridge {
        clients: raw("clients"),
        audit: raw("audit"),
        rate_limit: raw("rateLimit"),
        ..Bridge::default()
    };
    if let Some(v) = get(map, "listen") {
        bridge.listen = Some(listen(w, v, &root.key("listen"))?);
    }
    if let Some(v) = get(map, "authTokenFile") {
        bridge.auth_token_file = Some(dir.join(w.expanded(v, &root.key("authTokenFile"))?));
    }
    if let Some(v) = get(map, "sessionTtl") {
        bridge.session_ttl = Some(w.duration(v, &root.key("sessionTtl"))?);
    }
    if let Some(v) = get(map, "maxSessions") {
        bridge.max_sessions = Some(w.count(v, &root.key("maxSessions"))?);
    }
    if let Some(v) = get(map, "drainTimeout") {
        bridge.drain_timeout = Some(w.duration(v, &root.key("drainTimeout"))?);
    }
    let mut servers = BTreeMap::new();
    if let Some(v) = get(map, "servers") {
        let spath = root.key("servers");
        for (name, entry) in w.object(v, &spath)? {
            servers.insert(name.clone(), server(w, entry, &spath.key(name))?);
        }
    }
    Ok((bridge, servers))
}

fn listen(w: &Walker<'_>, v: &Value, path: &JsonPath) -> Result<Vec<ListenAddr>, ConfigError> {
    let one = |v: &Value, p: &JsonPath| -> Result<ListenAddr, ConfigError> {
        w.string(v, p)?.parse().map_err(|e: String| w.err(p, e))
    };
    let addrs = match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| one(item, &path.index(i)))
            .collect::<Result<Vec<_>, _>>()?,
        single => vec![one(single, path)?],
    };
    if addrs.is_empty() {
        return Err(w.err(path, "needs at least one address"));
    }
    Ok(addrs)
}

fn server(w: &Walker<'_>, v: &Value, path: &JsonPath) -> Result<ServerOptions, ConfigError> {
    let map = w.object(v, path)?;
    known_keys(w, map, path, SERVER_KEYS)?;
    let mut opts = ServerOptions {
        policy: get(map, "policy").map(|v| Raw {
            path: path.key("policy").to_string(),
            value: v.clone(),
        }),
        oauth: get(map, "oauth").map(|v| Raw {
            path: path.key("oauth").to_string(),
            value: v.clone(),
        }),
        ..ServerOptions::default()
    };
    if let Some(v) = get(map, "sessionTtl") {
        opts.session_ttl = Some(w.duration(v, &path.key("sessionTtl"))?);
    }
    if let Some(v) = get(map, "scope") {
        let p = path.key("scope");
        opts.scope = match w.string(v, &p)? {
            "per-session" => Scope::PerSession,
            "per-key" => Scope::PerKey,
            "shared" => Scope::Shared,
            other => {
                let problem = format!(
                    "unknown scope {} (per-session, per-key, shared)",
                    Value::from(other)
                );
                return Err(w.err(&p, problem));
            }
        };
    }
    if let Some(v) = get(map, "keepAlive") {
        let p = path.key("keepAlive");
        opts.keep_alive = Some(w.duration(v, &p)?);
        if opts.scope == Scope::PerSession {
            let problem = "applies to \"scope\": \"per-key\" or \"shared\" only";
            return Err(w.err(&p, problem));
        }
    }
    Ok(opts)
}

fn known_keys(
    w: &Walker<'_>,
    map: &Map<String, Value>,
    path: &JsonPath,
    known: &[&str],
) -> Result<(), ConfigError> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(w.err(
            &path.key(k),
            format!("unknown setting (known: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<(Bridge, BTreeMap<String, ServerOptions>), ConfigError> {
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_owned());
        let w = Walker {
            file: "b.json",
            lookup: &env,
        };
        parse(&w, Path::new("/etc/mcp"), Some(&v))
    }

    #[test]
    fn every_setting() {
        let (b, servers) = read(json!({
            "listen": ["127.0.0.1:9000", "[::1]:0", "unix:/run/mcp.sock"],
            "authTokenFile": "${HOME}/.token",
            "sessionTtl": "10m",
            "maxSessions": 50,
            "drainTimeout": "30s",
            "clients": {"ci": {"tokenFile": "x"}},
            "audit": {"file": "/var/log/a"},
            "rateLimit": null,
            "servers": {
                "db": {"scope": "per-key", "keepAlive": "5m", "sessionTtl": 60, "policy": {"deny": ["drop_*"]}},
                "mem": {}
            }
        }))
        .unwrap();
        assert_eq!(b.listen.as_ref().unwrap().len(), 3);
        assert_eq!(
            b.listen.unwrap()[2],
            ListenAddr::Unix("/run/mcp.sock".into())
        );
        assert_eq!(b.auth_token_file.unwrap(), Path::new("/home/u/.token"));
        assert_eq!(b.session_ttl, Some(Duration::from_secs(600)));
        assert_eq!(b.max_sessions, Some(50));
        assert_eq!(b.drain_timeout, Some(Duration::from_secs(30)));
        assert_eq!(b.clients.unwrap().path, "mcpBridge.clients");
        assert_eq!(b.audit.unwrap().value["file"], "/var/log/a");
        assert!(b.rate_limit.is_none());
        let db = &servers["db"];
        assert_eq!(db.scope, Scope::PerKey);
        assert_eq!(db.keep_alive, Some(Duration::from_secs(300)));
        assert_eq!(db.session_ttl, Some(Duration::from_secs(60)));
        let policy = db.policy.as_ref().unwrap();
        assert_eq!(policy.path, "mcpBridge.servers.db.policy");
        assert_eq!(format!("{policy:?}"), "Raw(mcpBridge.servers.db.policy)");
        assert_eq!(servers["mem"], ServerOptions::default());
    }

    #[test]
    fn absent_section_is_all_defaults() {
        let none = |_: &str| None;
        let w = Walker {
            file: "b.json",
            lookup: &none,
        };
        let (b, s) = parse(&w, Path::new("."), None).unwrap();
        assert_eq!(b, Bridge::default());
        assert!(s.is_empty());
        let (b, _) = read(json!({"listen": "unix:/tmp/s", "authTokenFile": "tok"})).unwrap();
        assert_eq!(b.listen.unwrap().len(), 1);
        assert_eq!(b.auth_token_file.unwrap(), Path::new("/etc/mcp/tok"));
    }

    #[test]
    fn refusals_name_the_path() {
        let cases = [
            (
                json!({"servers": {"db": {"scope": "perkey"}}}),
                "b.json: mcpBridge.servers.db.scope: unknown scope \"perkey\" (per-session, per-key, shared)",
            ),
            (
                json!({"listen": ["127.0.0.1"]}),
                "mcpBridge.listen[0]: `127.0.0.1` is not HOST:PORT",
            ),
            (
                json!({"listen": []}),
                "mcpBridge.listen: needs at least one address",
            ),
            (
                json!({"listen": [9000]}),
                "mcpBridge.listen[0]: expected a string, found a number",
            ),
            (
                json!({"sessionTtl": "10 years"}),
                "mcpBridge.sessionTtl: unknown duration unit",
            ),
            (
                json!({"maxSessions": 0}),
                "mcpBridge.maxSessions: expected a whole number of at least 1",
            ),
            (
                json!({"sesionTtl": "1m"}),
                "mcpBridge.sesionTtl: unknown setting (known: listen,",
            ),
            (
                json!({"servers": {"db": {"scope": "shared", "keepalive": "1m"}}}),
                "mcpBridge.servers.db.keepalive: unknown setting",
            ),
            (
                json!({"servers": {"db": {"keepAlive": "1m"}}}),
                "mcpBridge.servers.db.keepAlive: applies to \"scope\": \"per-key\" or \"shared\" only",
            ),
            (
                json!({"servers": []}),
                "mcpBridge.servers: expected an object, found an array",
            ),
            (
                json!({"authTokenFile": "${NOPE}/t"}),
                "mcpBridge.authTokenFile: environment variable NOPE is not set",
            ),
            (json!([]), "b.json: mcpBridge: expected an object"),
        ];
        for (section, want) in cases {
            let err = read(section.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{section}: got {err:?}, want {want:?}");
        }
    }
}
