//! Streamable HTTP (spec 2025-03-26 to 2025-11-25): a POST per message, JSON or SSE answers,
//! the session id and protocol version headers, the optional GET stream, resuming broken streams
//! with `Last-Event-ID`, and replaying the handshake when the server has lost the session.

use super::Shared;
use super::http::{self, Cursor, Data, Outgoing};
use crate::jsonrpc::{self, Id, Kind, Message};
use crate::wire::{BridgeError, LAST_EVENT_ID, PROTOCOL_VERSION, Reason, SESSION_ID};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod session;

/// How many times in a row a broken stream is resumed without receiving anything new.
const MAX_RESUMES: u32 = 5;

/// The session headers as names (parsed once, not per request).
const SESSION_ID_NAME: HeaderName = HeaderName::from_static(SESSION_ID);
const PROTOCOL_VERSION_NAME: HeaderName = HeaderName::from_static(PROTOCOL_VERSION);

#[derive(Clone, Default)]
struct Session {
    id: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// Bumped on every new session, so that work started under an old one can tell.
    generation: u64,
}

/// A Streamable HTTP session with the remote.
pub(crate) struct Streamable {
    shared: Shared,
    /// The session id and negotiated version, sent with every request.
    session: Mutex<Session>,
    /// Held while re-initializing, so concurrent 404s replay the handshake once.
    reinit: tokio::sync::Mutex<()>,
    /// Stops the current GET stream.
    get_stream: Mutex<Option<CancellationToken>>,
    /// Whether a GET stream is open now (answers to accepted-only requests can come there).
    get_open: AtomicBool,
}

/// What the first POST said about the server.
pub(crate) enum First {
    /// The server speaks Streamable HTTP; it answered with this status.
    Streamable(StatusCode),
    /// 400, 404 or 405 (the status): try HTTP+SSE with this message.
    NotStreamable(Message, StatusCode),
    /// Nothing answered; the message has had its error.
    Unreachable,
}

enum Outcome {
    Done,
    SessionGone,
}

/// A response to look out for on a stream: the bridge's own requests (kept back from the agent)
/// and the agent's `initialize` (its protocol version is needed).
struct Watch<'a> {
    id: &'a Id,
    found: Option<Bytes>,
}

impl Streamable {
    /// No session yet: the first `initialize` answered opens one.
    pub fn new(shared: Shared) -> Arc<Self> {
        Arc::new(Streamable {
            shared,
            session: Mutex::default(),
            reinit: tokio::sync::Mutex::new(()),
            get_stream: Mutex::default(),
            get_open: AtomicBool::new(false),
        })
    }

    fn session(&self) -> Session {
        self.session.lock().expect("session lock").clone()
    }

    /// Sends one message from the agent. Requests run as their own tasks so a slow one never
    /// holds up the next; `initialize`, notifications and responses are sent in order.
    pub async fn send(self: &Arc<Self>, msg: Message) {
        let initialized = msg.method() == Some("notifications/initialized");
        if msg.has_requests() && msg.method() != Some("initialize") {
            let this = self.clone();
            let unsent = self.shared.unsent.clone();
            let ids = unsent.hold(&msg);
            self.shared
                .tasks
                // Boxed: the delivery's state machine is large, and tokio copies a task's future
                // by value when it spawns and finishes it (callgrind: most of a small call).
                .spawn(Box::pin(async move {
                    unsent.sending(ids, this.deliver(msg)).await
                }));
        } else {
            self.deliver(msg).await;
        }
        if initialized {
            self.start_get_stream();
        }
    }

    /// The first message of an undecided connection (normally `initialize`).
    pub async fn send_first(self: &Arc<Self>, msg: Message) -> First {
        let sess = self.session();
        let resp = match self.send_post(&msg, &sess).await {
            Ok(resp) => resp,
            Err(f) => {
                self.shared.out.fail_message(&msg, &f).await;
                return First::Unreachable;
            }
        };
        if matches!(resp.status().as_u16(), 400 | 404 | 405) {
            let status = resp.status();
            let body = http::read_body(resp, 64 * 1024).await.unwrap_or_default();
            if let Some(err) = super::stateless::stateless_refusal(status, &body) {
                // A 2026-07-28-only server: falling back to HTTP+SSE would be wrong.
                let mut f = BridgeError::new(
                    Reason::EraMismatch,
                    false,
                    format!(
                        "the remote MCP server speaks only the stateless 2026-07-28 revision; this agent uses the \
                         initialize handshake of an earlier one (server said: {})",
                        err.get("message").and_then(|m| m.as_str()).unwrap_or("?")
                    ),
                );
                f.http_status = Some(status.as_u16());
                f.remote_error = Some(err);
                self.shared.out.fail_message(&msg, &f).await;
                return First::Unreachable;
            }
            return First::NotStreamable(msg, status);
        }
        let initialized = msg.method() == Some("notifications/initialized");
        let status = resp.status();
        if let Outcome::SessionGone = self.answer(&msg, resp, &sess).await {
            unreachable!("no session exists before the first message");
        }
        if initialized {
            self.start_get_stream();
        }
        First::Streamable(status)
    }

    /// POSTs `msg` and carries its answer back, re-initializing once if the session is gone.
    async fn deliver(self: &Arc<Self>, msg: Message) {
        let mut retried = false;
        loop {
            let sess = self.session();
            let resp = match self.send_post(&msg, &sess).await {
                Ok(resp) => resp,
                Err(f) => return self.shared.out.fail_message(&msg, &f).await,
            };
            match self.answer(&msg, resp, &sess).await {
                Outcome::Done => return,
                Outcome::SessionGone if !retried => {
                    retried = true;
                    if let Err(f) = self.reinit(sess.generation).await {
                        return self.shared.out.fail_message(&msg, &f).await;
                    }
                    if msg.method() == Some("notifications/initialized") {
                        return; // the replayed handshake has sent it already
                    }
                }
                Outcome::SessionGone => {
                    let f = BridgeError::new(
                        Reason::SessionLost,
                        false,
                        "the server lost the session again right after re-initializing",
                    );
                    return self.shared.out.fail_message(&msg, &f).await;
                }
            }
        }
    }

    /// POSTs `msg`, waiting up to the connect timeout for an unreachable server.
    async fn send_post(
        &self,
        msg: &Message,
        sess: &Session,
    ) -> Result<reqwest::Response, BridgeError> {
        self.shared
            .send(self.shared.deadline(), || self.post(msg, sess))
            .await
    }

    fn post(&self, msg: &Message, sess: &Session) -> Outgoing {
        // A new `initialize` starts a new session; it must not carry the old one.
        let session = msg.method() != Some("initialize");
        if let Some(lean) = &self.shared.lean {
            let id = sess
                .id
                .clone()
                .filter(|_| session)
                .map(|v| (SESSION_ID_NAME, v));
            let version = sess.version.clone().filter(|_| session);
            let extra = [
                Some((
                    ACCEPT,
                    HeaderValue::from_static("application/json, text/event-stream"),
                )),
                Some((CONTENT_TYPE, HeaderValue::from_static("application/json"))),
                id,
                version.map(|v| (PROTOCOL_VERSION_NAME, v)),
            ];
            let url = &self.shared.config.url;
            if let Some(req) = lean.post(url, extra.into_iter().flatten(), msg.raw.clone()) {
                return req;
            }
        }
        let mut req = self
            .shared
            .client
            .post(self.shared.config.url.clone())
            .header(
                ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            )
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(msg.raw.clone());
        if session {
            req = with_session(req, sess);
        }
        req.into()
    }

    /// Handles the HTTP answer to a POSTed message.
    async fn answer(&self, msg: &Message, resp: reqwest::Response, sess: &Session) -> Outcome {
        let status = resp.status();
        let is_init = msg.method() == Some("initialize");
        if status.is_success() {
            self.accepted(msg, resp, is_init).await;
        } else if status == StatusCode::NOT_FOUND && sess.id.is_some() && !is_init {
            return Outcome::SessionGone;
        } else {
            self.refused(msg, resp).await;
        }
        Outcome::Done
    }

    /// A 2xx: carries the answers to the agent. An `initialize` answer opens the session, and
    /// its protocol version is kept before the agent sees it.
    async fn accepted(&self, msg: &Message, resp: reqwest::Response, is_init: bool) {
        if is_init {
            self.start_session(&resp);
        }
        let init_id = match msg.kind() {
            Kind::Request { id, .. } if is_init => Some(id.clone()),
            _ => None,
        };
        let mut watch = init_id.as_ref().map(|id| Watch { id, found: None });
        let result = self.read_answers(msg, resp, watch.as_mut()).await;
        if let Some(found) = watch.and_then(|w| w.found) {
            self.note_version(&found);
            self.shared.out.forward(found).await;
        }
        if let Err(f) = result {
            self.shared.out.fail_message(msg, &f).await;
        }
    }

    /// Reads the answers to `msg` from a 2xx response in whichever form it came: an event
    /// stream, a JSON body, or nothing (202, when they are to come on the GET stream).
    async fn read_answers(
        &self,
        msg: &Message,
        resp: reqwest::Response,
        watch: Option<&mut Watch<'_>>,
    ) -> Result<(), BridgeError> {
        if http::is_event_stream(&resp) {
            // The watched answer (initialize's) is waited for through `watch` instead.
            let wanted: Vec<Id> = match watch {
                Some(_) => Vec::new(),
                None => msg.request_ids().cloned().collect(),
            };
            return self.read_stream(resp, &wanted, watch).await;
        }
        if msg.has_requests() && resp.status() != StatusCode::ACCEPTED {
            let watching = watch.is_some();
            self.read_json(resp, watch).await?;
            if !watching && msg.request_ids().any(|id| self.shared.out.is_pending(id)) {
                return Err(BridgeError::new(
                    Reason::NoAnswer,
                    true,
                    "the server's JSON reply did not answer the request",
                ));
            }
            return Ok(());
        }
        if msg.has_requests() && !self.get_open.load(Ordering::Relaxed) {
            // A request must be answered on its own POST; a server that only accepts it
            // could answer on the GET stream, but there is none: the answer cannot come.
            return Err(BridgeError::new(
                Reason::NoAnswer,
                true,
                "the server accepted the request (202) but there is no stream to answer on",
            ));
        }
        // 202 for notifications and responses; answers to requests, if any, come on the GET
        // stream.
        Ok(())
    }

    /// A refusal: the server's own JSON-RPC error, where it sent one, then the bridge's.
    async fn refused(&self, msg: &Message, resp: reqwest::Response) {
        let failure = http::status_failure(&resp, &self.shared.target);
        if let Ok(body) = http::read_body(resp, 64 * 1024).await
            && jsonrpc::parse(body.clone()).is_ok_and(|m| m.response_ids().next().is_some())
        {
            self.shared.out.forward(body).await;
        }
        self.shared.out.fail_message(msg, &failure).await;
    }

    fn start_session(&self, resp: &reqwest::Response) {
        let mut sess = self.session.lock().expect("session lock");
        let id = resp.headers().get(SESSION_ID).cloned();
        if id.is_some() || sess.id.is_some() {
            sess.generation += 1;
        }
        sess.id = id;
        sess.version = None;
    }

    /// Keeps the protocol version from an `initialize` answer for the `MCP-Protocol-Version` header.
    fn note_version(&self, answer: &[u8]) {
        let version =
            crate::wire::initialize_version(answer).and_then(|v| HeaderValue::try_from(v).ok());
        if let Some(v) = &version {
            tracing::debug!(version = ?v, "negotiated protocol version");
        }
        self.session.lock().expect("session lock").version = version;
    }

    async fn read_json(
        &self,
        resp: reqwest::Response,
        watch: Option<&mut Watch<'_>>,
    ) -> Result<(), BridgeError> {
        let body = http::read_body(resp, self.shared.config.max_message_size)
            .await
            .map_err(|e| BridgeError::new(Reason::BadResponse, true, e))?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            self.deliver_data(jsonrpc::fold_lines(&body), watch).await;
        }
        Ok(())
    }

    /// Forwards one message from the server (on one line), unless it is the watched answer.
    async fn deliver_data(&self, data: Bytes, watch: Option<&mut Watch<'_>>) -> bool {
        if let Some(w) = watch
            && is_response_to(&data, w.id)
        {
            w.found = Some(data);
            return true;
        }
        self.shared.out.forward(data).await
    }

    /// Reads an SSE answer until every request in `wanted` (and the watched one) is answered,
    /// resuming with GET + `Last-Event-ID` if the stream ends early.
    async fn read_stream(
        &self,
        mut resp: reqwest::Response,
        wanted: &[Id],
        mut watch: Option<&mut Watch<'_>>,
    ) -> Result<(), BridgeError> {
        let mut cursor = Cursor::default();
        let mut resumes = 0;
        loop {
            let progressed = self
                .read_events(resp, &mut cursor, watch.as_deref_mut(), None)
                .await;
            let answered = wanted.iter().all(|id| !self.shared.out.is_pending(id))
                && watch.as_ref().is_none_or(|w| w.found.is_some());
            if answered || self.shared.shutdown.is_cancelled() {
                return Ok(());
            }
            let Some(last) = cursor.last_id.clone() else {
                return Err(BridgeError::new(
                    Reason::StreamEnded,
                    true,
                    "the server ended the response stream before the answer",
                ));
            };
            resumes = if progressed { 1 } else { resumes + 1 };
            if resumes > MAX_RESUMES {
                return Err(BridgeError::new(
                    Reason::StreamEnded,
                    true,
                    "the response stream broke and could not be resumed",
                ));
            }
            let delay = cursor
                .retry
                .unwrap_or_else(|| http::backoff(resumes, Duration::from_secs(2)));
            tracing::debug!(?delay, last_event_id = %last, "resuming a response stream");
            // Cancel-safe: only a wait. Shutdown ends it at once.
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => {
                    return Err(BridgeError::new(Reason::StreamEnded, true, "the bridge is shutting down"));
                }
                _ = tokio::time::sleep(delay) => {}
            }
            let sess = self.session();
            let get = || {
                with_session(
                    self.shared.client.get(self.shared.config.url.clone()),
                    &sess,
                )
                .header(ACCEPT, "text/event-stream")
                .header(LAST_EVENT_ID, last.as_str())
                .into()
            };
            resp = self.shared.send(self.shared.deadline(), get).await?;
            if !resp.status().is_success() || !http::is_event_stream(&resp) {
                let mut f = http::status_failure(&resp, &self.shared.target);
                f.reason = Reason::ResumeFailed;
                f.may_have_run = Some(true);
                f.message = format!("resuming the response stream failed: {}", f.message);
                return Err(f);
            }
        }
    }

    /// Reads events until the stream ends or breaks, forwarding each message. Returns whether
    /// any event arrived.
    async fn read_events(
        &self,
        resp: reqwest::Response,
        cursor: &mut Cursor,
        mut watch: Option<&mut Watch<'_>>,
        stop: Option<&CancellationToken>,
    ) -> bool {
        let max = self.shared.config.max_message_size;
        let mut events = http::EventStream::resuming(resp, max, std::mem::take(cursor));
        let never = CancellationToken::new();
        let stop = stop.unwrap_or(&never);
        loop {
            // Every branch is cancel-safe: EventStream::next_message keeps what it has not returned.
            let data = tokio::select! {
                _ = self.shared.shutdown.cancelled() => None,
                _ = stop.cancelled() => None,
                data = events.next_message() => data,
            };
            let more = match data {
                Some(Data::Message(data)) => self.deliver_data(data, watch.as_deref_mut()).await,
                Some(Data::Endpoint(_)) => true,
                None => false,
            };
            if !more {
                break;
            }
        }
        *cursor = events.cursor().clone();
        events.seen_any()
    }
}

fn with_session(mut req: reqwest::RequestBuilder, sess: &Session) -> reqwest::RequestBuilder {
    if let Some(id) = &sess.id {
        req = req.header(SESSION_ID, id.clone());
    }
    if let Some(v) = &sess.version {
        req = req.header(PROTOCOL_VERSION, v.clone());
    }
    req
}

fn is_response_to(data: &Bytes, id: &Id) -> bool {
    jsonrpc::parse(data.clone()).is_ok_and(|m| m.response_ids().any(|r| r == id))
}
