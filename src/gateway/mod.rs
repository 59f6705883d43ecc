//! `serve --config FILE`: the MCP server list users already keep for their agents, plus the
//! bridge's own settings, read into a [`File`] that `serve` routes, diffs on reload, and turns
//! into the sandbox's client configuration.
//!
//! # The file
//!
//! Read unmodified: Claude Desktop's `claude_desktop_config.json`, Claude Code's `.mcp.json`,
//! Cursor's and Cline's files (`mcpServers`), and VS Code's `mcp.json` (`servers`). Comments and
//! trailing commas are allowed (VS Code writes JSONC). Keys the bridge does not know are ignored,
//! except inside `mcpBridge`, where a typo is refused.
//!
//! ```jsonc
//! {
//!   "mcpServers": {                       // or "servers" (VS Code); both may appear
//!     "memory": {                         // NAME: 1-64 of A-Z a-z 0-9 - _ . (not starting with .)
//!       "type": "stdio",                  // optional: stdio | http | sse (also streamableHttp)
//!       "command": "npx",                 // a stdio server: command, args, env, envFile, cwd
//!       "args": ["-y", "@modelcontextprotocol/server-memory"],
//!       "env": {"MEMORY_FILE_PATH": "${HOME}/memory.json"},
//!       "envFile": ".env",                // optional dotenv file; `env` wins over it
//!       "cwd": "."                        // relative paths: to the config file's directory
//!     },
//!     "github": {                         // a remote server: url and headers
//!       "type": "http",                   // http: Streamable HTTP; sse: legacy; none: auto
//!       "url": "https://api.githubcopilot.com/mcp/",
//!       "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}
//!     },
//!     "old": {"command": "x", "disabled": true}   // skipped (Cline's switch)
//!   },
//!   "mcpBridge": {                        // optional; every key optional; flags win
//!     "listen": ["unix:/run/mcp.sock", "127.0.0.1:9000"],   // or one string
//!     "authTokenFile": "${HOME}/.config/mcp-bridge/token",
//!     "sessionTtl": "10m",                // default for every server
//!     "maxSessions": 100,                 // across all servers
//!     "drainTimeout": "30s",              // removed/changed servers: how long old sessions last
//!     "servers": {
//!       "memory": {"scope": "per-key", "keepAlive": "30m", "sessionTtl": "1h",
//!                  "policy": {}}          // scope: per-session (default) | per-key | shared
//!     },
//!     "clients": {}, "audit": {}, "rateLimit": {}   // carried as raw JSON to their modules
//!   }
//! }
//! ```
//!
//! `${VAR}`, `${VAR:-default}` and `${env:VAR}` are expanded from the host environment in
//! `command`, `args`, `env`, `envFile`, `cwd`, `url`, `headers` and `authTokenFile`; `$$` is a
//! literal `$`. An unset variable without a default refuses the file, naming the variable and
//! the JSON path. Durations: `250ms`, `10s`, `5m`, `1h`, or a number of seconds.

mod bridge;
mod client;
mod diff;
mod envfile;
mod error;
mod expand;
mod jsonc;
mod name;
mod server;
mod walk;

#[cfg(test)]
mod tests;

pub use bridge::{BRIDGE_KEYS, Bridge, Raw, SERVER_KEYS, Scope, ServerOptions};
pub use client::{ClientTarget, TOKEN_VAR, client_config};
pub use diff::Diff;
pub use error::{ConfigError, JsonPath};
pub use expand::{ExpandError, expand_vars};
pub use name::{MAX_NAME_LEN, check_name};
pub use server::Definition;
pub use walk::Lookup;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use walk::Walker;

/// A loaded, checked gateway configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// The servers to serve, by name; `disabled` entries are not here.
    pub servers: BTreeMap<String, Server>,
    /// The `mcpBridge` settings.
    pub bridge: Bridge,
    /// What was read, for the startup and reload log.
    pub report: LoadReport,
}

/// One server the gateway routes to.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// The key in `mcpServers` (or `servers`): the `NAME` of `/servers/NAME/…`.
    pub name: String,
    /// How to reach it: a command to run, or a remote URL.
    pub definition: Definition,
    /// From `mcpBridge.servers.NAME`, or the defaults.
    pub options: ServerOptions,
}

impl Server {
    /// `/servers/NAME`, the prefix of this server's routes.
    pub fn route_prefix(&self) -> String {
        format!("/servers/{}", self.name)
    }

    /// `/servers/NAME/mcp`: Streamable HTTP and the 2026-07-28 revision.
    pub fn mcp_route(&self) -> String {
        format!("{}/mcp", self.route_prefix())
    }

    /// `/servers/NAME/sse`: legacy HTTP+SSE.
    pub fn sse_route(&self) -> String {
        format!("{}/sse", self.route_prefix())
    }
}

/// What a load found besides the servers, for one log line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// The file name as given (or `<config>` for text).
    pub file: String,
    /// Names skipped because of `"disabled": true`.
    pub disabled: Vec<String>,
}

impl File {
    /// Reads and checks `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<File, ConfigError> {
        Self::load_with(path, &|k| std::env::var(k).ok())
    }

    /// [`File::load`] with another variable lookup.
    pub fn load_with(path: &Path, lookup: Lookup<'_>) -> Result<File, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse_with(&text, &path.display().to_string(), dir, lookup)
    }

    /// Checks configuration text, expanding from the process environment; relative paths are
    /// taken from the current directory.
    pub fn parse(text: &str) -> Result<File, ConfigError> {
        Self::parse_with(text, "<config>", Path::new("."), &|k| std::env::var(k).ok())
    }

    /// Checks configuration text: `name` is used in errors, `dir` resolves relative paths.
    pub fn parse_with(
        text: &str,
        name: &str,
        dir: &Path,
        lookup: Lookup<'_>,
    ) -> Result<File, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc: Value = serde_json::from_str(&jsonc::strip(text)).map_err(|e| {
            let full = e.to_string();
            let problem = full
                .rsplit_once(" at line ")
                .map_or(full.as_str(), |(p, _)| p);
            ConfigError::Syntax {
                file: name.to_owned(),
                line: e.line(),
                column: e.column(),
                problem: problem.to_owned(),
            }
        })?;
        let w = Walker { file: name, lookup };
        let root = JsonPath::root();
        let top = w
            .object(&doc, &root)
            .map_err(|_| w.err(&root, "the file must be a JSON object"))?;

        let mut report = LoadReport {
            file: name.to_owned(),
            ..LoadReport::default()
        };
        let mut defs = BTreeMap::new();
        let mut found = false;
        for key in ["mcpServers", "servers"] {
            let Some(section) = walk::get(top, key) else {
                continue;
            };
            found = true;
            let spath = root.key(key);
            for (name, entry) in w.object(section, &spath)? {
                let path = spath.key(name);
                if defs.contains_key(name) || report.disabled.contains(name) {
                    let problem = "defined twice (in both mcpServers and servers)";
                    return Err(w.err(&path, problem));
                }
                match server::parse(&w, dir, name, entry, &path)? {
                    Some(def) => {
                        defs.insert(name.clone(), def);
                    }
                    None => report.disabled.push(name.clone()),
                }
            }
        }
        if !found {
            let problem =
                "no \"mcpServers\" object (Claude, Cursor, Cline) or \"servers\" object (VS Code)";
            return Err(w.err(&root, problem));
        }

        let (bridge, mut options) = bridge::parse(&w, dir, walk::get(top, "mcpBridge"))?;
        if let Some(name) = options
            .keys()
            .find(|n| !defs.contains_key(*n) && !report.disabled.contains(*n))
        {
            let path = root.key("mcpBridge").key("servers").key(name);
            return Err(w.err(&path, "no server of that name in mcpServers or servers"));
        }
        let servers = defs
            .into_iter()
            .map(|(name, definition)| {
                let options = options.remove(&name).unwrap_or_default();
                let server = Server {
                    name: name.clone(),
                    definition,
                    options,
                };
                (name, server)
            })
            .collect();
        Ok(File {
            servers,
            bridge,
            report,
        })
    }

    /// One line for the log: the file, the servers, and what was skipped.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.servers.keys().map(String::as_str).collect();
        let mut s = format!(
            "{}: {} server{} ({})",
            self.report.file,
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
        if !self.report.disabled.is_empty() {
            s.push_str(&format!(
                "; skipped (disabled): {}",
                self.report.disabled.join(", ")
            ));
        }
        s
    }
}
