//! The audit log (`mcpBridge.audit`): one JSON line per request the gateway handles, written by
//! one thread behind a bounded queue so that logging never holds up a message. A full queue
//! drops the record, counts it, and the writer says how many it lost once it catches up.
//!
//! ```json
//! "audit": { "file": "/var/log/mcp-bridge/audit.jsonl", "arguments": false,
//!            "redact": ["apiKey"], "queue": 4096 }
//! ```
//! `file` is a path (opened for append, created 0600) or `"stderr"`. `arguments: true` adds the
//! request's arguments and the answer's result or error, with every object member whose key
//! is in `redact` (plus password, token, authorization, secret, cookie; case-insensitive, at
//! any depth) replaced by `"[redacted]"`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;

use super::audit_queue::Queue;
use super::{ConfigError, member, object, only_keys, type_name};

/// Keys always redacted when arguments are logged.
pub const DEFAULT_REDACT: [&str; 5] = ["password", "token", "authorization", "secret", "cookie"];

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Appended to this file (created 0600, reopened on SIGHUP).
    File(PathBuf),
    /// The gateway's stderr.
    Stderr,
}

/// The parsed `mcpBridge.audit` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Where the lines go (`file`).
    pub sink: Sink,
    /// Log arguments and results (redacted).
    pub arguments: bool,
    /// Lower-case keys to redact: the defaults plus the configured ones.
    pub redact: Vec<String>,
    /// Records that may wait for the writer before new ones are dropped.
    pub queue: usize,
}

impl AuditConfig {
    /// Parses `mcpBridge.audit` (`path` is its JSON path).
    pub fn parse(v: &Value, path: &str) -> Result<AuditConfig, ConfigError> {
        let obj = object(v, path)?;
        only_keys(obj, path, &["file", "arguments", "redact", "queue"])?;
        let sink = match obj.get("file") {
            Some(Value::String(s)) if s == "stderr" => Sink::Stderr,
            Some(Value::String(s)) if s.starts_with('/') => Sink::File(s.into()),
            Some(_) => {
                return Err(ConfigError::new(
                    member(path, "file"),
                    "expected an absolute file path or \"stderr\"",
                ));
            }
            None => {
                return Err(ConfigError::new(
                    path,
                    "missing `file` (a path or \"stderr\")",
                ));
            }
        };
        let arguments = match obj.get("arguments") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| {
                ConfigError::new(
                    member(path, "arguments"),
                    format!("expected true or false, found {}", type_name(v)),
                )
            })?,
        };
        let mut redact: Vec<String> = DEFAULT_REDACT.iter().map(|s| (*s).to_owned()).collect();
        if let Some(v) = obj.get("redact") {
            let p = member(path, "redact");
            let items = v
                .as_array()
                .ok_or_else(|| ConfigError::new(&p, "expected a list of keys"))?;
            for (i, item) in items.iter().enumerate() {
                let key = item.as_str().ok_or_else(|| {
                    ConfigError::new(format!("{p}[{i}]"), "expected a key (a string)")
                })?;
                redact.push(key.to_lowercase());
            }
        }
        let queue = match obj.get("queue") {
            None => 4096,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(member(path, "queue"), "expected a number from 1 to 1000000")
                })? as usize,
        };
        Ok(AuditConfig {
            sink,
            arguments,
            redact,
            queue,
        })
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with a result.
    Ok,
    /// The server answered with an error.
    Error {
        /// The error's `code`.
        code: i64,
    },
    /// The gateway refused it (`policy-denied`, `rate-limited`).
    Denied {
        /// `policy-denied` or `rate-limited`.
        reason: &'static str,
    },
    /// The gateway could not deliver it or get its answer (`child-gone`, `timeout`, …).
    BridgeError {
        /// The `reason` of the bridge's error (`child-gone`, `no-answer`, …).
        reason: String,
    },
    /// Still to be read from this answer ([`Outcome::of_answer`]), by the writer thread rather
    /// than on the answer's way to the client. Only for answers of at most
    /// [`Outcome::DEFERRED_MAX`] bytes, so that a full queue holds little.
    Answer(Bytes),
}

/// One request, as serve saw it. Fields serve does not know stay `None`.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the request arrived.
    pub time: SystemTime,
    /// The named client (`None` without `mcpBridge.clients`).
    pub client: Option<Arc<str>>,
    /// The Unix socket peer's uid (SO_PEERCRED).
    pub peer_uid: Option<u32>,
    /// The Unix socket peer's pid.
    pub peer_pid: Option<u32>,
    /// The session id (handshake-era sessions).
    pub session: Option<Arc<str>>,
    /// The session key the client presented.
    pub key: Option<Arc<str>>,
    /// The server's name in the gateway file.
    pub server: Option<Arc<str>>,
    /// The JSON-RPC method (a known one without an allocation: see [`method_name`]).
    pub method: std::borrow::Cow<'static, str>,
    /// The tool or prompt name or the resource URI.
    pub name: Option<Name>,
    /// From the request's arrival to its answer.
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// Size of the request.
    pub bytes_in: u64,
    /// Size of the answer the client got.
    pub bytes_out: u64,
    /// The raw request; set only when [`AuditLog::wants_arguments`] (parsed by the writer).
    pub request: Option<Bytes>,
    /// The raw answer; set only when [`AuditLog::wants_arguments`].
    pub answer: Option<Bytes>,
}

/// A tool or prompt name or a resource URI as a record keeps it: up to [`Name::INLINE`] bytes
/// inside the record, so that the common case allocates nothing on the request's thread for
/// the writer's thread to free (which starves the allocator's per-thread cache on the request
/// path); longer ones on the heap.
#[derive(Clone)]
pub enum Name {
    /// A short name: its length and bytes.
    Inline(u8, [u8; Name::INLINE]),
    /// A longer one.
    Heap(Box<str>),
}

impl Name {
    /// The longest name kept inline.
    pub const INLINE: usize = 46;
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        if s.len() <= Name::INLINE {
            let mut bytes = [0; Name::INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline(s.len() as u8, bytes)
        } else {
            Name::Heap(s.into())
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            // Copied whole from a `str` at a char boundary: always valid.
            Name::Inline(len, bytes) => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// `method` as a record keeps it: the methods a client sends a server (MCP 2024-11-05 to
/// 2026-07-28) are shared constants; anything else is copied.
pub fn method_name(method: &str) -> std::borrow::Cow<'static, str> {
    const KNOWN: [&str; 16] = [
        "tools/call",
        "tools/list",
        "resources/read",
        "resources/list",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/get",
        "prompts/list",
        "completion/complete",
        "initialize",
        "ping",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/list",
    ];
    match KNOWN.iter().find(|k| **k == method) {
        Some(k) => std::borrow::Cow::Borrowed(k),
        None => std::borrow::Cow::Owned(method.to_owned()),
    }
}

/// The running audit log. Cheap to share (`Arc<AuditLog>`); [`log`](Self::log) never waits.
pub struct AuditLog {
    queue: Arc<Queue>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
    arguments: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditLog {
    /// Opens the sink (so a bad path fails at startup, naming the file) and starts the writer.
    pub fn start(config: &AuditConfig) -> io::Result<AuditLog> {
        let out = match &config.sink {
            Sink::Stderr => Output::Stderr(io::stderr()),
            Sink::File(path) => Output::File {
                file: BufWriter::new(open(path)?),
                path: path.clone(),
            },
        };
        Ok(Self::spawn(config, out))
    }

    #[cfg(test)]
    fn with_writer(config: &AuditConfig, w: Box<dyn Write + Send>) -> AuditLog {
        Self::spawn(config, Output::Other(w))
    }

    fn spawn(config: &AuditConfig, out: Output) -> AuditLog {
        let queue = Arc::new(Queue::new(config.queue));
        let dropped = Arc::new(AtomicU64::new(0));
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            out,
            dropped: dropped.clone(),
            reported: 0,
            reopen: reopen.clone(),
            redact: config.redact.clone(),
            line: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn({
                let queue = queue.clone();
                move || writer.run(&queue)
            })
            .expect("the audit writer thread starts");
        AuditLog {
            queue,
            dropped,
            reopen,
            arguments: config.arguments,
            thread: Some(thread),
        }
    }

    /// Whether records should carry the raw request and answer.
    pub fn wants_arguments(&self) -> bool {
        self.arguments
    }

    /// Queues a record, or drops and counts it when the queue is full. Never waits.
    pub fn log(&self, record: Record) {
        if !self.queue.push(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped so far (for /metrics).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Reopens the file before the next line (serve calls this on SIGHUP, after logrotate
    /// renamed the file). Never waits.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        self.queue.hurry();
    }

    /// Waits until every record queued so far is written and flushed.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        self.queue.flush(ack);
        let _ = done.await;
    }

    /// Writes what is queued and stops the writer.
    pub async fn close(mut self) {
        self.queue.close();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for AuditLog {
    /// A log replaced by a reload: its writer writes what is queued and stops.
    fn drop(&mut self) {
        self.queue.close();
    }
}

fn open(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open audit log {}: {e}", path.display()),
            )
        })
}

enum Output {
    File {
        file: BufWriter<File>,
        path: PathBuf,
    },
    Stderr(io::Stderr),
    #[cfg(test)]
    Other(Box<dyn Write + Send>),
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::File { file, .. } => file,
            Output::Stderr(e) => e,
            #[cfg(test)]
            Output::Other(w) => w,
        }
    }
}

struct Writer {
    out: Output,
    dropped: Arc<AtomicU64>,
    reported: u64,
    reopen: Arc<AtomicBool>,
    redact: Vec<String>,
    /// The line being rendered, kept between records.
    line: Vec<u8>,
}

impl Writer {
    fn run(mut self, queue: &Queue) {
        let mut records = Vec::new();
        loop {
            let batch = queue.next(&mut records);
            if self.reopen.swap(false, Ordering::Acquire) {
                self.reopen_file();
            }
            for record in records.drain(..) {
                let mut line = std::mem::take(&mut self.line);
                line.clear();
                super::audit_line::render_into(&record, &self.redact, &mut line);
                self.write(&line);
                self.line = line;
            }
            // One flush per batch: a burst costs one write system call.
            self.report_drops();
            self.flush();
            for ack in batch.flushes {
                let _ = ack.send(());
            }
            if batch.closed {
                return;
            }
        }
    }

    fn report_drops(&mut self) {
        let total = self.dropped.load(Ordering::Relaxed);
        if total > self.reported {
            let line = super::audit_line::dropped_line(SystemTime::now(), total - self.reported);
            self.reported = total;
            self.write(&line);
        }
    }

    fn write(&mut self, line: &[u8]) {
        if let Err(e) = self.out.writer().write_all(line) {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.writer().flush() {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }

    fn reopen_file(&mut self) {
        self.flush();
        if let Output::File { file, path } = &mut self.out {
            match open(path) {
                Ok(f) => *file = BufWriter::new(f),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reopen the audit log; writing to the old file")
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
