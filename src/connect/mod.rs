//! Sandbox side: a stdio MCP server to the agent that relays every message to a remote MCP server
//! (Streamable HTTP, HTTP+SSE, or the stateless 2026-07-28 revision) and every server message
//! back. [`run`] reads the agent's lines, [`outbox::Outbox`] writes what goes back, and exactly
//! one of the transports carries each message in between.

mod auth;
mod config;
mod detect;
mod http;
mod lean;
mod outbox;
mod sse;
mod stateless;
mod streamable;

pub use config::{Config, ConfigError};
pub(crate) use http::clamp_retry;

use crate::cli::TransportChoice;
use crate::jsonrpc::{self, Kind, Message};
use crate::stdio::{self, Line, Stdio, Stdout};
use crate::wire::{self, BridgeError, Reason};
use bytes::Bytes;
use outbox::Outbox;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What stops `connect` before it relays anything.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// What every part of a connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The validated options.
    pub config: Arc<Config>,
    /// The one keep-alive client for every request.
    pub client: reqwest::Client,
    /// The hot path's lean client, where it sends what `client` would (see [`lean`]).
    pub lean: Option<Arc<lean::Lean>>,
    /// The way back to the agent.
    pub out: Outbox,
    /// Whether the remote answered last time (for logs).
    pub link: http::Link,
    /// The agent's `initialize` request and `notifications/initialized`, replayed when the
    /// remote has lost the session.
    pub handshake: Arc<Mutex<Handshake>>,
    /// Every task the connection started, waited for at shutdown.
    pub tasks: TaskTracker,
    /// Cancelled when the bridge shuts down.
    pub shutdown: CancellationToken,
    /// The remote, for messages: `URL` or `URL via unix:PATH`.
    pub target: Arc<str>,
    /// Requests whose POST has not started yet; a cancellation waits for its request.
    pub unsent: Arc<Unsent>,
}

/// Requests handed to their own task whose POST has not been answered yet (not even with
/// headers), so that a `notifications/cancelled`, sent in line on another connection, does not
/// overtake the request it cancels.
#[derive(Default)]
pub(crate) struct Unsent {
    ids: Mutex<std::collections::HashSet<jsonrpc::Id>>,
    sent: tokio::sync::Notify,
}

tokio::task_local! {
    /// The requests the current task is sending, until its POST has been answered.
    static SENDING: std::cell::RefCell<Option<(Arc<Unsent>, Vec<jsonrpc::Id>)>>;
}

/// Longest a cancellation waits for its request: a server that holds a JSON answer until the
/// tool is done gives no earlier sign of having the request, and a cancellation must still go.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

impl Unsent {
    /// `msg`'s requests are about to be handed to a task: they count as unsent from now on.
    /// Returns their ids, for [`Unsent::sending`].
    pub fn hold(&self, msg: &Message) -> Vec<jsonrpc::Id> {
        let ids: Vec<jsonrpc::Id> = msg.request_ids().cloned().collect();
        self.ids
            .lock()
            .expect("unsent lock")
            .extend(ids.iter().cloned());
        ids
    }

    /// Runs `send`, the delivery of the held `ids` on their own task, until
    /// [`Unsent::mark_sent`] is called from within, or `send` ends.
    pub async fn sending<F: std::future::Future>(
        self: Arc<Self>,
        ids: Vec<jsonrpc::Id>,
        send: F,
    ) -> F::Output {
        let cell = std::cell::RefCell::new(Some((self, ids)));
        let mut scoped = std::pin::pin!(SENDING.scope(cell, send));
        let out = scoped.as_mut().await;
        // Released here only if `send` did not mark them sent (which released them already).
        let left = scoped.as_mut().take_value().and_then(|c| c.into_inner());
        if let Some((unsent, ids)) = left {
            unsent.release(&ids);
        }
        out
    }

    /// The current task's POST has an answer (or failed): its requests are with the server.
    pub fn mark_sent() {
        let taken = SENDING.try_with(|c| c.borrow_mut().take()).ok().flatten();
        if let Some((unsent, ids)) = taken {
            unsent.release(&ids);
        }
    }

    fn release(&self, ids: &[jsonrpc::Id]) {
        let mut held = self.ids.lock().expect("unsent lock");
        for id in ids {
            held.remove(id);
        }
        self.sent.notify_waiters();
    }

    /// Waits until the request `id` is with the server, at most [`CANCEL_WAIT`].
    pub async fn wait(&self, id: &jsonrpc::Id) {
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let sent = self.sent.notified();
            if !self.ids.lock().expect("unsent lock").contains(id) {
                return;
            }
            if tokio::time::timeout_at(deadline, sent).await.is_err() {
                return;
            }
        }
    }
}

/// What the bridge keeps of the handshake era's opening, to replay it on a new session.
#[derive(Default)]
pub(crate) struct Handshake {
    /// The agent's `initialize` request, as sent.
    pub initialize: Option<Bytes>,
    /// The agent's `notifications/initialized`, as sent.
    pub initialized: Option<Bytes>,
    /// Counter for the ids of requests the bridge makes itself.
    pub next_id: u64,
}

impl Shared {
    /// A fresh id for a request the bridge sends on its own; never one an agent would choose.
    pub fn bridge_id(&self) -> String {
        let mut h = self.handshake.lock().expect("handshake lock");
        h.next_id += 1;
        format!("\"mcp-bridge-{}\"", h.next_id)
    }

    /// The cached handshake, with the `initialize` request re-addressed to `id`.
    pub fn replay(&self, id: &str) -> Option<(Bytes, Option<Bytes>)> {
        let h = self.handshake.lock().expect("handshake lock");
        let init = jsonrpc::with_id(h.initialize.as_ref()?, id).ok()?;
        Some((init, h.initialized.clone()))
    }

    /// When a message sent now stops waiting for an unreachable remote.
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.connect_timeout
    }
}

/// The session transport of the handshake era, once known.
pub(crate) enum Transport {
    /// `auto`, before the first message has shown what the remote speaks.
    Undecided,
    /// Streamable HTTP (2025-03-26 and later).
    Streamable(Arc<streamable::Streamable>),
    /// HTTP+SSE (2024-11-05), `--transport sse`.
    Sse(Arc<sse::Sse>),
}

/// Runs the bridge over `io` until its input ends, its output closes, or `shutdown` is cancelled.
pub async fn run(config: Config, io: Stdio, shutdown: CancellationToken) -> Result<(), Error> {
    let client = http::build_client(&config).map_err(Error::Client)?;
    let lean = lean::Lean::for_config(&config);
    let target: Arc<str> = match &config.unix {
        Some(path) => format!(
            "{} via unix:{}",
            config::redact_url(config.url.as_str()),
            path.display()
        )
        .into(),
        None => config::redact_url(config.url.as_str()).into(),
    };
    let stdout_closed = shutdown.child_token();
    let (stdout, writer) = Stdout::spawn(io.output, stdout_closed.clone());
    let shared = Shared {
        config: Arc::new(config),
        client,
        lean,
        out: Outbox::new(stdout.clone()),
        link: http::Link::default(),
        handshake: Arc::default(),
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        target,
        unsent: Arc::default(),
    };
    let mut lines = stdio::spawn_reader(io.input, shared.config.max_message_size);
    let mut transport = match shared.config.transport {
        TransportChoice::Streamable => {
            Transport::Streamable(streamable::Streamable::new(shared.clone()))
        }
        TransportChoice::Sse => Transport::Sse(sse::Sse::start(shared.clone())),
        TransportChoice::Auto => Transport::Undecided,
    };

    let stateless = stateless::Stateless::new(shared.clone());
    let mut eof = false;
    loop {
        // Each branch either waits on a channel or a token: dropping it loses nothing.
        let line = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = stdout_closed.cancelled() => break,
            line = lines.recv() => line,
        };
        let Some(line) = line else {
            eof = true;
            break;
        };
        let Some(msg) = accept(&shared.out, line).await else {
            continue;
        };
        transport = dispatch(&shared, &stateless, transport, msg).await;
    }

    if eof {
        // The agent closed stdin: give answers already on their way a moment to arrive.
        // Cancel-safe: both branches only wait.
        tokio::select! {
            _ = shared.out.idle() => {}
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        tracing::debug!("stdin closed: ending the session");
    }
    match &transport {
        Transport::Streamable(s) => s.close().await,
        Transport::Sse(l) => l.close(),
        Transport::Undecided => {}
    }
    shutdown.cancel();
    shared.tasks.close();
    let _ = tokio::time::timeout(Duration::from_millis(200), shared.tasks.wait()).await;
    drop((transport, stateless, shared, stdout));
    // The writer flushes whenever its queue is idle, so everything sent so far is out; it ends
    // once the last handle is gone. A task that outlived the wait above must not hold up the exit.
    writer.finish(Duration::from_millis(300)).await;
    Ok(())
}

/// Turns a stdin line into a message, or answers it with the error it deserves.
async fn accept(out: &Outbox, line: Line) -> Option<Message> {
    let text = match line {
        Line::Text(text) => text,
        Line::TooLong { len, head } => {
            tracing::warn!("refused a {len}-byte message from the agent: over --max-message-size");
            let err = BridgeError::refusal(
                Reason::TooLarge,
                wire::INVALID_REQUEST,
                format!("message of {len} bytes is over the --max-message-size limit"),
            );
            out.raw(err.named_response(readable_id(out, &head).as_ref()))
                .await;
            return None;
        }
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match jsonrpc::parse(text.clone()) {
        Ok(msg) => Some(msg),
        Err(e) => {
            tracing::warn!("refused a message from the agent: {e}");
            // A request that is not UTF-8 is still answered under its id, where it can be read.
            let id = match std::str::from_utf8(&text) {
                Ok(_) => None,
                Err(_) => readable_id(out, &text[..text.len().min(stdio::HEAD_KEPT)]),
            };
            let err = BridgeError::refusal(Reason::InvalidMessage, e.code(), e.to_string());
            out.raw(err.named_response(id.as_ref())).await;
            None
        }
    }
}

/// The id of a refused request, read from the start of its text, unless a request with the
/// same id is waiting (its answer must stay the only one under that id).
fn readable_id(out: &Outbox, head: &[u8]) -> Option<jsonrpc::Id> {
    jsonrpc::scan_request_id(head).filter(|id| !out.is_pending(id))
}

/// Notes what the bridge must remember of a handshake-era message. Returns false if the message
/// is not to be sent on (a cancellation of a 2026-07-28 request, done by closing its POST).
fn remember_handshake(
    shared: &Shared,
    stateless: &stateless::Stateless,
    transport: &Transport,
    msg: &Message,
) -> bool {
    match msg.method() {
        Some("initialize") if matches!(msg.kind(), Kind::Request { .. }) => {
            shared.handshake.lock().expect("handshake lock").initialize = Some(msg.raw.clone());
        }
        Some("notifications/initialized") => {
            shared.handshake.lock().expect("handshake lock").initialized = Some(msg.raw.clone());
        }
        Some("notifications/cancelled") => {
            // The server will not answer a cancelled request; neither will the bridge.
            if let Some(id) = wire::cancelled_id(&msg.raw) {
                shared.out.forget(&id);
                if stateless.cancel(&id) {
                    return false;
                }
            }
            // With no session of an earlier revision, there is nowhere to send it.
            if matches!(transport, Transport::Undecided) {
                tracing::debug!(
                    "dropping a cancellation for a request that is no longer in flight"
                );
                return false;
            }
        }
        _ => {}
    }
    true
}

/// Sends one agent message on its way: a 2026-07-28 request on its own, anything else on the
/// session transport (deciding which one on the first message).
async fn dispatch(
    shared: &Shared,
    stateless: &Arc<stateless::Stateless>,
    transport: Transport,
    msg: Message,
) -> Transport {
    let version = stateless::stateless_version(&msg);
    if version.is_none() && !remember_handshake(shared, stateless, &transport, &msg) {
        return transport;
    }
    if let Err(id) = shared.out.register(&msg) {
        tracing::warn!(
            id = id.as_json(),
            "the agent reused the id of a request still waiting"
        );
    }
    if let Some(version) = version {
        // 2026-07-28: each request stands alone, whatever the handshake state.
        stateless.send(msg, version);
        return transport;
    }
    if msg.method() == Some("notifications/cancelled")
        && let Some(id) = wire::cancelled_id(&msg.raw)
    {
        shared.unsent.wait(&id).await;
    }
    match transport {
        Transport::Streamable(s) => {
            s.send(msg).await;
            Transport::Streamable(s)
        }
        Transport::Sse(l) => {
            l.send(msg).await;
            Transport::Sse(l)
        }
        Transport::Undecided => detect::detect(shared, msg).await,
    }
}

#[cfg(test)]
mod tests;
