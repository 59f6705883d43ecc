//! The host's token store: one JSON file per server in a 0700 directory, each file 0600 and
//! replaced atomically, with advisory file locks around read-modify-write and around a login.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A secret string (token, client secret) whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself: for the one place that sends it (a header or a form field).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How the client authenticates at the token endpoint (RFC 7591 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with client_id and client_secret.
    ClientSecretBasic,
    /// client_id and client_secret in the form body.
    ClientSecretPost,
    /// A public client: client_id in the form body, no secret.
    None,
}

/// The client identity used with one authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// The client id.
    pub client_id: String,
    /// Its secret (a confidential client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// How it authenticates at the token endpoint.
    pub auth_method: AuthMethod,
    /// `preregistered`, `metadata-document` or `dynamic`: shown by `login --status`.
    pub source: String,
    /// The redirect URI registered with it (dynamic registration binds the client to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

/// Everything kept for one server: enough to refresh without discovering again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The server's name in the gateway config (also the file name).
    pub server: String,
    /// The MCP server URL that was logged in to.
    pub server_url: String,
    /// The RFC 8707 resource sent on authorization and token requests (none in the 2025-03-26 mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The authorization server's issuer (or the MCP server's origin in the 2025-03-26 mode).
    pub issuer: String,
    /// Where refreshes go.
    pub token_endpoint: String,
    /// The client the tokens were issued to.
    pub client: ClientRegistration,
    /// The access token (empty once a refresh was refused).
    pub access_token: Secret,
    /// The refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// Unix seconds; `None` when the server did not say (the token is used until a 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Scopes granted (or requested when the server did not say).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes a 403 `insufficient_scope` asked for since: the next login adds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_up_scopes: Vec<String>,
    /// Unix seconds of the last login or refresh.
    pub updated_at: u64,
}

impl TokenRecord {
    /// Whether the access token is still good for at least `margin`.
    pub fn fresh_for(&self, margin: Duration) -> bool {
        if self.access_token.expose().is_empty() {
            return false;
        }
        match self.expires_at {
            None => true,
            Some(at) => now_secs().saturating_add(margin.as_secs()) < at,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A server name that cannot be a file name here.
    #[error(
        "`{0}` is not a usable server name (letters, digits, `.`, `_`, `-`; not starting with `.`)"
    )]
    BadName(String),
    /// No place for the store.
    #[error("no state directory: set XDG_STATE_HOME, HOME or MCP_BRIDGE_STATE_DIR")]
    NoStateDir,
    /// A file of the store could not be read, written or locked.
    #[error("token store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A token file that does not parse.
    #[error(
        "token file {path} is damaged ({detail}); run `mcp-bridge logout {name}` and log in again"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The server.
        name: String,
        /// What went wrong.
        detail: String,
    },
    /// Another `login` for the server holds the login lock.
    #[error(
        "a login for `{name}` is already running{holder}; finish it or wait for it to time out"
    )]
    LoginRunning {
        /// The server.
        name: String,
        /// ` (process PID)` when known, or empty.
        holder: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Each stored server's name with its record, or why it could not be read.
pub type Listing = Vec<(String, Result<TokenRecord, StoreError>)>;

/// The directory of token files, and the operations on it.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// An exclusive lock on one server's record, released on drop.
#[derive(Debug)]
pub struct RecordLock {
    _file: File,
}

/// Held for the whole of a `login`, so a second login for the same server is refused.
#[derive(Debug)]
pub struct LoginLock {
    _file: File,
}

/// The largest token file read back: anything bigger is not ours.
const MAX_FILE: u64 = 1 << 20;

impl Store {
    /// The default store: `$MCP_BRIDGE_STATE_DIR/tokens`, else `$XDG_STATE_HOME/mcp-bridge/tokens`,
    /// else `~/.local/state/mcp-bridge/tokens`.
    pub fn default_location() -> Result<Self, StoreError> {
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let base = if let Some(dir) = nonempty("MCP_BRIDGE_STATE_DIR") {
            PathBuf::from(dir)
        } else if let Some(dir) = nonempty("XDG_STATE_HOME") {
            PathBuf::from(dir).join("mcp-bridge")
        } else if let Some(home) = nonempty("HOME") {
            PathBuf::from(home).join(".local/state/mcp-bridge")
        } else {
            return Err(StoreError::NoStateDir);
        };
        Ok(Self::at(base.join("tokens")))
    }

    /// A store in `dir` (created with mode 0700 on first write).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory holding the token files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `name`'s token file.
    pub fn path_of(&self, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.json")))
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let meta = std::fs::metadata(&self.dir).map_err(io_err(&self.dir))?;
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(&self.dir))?;
        }
        Ok(())
    }

    fn open_lock_file(&self, file_name: &str) -> Result<(File, PathBuf), StoreError> {
        self.ensure_dir()?;
        let path = self.dir.join(file_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((file, path))
    }

    /// Takes the exclusive lock on `name`'s record, waiting for another holder. Blocking: call
    /// from a blocking thread in async code.
    pub fn lock(&self, name: &str) -> Result<RecordLock, StoreError> {
        check_name(name)?;
        let (file, path) = self.open_lock_file(&format!("{name}.lock"))?;
        file.lock().map_err(io_err(&path))?;
        Ok(RecordLock { _file: file })
    }

    /// Takes the login lock for `name` without waiting; refused while another login holds it.
    pub fn try_login_lock(&self, name: &str) -> Result<LoginLock, StoreError> {
        check_name(name)?;
        let (mut file, path) = self.open_lock_file(&format!("{name}.login.lock"))?;
        match file.try_lock() {
            Ok(()) => {
                // The pid only makes the refusal message more useful; failing to write it is harmless.
                let _ = file.set_len(0);
                let _ = file.write_all(std::process::id().to_string().as_bytes());
                Ok(LoginLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.take(32).read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                    format!(" (process {pid})")
                } else {
                    String::new()
                };
                Err(StoreError::LoginRunning {
                    name: name.to_string(),
                    holder,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// Reads `name`'s record; `None` when there is none.
    pub fn load(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let path = self.path_of(name)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut text = String::new();
        file.take(MAX_FILE)
            .read_to_string(&mut text)
            .map_err(io_err(&path))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Damaged {
                path: path.clone(),
                name: name.to_string(),
                detail: format!("line {} column {}", e.line(), e.column()),
            })
    }

    /// Writes `record` atomically: a 0600 temp file in the same directory, fsync, rename, fsync
    /// of the directory. Call with the record lock held.
    pub fn save(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let path = self.path_of(&record.server)?;
        self.ensure_dir()?;
        let mut suffix = [0u8; 6];
        let _ = getrandom::fill(&mut suffix);
        let tmp = self.dir.join(format!(
            ".{}.{}.tmp",
            record.server,
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let body = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&body)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(&path)(e)
        })
    }

    /// Deletes `name`'s record; `false` when there was none.
    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let path = self.path_of(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Every readable record, by name; damaged files are reported as errors in place.
    pub fn list(&self) -> Result<Listing, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            let record = self.load(name).and_then(|r| {
                r.ok_or_else(|| io_err(&entry.path())(std::io::ErrorKind::NotFound.into()))
            });
            out.push((name.to_string(), record));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// A server name becomes a file name: no separators, no leading dot, a sane length.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName(name.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests;
