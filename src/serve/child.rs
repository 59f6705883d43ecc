//! One stdio MCP server process: spawned with an explicit environment in its own process group,
//! fed lines on stdin, read line by line on stdout (bounded), its stderr logged, and stopped in
//! order: close stdin, wait, SIGTERM, wait, SIGKILL.

use crate::serve::config::Config;
use crate::stdio::{HEAD_KEPT, Line, LineSplitter};
use crate::wire::{BridgeError, Reason};
use bytes::Bytes;
use rustix::process::{Pid, Signal, kill_process_group};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Handle to a running child. Dropping every clone of `stdin` closes its stdin.
#[derive(Debug, Clone)]
pub struct Child {
    stdin: mpsc::Sender<Bytes>,
    /// Cancelled to ask for an orderly stop.
    stop: CancellationToken,
    /// Cancelled once the process has exited and its stdout is drained.
    exited: CancellationToken,
}

/// A stdout line over `--max-message-size`: only its start was kept.
#[derive(Debug)]
pub struct TooLong {
    /// How many bytes the line had.
    pub len: usize,
    /// The limit it broke.
    pub limit: usize,
    /// Its first bytes, where an answer's `id` usually is.
    pub head: Bytes,
}

/// The child could not take a message.
#[derive(Debug, thiserror::Error)]
#[error("the MCP server process is gone")]
pub struct Gone;

impl Child {
    /// A stdout handler for [`Child::spawn`]: parses each line and hands the message to
    /// `deliver` on `target` while it lives. A line that cannot be passed on (too long, not
    /// JSON-RPC) is logged and dropped; when its start shows it answers a request, `deliver` gets
    /// an error response under that id in its place, so the request is answered (or, if nobody
    /// waits for it, dropped like any stray answer) by the same routing as the child's own.
    pub fn messages_to<T: Send + Sync + 'static>(
        target: std::sync::Weak<T>,
        deliver: fn(&T, crate::jsonrpc::Message),
    ) -> impl FnMut(Result<Bytes, TooLong>) + Send + 'static {
        move |line| {
            let Some(target) = target.upgrade() else {
                return;
            };
            let (text, why, reason) = match line {
                Ok(raw) => match crate::jsonrpc::parse(raw.clone()) {
                    Ok(msg) => return deliver(&target, msg),
                    Err(e) => (raw, format!("is not JSON-RPC ({e})"), Reason::BadResponse),
                },
                Err(t) => (
                    t.head,
                    format!(
                        "was too large ({} bytes > --max-message-size {})",
                        t.len, t.limit
                    ),
                    Reason::TooLarge,
                ),
            };
            let head = &text[..text.len().min(HEAD_KEPT)];
            let Some(id) = crate::jsonrpc::scan_response_id(head) else {
                tracing::warn!("the child wrote a line that {why}; dropped");
                return;
            };
            tracing::warn!(
                id = id.as_json(),
                "the child's answer {why}; its request gets an error instead"
            );
            let error = BridgeError::new(reason, true, format!("the MCP server's response {why}"));
            if let Ok(msg) = crate::jsonrpc::parse(error.response(Some(&id))) {
                deliver(&target, msg);
            }
        }
    }

    /// Spawns the configured command. `on_line` gets every stdout line; `on_exit` gets a
    /// description of how the process ended, after its last line.
    pub fn spawn(
        cfg: &Config,
        tasks: &TaskTracker,
        on_line: impl FnMut(Result<Bytes, TooLong>) + Send + 'static,
        on_exit: impl FnOnce(String) + Send + 'static,
    ) -> std::io::Result<Child> {
        if let Some(remote) = &cfg.relay {
            return Ok(crate::serve::relay::spawn(
                remote, cfg, tasks, on_line, on_exit,
            ));
        }
        let mut cmd = tokio::process::Command::new(&cfg.program);
        if let Some(dir) = &cfg.cwd {
            cmd.current_dir(dir);
        }
        cmd.args(&cfg.args)
            .env_clear()
            .envs(cfg.child_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches only the gateway, which then
            // stops children in order, and the whole group (grandchildren too) can be signalled.
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut proc = cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot start `{}`: {e}", cfg.program))
        })?;
        let pid = proc.id();
        tracing::info!(pid, program = %cfg.program, "child started");
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let stop = CancellationToken::new();
        let exited = CancellationToken::new();
        let stdin = proc.stdin.take().expect("stdin is piped");
        let stdout = proc.stdout.take().expect("stdout is piped");
        let stderr = proc.stderr.take().expect("stderr is piped");
        let span = tracing::Span::current();

        tasks.spawn(write_stdin(stdin, rx, stop.clone()).instrument(span.clone()));
        let reader = tasks
            .spawn(read_stdout(stdout, cfg.max_message_size, on_line).instrument(span.clone()));
        tasks.spawn(log_stderr(stderr).instrument(span.clone()));
        let grace = cfg.stop_timeout;
        let (stop2, exited2) = (stop.clone(), exited.clone());
        tasks.spawn(
            async move {
                let status = supervise(&mut proc, pid, &stop2, grace).await;
                // Messages written just before exit must reach the session before the crash does;
                // a grandchild holding stdout open must not stall this forever.
                let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
                // No signal to the group now: the child is reaped and its pid may be reused.
                let reason = match status {
                    Some(s) => format!("the MCP server process exited ({s})"),
                    None => "the MCP server process could not be waited for".to_owned(),
                };
                if stop2.is_cancelled() {
                    tracing::info!("child stopped: {reason}");
                } else {
                    tracing::warn!("child ended on its own: {reason}");
                }
                exited2.cancel();
                on_exit(reason);
            }
            .instrument(span),
        );
        Ok(Child {
            stdin: tx,
            stop,
            exited,
        })
    }

    /// A handle to something other than a process (the in-process relay of a remote server):
    /// `stdin` takes its input, `stop` asks it to end, `exited` says it has.
    pub(super) fn from_parts(
        stdin: mpsc::Sender<Bytes>,
        stop: CancellationToken,
        exited: CancellationToken,
    ) -> Child {
        Child {
            stdin,
            stop,
            exited,
        }
    }

    /// A handle with no process behind it: what is sent to it arrives on the returned receiver.
    #[cfg(test)]
    pub fn detached() -> (Child, mpsc::Receiver<Bytes>) {
        let (stdin, rx) = mpsc::channel(64);
        let child = Child {
            stdin,
            stop: CancellationToken::new(),
            exited: CancellationToken::new(),
        };
        (child, rx)
    }

    /// Queues one message (one line, without its newline) for the child's stdin.
    pub async fn send(&self, line: Bytes) -> Result<(), Gone> {
        self.stdin.send(line).await.map_err(|_| Gone)
    }

    /// Queues one message without waiting; fails when the queue is full or the child is gone.
    pub fn try_send(&self, line: Bytes) -> Result<(), Gone> {
        self.stdin.try_send(line).map_err(|_| Gone)
    }

    /// Asks the child to stop (close stdin, then signals), without waiting.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the process has exited.
    pub async fn wait(&self) {
        self.exited.cancelled().await;
    }
}

async fn supervise(
    proc: &mut tokio::process::Child,
    pid: Option<u32>,
    stop: &CancellationToken,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    // Cancel-safe: `wait` can be polled again after the stop branch wins.
    tokio::select! {
        status = proc.wait() => return status.ok(),
        _ = stop.cancelled() => {}
    }
    // The stdin writer sees the same token and closes stdin.
    if let Ok(status) = tokio::time::timeout(grace, proc.wait()).await {
        return status.ok();
    }
    let group = pid.and_then(|p| Pid::from_raw(p as i32));
    if let Some(group) = group {
        tracing::info!("child still running after stdin closed: SIGTERM");
        let _ = kill_process_group(group, Signal::TERM);
    }
    if let Ok(status) = tokio::time::timeout(grace, proc.wait()).await {
        return status.ok();
    }
    tracing::warn!("child ignored SIGTERM: SIGKILL");
    if let Some(group) = group {
        let _ = kill_process_group(group, Signal::KILL);
    }
    let _ = proc.start_kill();
    proc.wait().await.ok()
}

pub(super) async fn write_stdin(
    mut stdin: impl tokio::io::AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Bytes>,
    stop: CancellationToken,
) {
    loop {
        // Cancel-safe: a message not yet received stays in the channel.
        let line = tokio::select! {
            _ = stop.cancelled() => break,
            line = rx.recv() => line,
        };
        let Some(line) = line else { break };
        if stdin.write_all(&line).await.is_err() || stdin.write_all(b"\n").await.is_err() {
            break;
        }
        // Coalesce: flush only when nothing else is queued.
        while let Ok(more) = rx.try_recv() {
            if stdin.write_all(&more).await.is_err() || stdin.write_all(b"\n").await.is_err() {
                return;
            }
        }
        if stdin.flush().await.is_err() {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}

pub(super) async fn read_stdout(
    mut stdout: impl tokio::io::AsyncRead + Unpin,
    max: usize,
    mut on_line: impl FnMut(Result<Bytes, TooLong>),
) {
    let mut splitter = LineSplitter::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = Vec::new();
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("reading the child's stdout failed: {e}");
                break;
            }
        };
        splitter.feed(&buf[..n], &mut lines);
        for line in lines.drain(..) {
            deliver(line, max, &mut on_line);
        }
    }
    splitter.finish(&mut lines);
    for line in lines {
        deliver(line, max, &mut on_line);
    }
}

fn deliver(line: Line, limit: usize, on_line: &mut impl FnMut(Result<Bytes, TooLong>)) {
    match line {
        Line::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
        Line::Text(t) => on_line(Ok(t)),
        Line::TooLong { len, head } => on_line(Err(TooLong { len, limit, head })),
    }
}

/// The most of one stderr line that is logged; the rest is counted and skipped.
const STDERR_LINE_CAP: usize = 4096;

/// Logs the child's stderr line by line as bytes: invalid UTF-8 is replaced, a line past
/// [`STDERR_LINE_CAP`] is cut (its length logged), and the pipe is drained to the end so the
/// child never blocks on it or gets SIGPIPE from us.
async fn log_stderr(mut stderr: tokio::process::ChildStderr) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut skipped = 0usize;
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("reading the child's stderr stopped: {e}");
                break;
            }
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (part, ended) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], Some(i + 1)),
                None => (rest, None),
            };
            let room = STDERR_LINE_CAP - line.len();
            line.extend_from_slice(&part[..part.len().min(room)]);
            skipped += part.len().saturating_sub(room);
            match ended {
                Some(i) => {
                    log_stderr_line(&line, skipped);
                    line.clear();
                    skipped = 0;
                    rest = &rest[i..];
                }
                None => rest = &[],
            }
        }
    }
    if !line.is_empty() || skipped > 0 {
        log_stderr_line(&line, skipped);
    }
}

fn log_stderr_line(line: &[u8], skipped: usize) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if skipped > 0 {
        tracing::info!(target: "child", "stderr: {text}… ({skipped} more bytes cut)");
    } else {
        tracing::info!(target: "child", "stderr: {text}");
    }
}

/// Asks the kernel to SIGKILL the child when the gateway dies (even by SIGKILL), so no
/// orphaned server outlives it.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec. It only makes two system calls
    // through rustix, prctl(2) and getppid(2), both async-signal-safe; it allocates nothing
    // (errors are raw OS errors) and takes no lock, so it cannot deadlock on state the fork
    // copied. The death signal follows the thread that forked: children are spawned from the
    // runtime's worker threads, which live as long as the gateway.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The gateway died before the line above: do not run as an orphan.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}
