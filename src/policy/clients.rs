//! Named clients (`mcpBridge.clients`): who a request comes from, by bearer token or by the Unix
//! peer's uid, and which servers that client may reach. The client's name is its identity in
//! session keys, policy, rate limits and the audit log.
//!
//! ```json
//! "clients": {
//!   "ci":    { "tokenFile": "/etc/mcp-bridge/ci.token", "servers": ["everything"] },
//!   "agent": { "tokenEnv": "AGENT_TOKEN", "servers": "*", "rateLimit": {"calls": 60, "per": "1m"} },
//!   "local": { "uid": 1000, "servers": ["memory"] }
//! }
//! ```
//! Exactly one of `tokenFile` (the file's first line), `tokenEnv` (a host environment variable)
//! or `uid` (Unix socket peers only, checked with SO_PEERCRED; no token then). A token is never
//! written inline: config files get shared and committed.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use subtle::ConstantTimeEq;

use super::ratelimit::Rate;
use super::{ConfigError, member, object, only_keys, type_name};

/// Which servers a client may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// `"servers": "*"`.
    All,
    /// `"servers": ["a", "b"]`.
    Only(BTreeSet<String>),
}

/// One configured client.
#[derive(Debug)]
pub struct Client {
    /// The identity: used in session keys, policy (`policy.clients.NAME`), rate limits, audit.
    pub name: Arc<str>,
    /// The servers it may reach.
    pub servers: Grant,
    /// Its own rate limit; `None` falls back to `mcpBridge.rateLimit`.
    pub rate_limit: Option<Rate>,
    credential: Credential,
}

enum Credential {
    Token(Box<[u8]>),
    Uid(u32),
}

impl std::fmt::Debug for Credential {
    // Never the token itself: this may end up in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(..)"),
            Credential::Uid(uid) => write!(f, "Uid({uid})"),
        }
    }
}

impl Client {
    /// Whether this client may reach `server`.
    pub fn may_reach(&self, server: &str) -> bool {
        match &self.servers {
            Grant::All => true,
            Grant::Only(names) => names.contains(server),
        }
    }

    /// The peer uid this client is identified by, if it is a uid client.
    pub fn uid(&self) -> Option<u32> {
        match self.credential {
            Credential::Uid(uid) => Some(uid),
            Credential::Token(_) => None,
        }
    }
}

/// What serve does with a request, given its `Authorization` header, its peer and its server.
#[derive(Debug)]
pub enum Access {
    /// Go on, as this client.
    Granted(Arc<Client>),
    /// No token, an unknown token, or an unknown uid: answer 401 with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// A known client asking for a server not granted to it: answer 404, exactly as for a server
    /// that does not exist, so a client cannot probe which servers the gateway has.
    NotGranted(Arc<Client>),
}

/// The client table, parsed from `mcpBridge.clients`.
#[derive(Debug, Default)]
pub struct Clients {
    clients: Vec<Arc<Client>>,
}

impl Clients {
    /// Parses `mcpBridge.clients` (`path` is its JSON path). Token files and variables are read
    /// now, so a reload picks up a rotated token; `env` looks up host environment variables
    /// (`|name| std::env::var(name).ok()` in serve).
    pub fn parse(
        value: &Value,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Clients, ConfigError> {
        let mut clients: Vec<Arc<Client>> = Vec::new();
        for (name, entry) in object(value, path)? {
            let p = member(path, name);
            let client = parse_client(name, entry, &p, env)?;
            for other in &clients {
                let clash = match (&client.credential, &other.credential) {
                    (Credential::Token(a), Credential::Token(b)) => a == b,
                    (Credential::Uid(a), Credential::Uid(b)) => a == b,
                    _ => false,
                };
                if clash {
                    return Err(ConfigError::new(
                        p,
                        format!(
                            "same credential as client `{}`: each client needs its own",
                            other.name
                        ),
                    ));
                }
            }
            clients.push(Arc::new(client));
        }
        Ok(Clients { clients })
    }

    /// No clients configured: serve keeps its single `--auth-token` behaviour.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Client>> {
        self.clients.iter().find(|c| &*c.name == name)
    }

    /// Every client, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.iter()
    }

    /// Refuses grants of servers the file does not define (`known` says which exist): a typo
    /// would otherwise lock a client out without a word.
    pub fn check_servers(
        &self,
        path: &str,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        for client in &self.clients {
            if let Grant::Only(names) = &client.servers
                && let Some(bad) = names.iter().find(|n| !known(n))
            {
                return Err(ConfigError::new(
                    format!("{}.servers", member(path, &client.name)),
                    format!("no server called `{bad}` in the config file"),
                ));
            }
        }
        Ok(())
    }

    /// Who sent a request. `authorization` is the raw `Authorization` header; `peer_uid` is the
    /// SO_PEERCRED uid of a Unix socket peer (`None` on TCP). A request carrying a header is judged
    /// by it alone; without one, a uid client with that uid matches.
    pub fn identify(
        &self,
        authorization: Option<&[u8]>,
        peer_uid: Option<u32>,
    ) -> Option<Arc<Client>> {
        if let Some(header) = authorization {
            let token = bearer(header)?;
            // Compare with every token so the time taken does not say which one was close.
            let mut found = None;
            for client in &self.clients {
                if let Credential::Token(t) = &client.credential
                    && bool::from(token.ct_eq(t))
                {
                    found = Some(client.clone());
                }
            }
            return found;
        }
        let uid = peer_uid?;
        self.clients.iter().find(|c| c.uid() == Some(uid)).cloned()
    }

    /// [`identify`](Self::identify), then whether that client may reach `server`.
    pub fn access(
        &self,
        authorization: Option<&[u8]>,
        peer_uid: Option<u32>,
        server: &str,
    ) -> Access {
        match self.identify(authorization, peer_uid) {
            None => Access::Unauthorized,
            Some(c) if c.may_reach(server) => Access::Granted(c),
            Some(c) => Access::NotGranted(c),
        }
    }
}

/// The token of a `Bearer` header; the scheme is case-insensitive (RFC 9110).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first().is_none_or(|&b| b != b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn parse_client(
    name: &str,
    entry: &Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Client, ConfigError> {
    let obj = object(entry, path)?;
    if obj.contains_key("token") {
        return Err(ConfigError::new(
            member(path, "token"),
            "a token is never written in the config file (it gets shared and committed): \
             put it in a file and name it with `tokenFile`, or in a host environment variable \
             named with `tokenEnv`",
        ));
    }
    only_keys(
        obj,
        path,
        &["tokenFile", "tokenEnv", "uid", "servers", "rateLimit"],
    )?;
    let given: Vec<&str> = ["tokenFile", "tokenEnv", "uid"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(ConfigError::new(
            path,
            format!(
                "give exactly one of `tokenFile`, `tokenEnv` or `uid` (found {})",
                if given.is_empty() {
                    "none".to_owned()
                } else {
                    given.join(", ")
                }
            ),
        ));
    }
    let credential = match given[0] {
        "tokenFile" => {
            let p = member(path, "tokenFile");
            let file = string(&obj["tokenFile"], &p)?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| ConfigError::new(&p, format!("cannot read token file {file}: {e}")))?;
            token(
                text.lines().next().unwrap_or(""),
                &p,
                &format!("the first line of {file}"),
            )?
        }
        "tokenEnv" => {
            let p = member(path, "tokenEnv");
            let var = string(&obj["tokenEnv"], &p)?;
            let text = env(var).ok_or_else(|| {
                ConfigError::new(&p, format!("environment variable {var} is not set"))
            })?;
            token(&text, &p, &format!("environment variable {var}"))?
        }
        _ => {
            let p = member(path, "uid");
            let uid = obj["uid"].as_u64().and_then(|u| u32::try_from(u).ok());
            Credential::Uid(
                uid.ok_or_else(|| ConfigError::new(p, "expected a Unix user id (a number)"))?,
            )
        }
    };
    let servers = match obj.get("servers") {
        None => {
            return Err(ConfigError::new(
                path,
                "missing `servers`: list the servers this client may reach, or \"*\" for all",
            ));
        }
        Some(v) => grant(v, &member(path, "servers"))?,
    };
    let rate_limit = obj
        .get("rateLimit")
        .map(|v| Rate::parse(v, &member(path, "rateLimit")))
        .transpose()?;
    Ok(Client {
        name: name.into(),
        servers,
        rate_limit,
        credential,
    })
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, ConfigError> {
    v.as_str()
        .ok_or_else(|| ConfigError::new(path, format!("expected a string, found {}", type_name(v))))
}

fn token(text: &str, path: &str, from: &str) -> Result<Credential, ConfigError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ConfigError::new(path, format!("{from} is empty")));
    }
    if t.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(ConfigError::new(
            path,
            format!(
                "{from} holds characters a bearer token cannot have (spaces or control characters)"
            ),
        ));
    }
    Ok(Credential::Token(t.as_bytes().into()))
}

fn grant(v: &Value, path: &str) -> Result<Grant, ConfigError> {
    match v {
        Value::String(s) if s == "*" => Ok(Grant::All),
        Value::Array(items) => {
            let mut names = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                names.insert(string(item, &format!("{path}[{i}]"))?.to_owned());
            }
            Ok(Grant::Only(names))
        }
        other => Err(ConfigError::new(
            path,
            format!(
                "expected a list of server names or \"*\", found {}",
                type_name(other)
            ),
        )),
    }
}

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;
