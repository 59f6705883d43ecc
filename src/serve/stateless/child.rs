//! How 2026-07-28 requests reach a child: either a child of that era (its own process, requests
//! pass through with their envelope), or, for a handshake-era command, the child the routing rule
//! picks, shared with the handshake sessions of the same name (`crate::serve::shared`): the
//! bridge initialized it (or a session did, and its result is reused), and answers are completed
//! as the stateless revision requires (see `translate`). Request ids and progress tokens are
//! spliced to the bridge's own numbers (`outgoing`), drawn from the same counter as the
//! sessions' requests to that child, so no two clients collide, and restored on the way out.

use crate::jsonrpc::{self, Id, Kind, Message};
use crate::policy::check::ToolCatalog;
use crate::serve::child::Child;
use crate::serve::policy::Ticket;
use crate::serve::stateless::listen;
use crate::serve::stateless::outgoing::{TOKEN_PREFIX, outgoing};
use crate::serve::stateless::translate::{self, HandshakeInfo};
use crate::wire::{self, BridgeError, METHOD_NOT_FOUND, Reason};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::mpsc;

mod from_child;

/// Which era the child speaks.
#[derive(Debug)]
pub enum Era {
    /// It answers `server/discover` (2026-07-28): requests pass through with their envelope.
    Stateless,
    /// It opens with `initialize`, which the bridge did; answers are translated.
    Handshake(HandshakeInfo),
}

/// One message for the POST that waits on a request.
#[derive(Debug)]
pub enum Out {
    /// A notification about the request (progress, a log message, a list change).
    Note(Bytes),
    /// The final answer: nothing follows.
    Answer(Bytes),
}

impl Out {
    /// The message.
    pub fn raw(&self) -> &Bytes {
        match self {
            Out::Note(raw) | Out::Answer(raw) => raw,
        }
    }
}

#[derive(Debug)]
/// A request in flight at the child, and where what concerns it goes.
pub(super) struct Waiter {
    /// Where its notes and answer go.
    pub tx: mpsc::UnboundedSender<Out>,
    /// The client's id; `None` for the bridge's own requests, whose answers pass as they are.
    pub client_id: Option<Id>,
    /// The client's progress token (its JSON text), restored in progress notifications.
    pub client_token: Option<Box<str>>,
    /// Its method, for translating the answer of a handshake-era child.
    pub method: String,
    /// When it was sent, for the latency histogram.
    pub since: std::time::Instant,
    /// The request opted in to log messages (`io.modelcontextprotocol/logLevel`).
    pub logs: bool,
    /// A `subscriptions/listen` the bridge serves itself (handshake-era child): its topics.
    pub listen: Option<crate::serve::stateless::listen::Topics>,
    /// The gateway's policy follows the request to its answer (list filter, audit record).
    pub ticket: Option<Ticket>,
}

#[derive(Debug, Default)]
/// The requests in flight, by the bridge's number.
pub(super) struct State {
    /// The child's request numbers, shared with its handshake sessions when it has some.
    next: Arc<AtomicU64>,
    /// Requests waiting for their answer.
    pub pending: HashMap<u64, Waiter>,
    /// Why the process is gone, once it is.
    exited: Option<String>,
}

impl State {
    /// A fresh number of the bridge for a request.
    pub(super) fn number(&mut self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The shared process for stateless requests.
#[derive(Debug, Default)]
pub struct StatelessChild {
    /// The process, set once spawned.
    pub child: OnceLock<Child>,
    /// Its era, set once the probe (or the restart) knows it.
    pub era: OnceLock<Era>,
    state: Mutex<State>,
    /// Tool name -> its `x-mcp-header` map (`None`: invalid annotations), cleared when the
    /// child says its tools changed.
    pub tools: crate::serve::stateless::tools::Tools,
    /// The gateway's counters (messages each way, answer latency).
    pub metrics: Arc<crate::serve::metrics::Metrics>,
    /// Which tools are read-only, as the lists that passed said (for `readOnly` rules).
    pub catalog: ToolCatalog,
}

/// Cancels the request when dropped before its answer came: the client went away.
#[derive(Debug)]
pub struct InFlight {
    child: Arc<StatelessChild>,
    n: u64,
    /// Dropping no longer cancels: the answer came, or the request is not to be cancelled.
    disarmed: bool,
}

impl InFlight {
    /// A guard for request `n` of `child`.
    pub(super) fn new(child: Arc<StatelessChild>, n: u64) -> InFlight {
        InFlight {
            child,
            n,
            disarmed: false,
        }
    }

    /// Dropping the guard will no longer cancel the request (its answer came).
    pub fn disarm(&mut self) {
        self.disarmed = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.disarmed {
            self.child
                .cancel(self.n, "the client closed the response stream");
        }
    }
}

fn parse_n(id: &Id) -> Option<u64> {
    crate::rewrite::as_number(id.as_json())
}

impl StatelessChild {
    /// A child with no process yet.
    pub fn new(metrics: Arc<crate::serve::metrics::Metrics>) -> StatelessChild {
        StatelessChild {
            metrics,
            ..StatelessChild::default()
        }
    }

    /// The 2026-07-28 side of `child`, a handshake-era process whose other clients are sessions:
    /// its request numbers come from `numbers`, the counter those sessions' requests use.
    pub fn sharing(
        metrics: Arc<crate::serve::metrics::Metrics>,
        child: Child,
        numbers: Arc<AtomicU64>,
    ) -> StatelessChild {
        let rc = StatelessChild::new(metrics);
        rc.lock().next = numbers;
        let _ = rc.child.set(child);
        rc
    }

    /// The request table.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the child is a handshake-era one (and what it said at `initialize`).
    pub fn handshake(&self) -> Option<&HandshakeInfo> {
        match self.era.get() {
            Some(Era::Handshake(info)) => Some(info),
            _ => None,
        }
    }

    /// Sends a request (a JSON-RPC object) under a fresh id of the bridge. `client_id`: the id
    /// to restore in the answer, `None` for the bridge's own requests. Returns the receiver of
    /// what the child says about it, and the guard that cancels it if dropped early.
    pub fn start(
        self: &Arc<Self>,
        req: Value,
        client_id: Option<Id>,
    ) -> (mpsc::UnboundedReceiver<Out>, InFlight) {
        let method = req["method"].as_str().unwrap_or("").to_owned();
        let raw = serde_json::to_vec(&req).unwrap_or_default();
        self.start_watched(&raw, &method, client_id, None)
    }

    /// [`start`](Self::start) of a client's request as it came (`raw`, never parsed here), with
    /// the policy's `ticket` following it to its answer.
    pub fn start_watched(
        self: &Arc<Self>,
        raw: &[u8],
        method: &str,
        client_id: Option<Id>,
        ticket: Option<Ticket>,
    ) -> (mpsc::UnboundedReceiver<Out>, InFlight) {
        let (tx, rx) = mpsc::unbounded_channel();
        let method = method.to_owned();
        let mut st = self.lock();
        let n = st.number();
        let guard = InFlight::new(self.clone(), n);
        if let Some(reason) = &st.exited {
            let mut err =
                BridgeError::new(Reason::ChildGone, false, reason).response(client_id.as_ref());
            if let Some(t) = ticket {
                err = t.finish(err, &self.catalog);
            }
            let _ = tx.send(Out::Answer(err));
            return (rx, guard);
        }
        let out = match outgoing(raw, n, self.handshake().is_some()) {
            Ok(out) => out,
            Err(e) => {
                let err = jsonrpc::error_response(
                    client_id.as_ref(),
                    jsonrpc::INVALID_REQUEST,
                    &format!("the request cannot be relayed: {e}"),
                    None,
                );
                let _ = tx.send(Out::Answer(err));
                return (rx, guard);
            }
        };
        let waiter = Waiter {
            tx: tx.clone(),
            client_id: client_id.clone(),
            client_token: out.client_token,
            method,
            since: std::time::Instant::now(),
            logs: out.logs,
            listen: None,
            ticket,
        };
        st.pending.insert(n, waiter);
        drop(st);
        self.metrics.to_child.inc();
        let line = jsonrpc::fold_lines(&out.line);
        let sent = self.child.get().map(|c| c.try_send(line));
        if !matches!(sent, Some(Ok(()))) {
            self.lock().pending.remove(&n);
            let err = BridgeError::new(
                Reason::ChildGone,
                false,
                "the MCP server process is not taking messages",
            )
            .response(client_id.as_ref());
            let _ = tx.send(Out::Answer(err));
        }
        (rx, guard)
    }

    /// Sends a request of the bridge's own and waits (bounded) for the answer. A request that
    /// times out is cancelled at the child if `cancel_on_timeout` (never the probe or
    /// `initialize`: the spec does not cancel those).
    pub async fn ask(
        self: &Arc<Self>,
        req: Value,
        limit: std::time::Duration,
        cancel_on_timeout: bool,
    ) -> Option<Value> {
        let (mut rx, mut guard) = self.start(req, None);
        if !cancel_on_timeout {
            guard.disarm();
        }
        let out = tokio::time::timeout(limit, rx.recv())
            .await
            .ok()
            .flatten()?;
        serde_json::from_slice(out.raw()).ok()
    }

    /// Registers a request the bridge answers itself (the child is not asked): what the child
    /// later says that concerns it goes to `waiter`.
    pub(super) fn register(self: &Arc<Self>, waiter: Waiter) -> InFlight {
        let mut st = self.lock();
        let n = st.number();
        st.pending.insert(n, waiter);
        InFlight::new(self.clone(), n)
    }

    /// A notification from the child that names no request.
    fn unaddressed(&self, method: &str, msg: Value) {
        let st = self.lock();
        if method.ends_with("/list_changed") {
            for w in st.pending.values() {
                if let (Some(t), Some(id)) = (&w.listen, &w.client_id)
                    && t.covers(method)
                {
                    let raw = listen::with_subscription(msg.clone(), id);
                    let _ = w.tx.send(Out::Note(raw));
                }
            }
            return;
        }
        if method == "notifications/message" {
            let mut opted = st.pending.values().filter(|w| w.logs);
            if let (Some(w), None) = (opted.next(), opted.next()) {
                let raw = Bytes::from(serde_json::to_vec(&msg).unwrap_or_default());
                let _ = w.tx.send(Out::Note(raw));
                return;
            }
        }
        tracing::debug!(
            method,
            "dropping a notification that no open request or subscription stream asked for"
        );
    }

    /// Sends a notification (or any line) to the child, without waiting.
    pub fn notify(&self, msg: &Value) {
        if let Some(c) = self.child.get() {
            let _ = c.try_send(Bytes::from(serde_json::to_vec(msg).unwrap_or_default()));
        }
    }

    /// The client gave up on request `n`: tell the child, and forget it.
    fn cancel(&self, n: u64, reason: &str) {
        match self.lock().pending.remove(&n) {
            // A listen the bridge serves itself: the child knows nothing of it.
            Some(w) if w.listen.is_none() => {}
            _ => return,
        }
        tracing::debug!(n, "cancelling a stateless request: {reason}");
        self.notify(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": n, "reason": reason}}),
        );
    }

    /// The process ended: every waiting request gets an error, later ones too.
    pub fn exited(&self, reason: &str) {
        let mut st = self.lock();
        st.exited = Some(reason.to_owned());
        for (_, w) in st.pending.drain() {
            if let Some(id) = &w.client_id {
                let mut err = BridgeError::new(Reason::ChildGone, true, reason).response(Some(id));
                if let Some(t) = w.ticket {
                    err = t.finish(err, &self.catalog);
                }
                let _ = w.tx.send(Out::Answer(err));
            }
        }
    }

    /// Client requests in flight at the process (not the listen streams the bridge serves
    /// itself): while there are any, a request of the child may belong to one of them.
    pub fn asking(&self) -> usize {
        self.lock()
            .pending
            .values()
            .filter(|w| w.listen.is_none() && w.client_id.is_some())
            .count()
    }

    /// Requests (and listen streams) in flight: what keeps a keyed child alive.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether the process has ended.
    pub fn is_gone(&self) -> bool {
        self.lock().exited.is_some()
    }
}

#[cfg(test)]
mod tests;
