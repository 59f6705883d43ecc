//! One MCP session: which stream waits for which answer, the event log that streams read from,
//! and the link to the child that serves it (its own, or the shared one).

pub(crate) mod log;
pub(crate) mod stream;

use crate::jsonrpc::{self, Id, Kind, Message};
use crate::serve::child::Child;
use crate::serve::metrics::Metrics;
use crate::serve::policy::Ticket;
use crate::serve::session::log::{GET_STREAM, Log};
use crate::serve::shared::SharedChild;
use crate::wire::{self, BridgeError, Reason};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
// The tokio clock, so that tests can move idle time forward under `time::pause()`.
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How a session reaches its child.
#[derive(Debug)]
pub enum Link {
    Own(Child),
    Shared(Arc<SharedChild>),
}

/// Where the answer to a client's request goes.
#[derive(Debug, Clone)]
enum Sink {
    /// An SSE stream of this session's log.
    Stream(u64),
    /// A POST waiting to answer with plain JSON.
    Json(mpsc::UnboundedSender<Bytes>),
}

#[derive(Debug)]
struct Pending {
    sink: Sink,
    since: Instant,
    /// The request's progress token: its progress goes on its own stream, ahead of its answer.
    progress: Option<Box<str>>,
    /// The gateway's policy follows this request to its answer (list filter, audit record).
    ticket: Option<Ticket>,
}

#[derive(Debug)]
struct State {
    log: Log,
    next_stream: u64,
    pending: HashMap<Id, Pending>,
    /// The client has opened a GET stream: server-initiated messages go there from now on.
    get_opened: bool,
    /// Generation of the GET stream's current reader; a newer GET replaces an older one.
    get_reader: u64,
    /// Highest seq handed to a GET reader, where a GET without Last-Event-ID starts.
    get_cursor: u64,
    /// The newest POST stream, where server-initiated messages go before any GET stream.
    last_post: u64,
    /// Open streams and JSON waits; a session with none is idle and ages toward its TTL.
    attached: usize,
    idle_since: Instant,
    /// Why the session ended, once it has.
    closed: Option<String>,
    /// `protocolVersion` of the initialize result.
    protocol: Option<String>,
    /// The id of the client's `initialize`, whose result names the protocol version.
    init_id: Option<Id>,
}

impl State {
    /// The stream for a message that answers nothing (a notification or a request of the
    /// child's). Progress belongs with the request that asked for it: on that request's stream it
    /// stays ahead of the answer, which a separate GET stream could not promise.
    fn stream_for_unanswered(&self, msg: &Message) -> u64 {
        let own_stream = match msg.method() {
            Some("notifications/progress") => jsonrpc::progress_token(&msg.raw).and_then(|token| {
                self.pending.values().find_map(|p| match p.sink {
                    Sink::Stream(n)
                        if p.progress.as_deref() == Some(&*token) && self.log.is_open(n) =>
                    {
                        Some(n)
                    }
                    _ => None,
                })
            }),
            _ => None,
        };
        match own_stream {
            Some(n) => n,
            None if self.get_opened || !self.log.is_open(self.last_post) => GET_STREAM,
            None => self.last_post,
        }
    }

    /// Opens the answer stream of a POST carrying `requests` requests.
    fn open_post_stream(&mut self, requests: usize) -> u64 {
        let stream = self.next_stream;
        self.next_stream += 1;
        self.last_post = stream;
        self.log.open_stream(stream, requests);
        // SEP-1699 priming event: an id to resume from before anything else is sent.
        if self.protocol.as_deref().is_some_and(|v| v >= "2025-11-25") {
            self.log.push(stream, None, b"");
        }
        stream
    }
}

/// Which HTTP transport a session was opened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP (`/mcp`): each POST gets its answers; the session outlives its streams.
    Streamable,
    /// HTTP+SSE (`/sse`, `/messages`): one stream carries everything and its end ends the
    /// session.
    Sse,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    /// The `Mcp-Session-Id` (or `sessionId` of HTTP+SSE): 128 random bits in hex.
    pub id: Arc<str>,
    /// The transport it was opened on.
    pub transport: Transport,
    /// The span of everything logged about this session.
    pub span: tracing::Span,
    state: Mutex<State>,
    changed: watch::Sender<()>,
    /// Its child, set once it is spawned (or joined).
    pub link: OnceLock<Link>,
    metrics: Arc<Metrics>,
    /// Which of its child's tools are read-only, as its lists said (for `readOnly` rules).
    pub catalog: crate::policy::check::ToolCatalog,
    /// The named client that opened it; only that client may use it.
    pub owner: OnceLock<Arc<str>>,
}

/// How a POST wants its answers.
pub enum Plan {
    /// Nothing to answer (notifications, responses): 202.
    Accepted,
    /// Read this SSE stream of the session from the start.
    Stream(u64),
    /// Collect this many JSON answers.
    Json(usize, mpsc::UnboundedReceiver<Bytes>),
}

impl Session {
    /// A session with nothing in flight, not yet linked to a child.
    pub fn new(
        id: String,
        transport: Transport,
        replay_cap: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Session> {
        let span = tracing::info_span!("session", id = %&id[..8]);
        Arc::new(Session {
            id: id.into(),
            transport,
            span,
            state: Mutex::new(State {
                log: Log::new(replay_cap),
                next_stream: 1,
                pending: HashMap::new(),
                // An SSE session's one stream is open from the start.
                get_opened: transport == Transport::Sse,
                get_reader: 0,
                get_cursor: 0,
                last_post: GET_STREAM,
                attached: 0,
                idle_since: Instant::now(),
                closed: None,
                protocol: None,
                init_id: None,
            }),
            changed: watch::channel(()).0,
            link: OnceLock::new(),
            metrics,
            catalog: Default::default(),
            owner: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes whenever the log or the pending table changes.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// The protocol version the child agreed to at `initialize`.
    pub fn protocol(&self) -> Option<String> {
        self.lock().protocol.clone()
    }

    /// How long the session has been idle, or `None` while a client is attached.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        let st = self.lock();
        (st.attached == 0).then(|| st.idle_since.elapsed())
    }

    /// Counts a request as activity, restarting the idle clock.
    pub fn touch(&self) {
        self.lock().idle_since = Instant::now();
    }

    /// Counts an open stream or JSON wait: the session is not idle meanwhile.
    pub fn attach(&self) {
        self.lock().attached += 1;
    }

    /// Ends what `attach` counted; the idle clock starts again.
    pub fn detach(&self) {
        let mut st = self.lock();
        st.attached = st.attached.saturating_sub(1);
        st.idle_since = Instant::now();
    }

    /// Registers the requests in `msg` and says where their answers will go. `sse`: the client
    /// accepts an event stream. Fails (with the error body) on an id already in flight.
    pub fn plan(&self, msg: &Message, sse: bool) -> Result<Plan, Bytes> {
        let mut st = self.lock();
        if let Some(reason) = &st.closed {
            return Err(BridgeError::new(Reason::SessionClosed, false, reason).response(None));
        }
        let ids: Vec<Id> = msg.request_ids().cloned().collect();
        if ids.is_empty() {
            return Ok(Plan::Accepted);
        }
        if let Some(dup) = ids.iter().find(|id| st.pending.contains_key(*id)) {
            return Err(jsonrpc::error_response(
                Some(dup),
                jsonrpc::INVALID_REQUEST,
                "a request with this id is already in flight in this session",
                None,
            ));
        }
        if let Kind::Request { id, method } = msg.kind()
            && method == "initialize"
        {
            st.init_id = Some(id.clone());
        }
        let (plan, sink, progress) = match self.transport {
            Transport::Sse => (Plan::Stream(GET_STREAM), Sink::Stream(GET_STREAM), None),
            Transport::Streamable if sse => {
                let stream = st.open_post_stream(ids.len());
                let progress = (!msg.batch)
                    .then(|| jsonrpc::progress_token(&msg.raw))
                    .flatten();
                (Plan::Stream(stream), Sink::Stream(stream), progress)
            }
            Transport::Streamable => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Plan::Json(ids.len(), rx), Sink::Json(tx), None)
            }
        };
        let since = Instant::now();
        for id in ids {
            let pending = Pending {
                sink: sink.clone(),
                since,
                progress: progress.clone(),
                ticket: None,
            };
            st.pending.insert(id, pending);
        }
        Ok(plan)
    }

    /// Lets `ticket` see the answer to request `id` (planned, not yet sent).
    pub fn watch(&self, id: &Id, ticket: Ticket) {
        if let Some(p) = self.lock().pending.get_mut(id) {
            p.ticket = Some(ticket);
        }
    }

    /// Sends a client message to the child; requests it cannot deliver are answered with errors.
    pub async fn send(self: &Arc<Self>, msg: Message) {
        self.metrics.to_child.inc();
        let delivered = match self.link.get() {
            Some(Link::Own(child)) => child.send(one_line(&msg.raw)).await.is_ok(),
            Some(Link::Shared(shared)) => shared.send(self, &msg).await,
            None => false,
        };
        if !delivered {
            for id in msg.request_ids() {
                let err = BridgeError::new(
                    Reason::ChildGone,
                    false,
                    "the MCP server process is not running",
                )
                .response(Some(id));
                self.deliver_raw(err);
            }
        }
    }

    /// Takes a message from the child (already parsed; ids already this session's own).
    pub fn deliver(&self, msg: Message) {
        self.metrics.from_child.inc();
        let mut st = self.lock();
        let response_ids: Vec<&Id> = msg.response_ids().collect();
        if msg.method() == Some("notifications/tools/list_changed") {
            self.catalog.clear();
        }
        if response_ids.is_empty() {
            let target = st.stream_for_unanswered(&msg);
            st.log.push(target, None, &msg.raw);
        } else if !self.answer(&mut st, &response_ids, &msg.raw) {
            return;
        }
        drop(st);
        self.changed.send_replace(());
    }

    /// Hands an answer (one, or a batch's) to whoever waits for it. False if nobody does.
    fn answer(&self, st: &mut State, ids: &[&Id], raw: &Bytes) -> bool {
        let mut first_sink = None;
        let mut replaced = None;
        for id in ids {
            let Some(mut p) = st.pending.remove(*id) else {
                tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
                continue;
            };
            // Requests are watched only one to a message: this is the whole answer.
            if let Some(ticket) = p.ticket.take() {
                replaced = Some(ticket.finish(raw.clone(), &self.catalog));
            }
            self.metrics.latency.observe(p.since.elapsed());
            if st.init_id.as_ref() == Some(*id) {
                st.protocol = wire::initialize_version(raw);
            }
            // A batch's answers arrive as one message: it goes where the first waits.
            match (&first_sink, p.sink) {
                (None, sink) => first_sink = Some(sink),
                (Some(_), Sink::Stream(n)) => st.log.answered(n),
                (Some(_), Sink::Json(_)) => {}
            }
        }
        let raw = replaced.as_ref().unwrap_or(raw);
        match first_sink {
            Some(Sink::Stream(n)) => {
                st.log.push(n, None, raw);
                st.log.answered(n);
                true
            }
            Some(Sink::Json(tx)) => {
                let _ = tx.send(raw.clone());
                true
            }
            None => false,
        }
    }

    /// Delivers a message made by the bridge itself (an error answer).
    pub fn deliver_raw(&self, raw: Bytes) {
        if let Ok(msg) = jsonrpc::parse(raw) {
            self.deliver(msg);
        }
    }

    /// Forgets a request the client cancelled, so its stream ends without an answer.
    pub fn cancel(&self, id: &Id) {
        let mut st = self.lock();
        if let Some(p) = st.pending.remove(id) {
            if let Sink::Stream(n) = p.sink {
                st.log.answered(n);
            }
            drop(st);
            self.changed.send_replace(());
        }
    }

    /// Ends the session: every waiting request gets an error, streams end after what they hold.
    pub fn close(&self, reason: &str) {
        let mut st = self.lock();
        if st.closed.is_some() {
            return;
        }
        st.closed = Some(reason.to_owned());
        let pending: Vec<(Id, Pending)> = st.pending.drain().collect();
        for (id, p) in pending {
            let mut err = BridgeError::new(Reason::SessionClosed, true, reason).response(Some(&id));
            if let Some(ticket) = p.ticket {
                err = ticket.finish(err, &self.catalog);
            }
            match p.sink {
                Sink::Stream(n) => {
                    st.log.push(n, None, &err);
                    st.log.answered(n);
                }
                Sink::Json(tx) => {
                    let _ = tx.send(err);
                }
            }
        }
        drop(st);
        self.changed.send_replace(());
        if let Some(Link::Own(child)) = self.link.get() {
            child.stop();
        }
    }

    /// Starts reading the GET stream: returns the reader's generation and starting cursor.
    pub fn open_get(&self, last_seq: Option<u64>) -> (u64, u64) {
        let mut st = self.lock();
        st.get_opened = true;
        st.get_reader += 1;
        let cursor = last_seq.unwrap_or(st.get_cursor);
        (st.get_reader, cursor)
    }

    /// Appends the frames of `stream` after `cursor` to `out`. Returns the new cursor and
    /// whether the stream is over (nothing more will come after these frames).
    pub fn read(
        &self,
        stream: u64,
        generation: u64,
        cursor: u64,
        out: &mut Vec<u8>,
    ) -> (u64, bool) {
        let mut st = self.lock();
        if stream == GET_STREAM && generation != st.get_reader {
            return (cursor, true);
        }
        let cursor = st.log.take(stream, cursor, out);
        if stream == GET_STREAM {
            st.get_cursor = st.get_cursor.max(cursor);
        }
        let over = st.closed.is_some() || (stream != GET_STREAM && st.log.is_finished(stream));
        (cursor, over)
    }

    /// Puts a bridge-made message (a refusal) straight on the GET stream.
    pub fn push_get(&self, data: &[u8]) {
        self.lock().log.push(GET_STREAM, None, data);
        self.changed.send_replace(());
    }

    /// Whether `kind` is an `initialize` request.
    pub fn is_initialize(kind: &Kind) -> bool {
        matches!(kind, Kind::Request { method, .. } if method == "initialize")
    }
}

/// `raw` as one stdin line: shared, not copied, when it has no line break (the usual case).
fn one_line(raw: &Bytes) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', raw).is_none() {
        return raw.clone();
    }
    jsonrpc::fold_lines(raw)
}

#[cfg(test)]
mod tests;
