//! HTTP+SSE (spec 2024-11-05, `--transport sse`): one long GET stream whose first event names
//! the endpoint to POST messages to, and whose `message` events carry everything from the server.
//! A dropped stream loses the session: waiting requests get errors, and the bridge reconnects with
//! backoff and replays the agent's handshake on the new session.

use super::Shared;
use super::http::{self, Data};
use crate::jsonrpc::{self, Id};
use crate::wire::{BridgeError, Reason};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

#[derive(Clone, Debug)]
enum Endpoint {
    /// No usable stream yet (connecting, or replaying the handshake).
    Connecting,
    /// POST messages here.
    Ready(Url),
    /// The server named an endpoint the bridge will not use.
    Refused(String),
}

/// Why the URL could not be taken as an HTTP+SSE endpoint.
pub(crate) enum ProbeError {
    /// The URL answered, but not with an event stream.
    NotSse,
    /// The URL could not be reached, or its stream named no usable endpoint.
    Failed(BridgeError),
}

/// An HTTP+SSE session: the GET stream and the endpoint it named.
pub(crate) struct Sse {
    shared: Shared,
    /// Where to POST now; senders wait here while the stream (re)connects.
    endpoint: watch::Sender<Endpoint>,
    /// Stops the reader task.
    stop: CancellationToken,
    /// The handshake replay in flight on a new stream.
    replay: Mutex<Option<Replay>>,
}

struct Replay {
    /// The bridge's own id for the replayed `initialize`.
    id: Id,
    /// Sent once the replayed `initialize` is answered.
    initialized: Option<bytes::Bytes>,
    /// The new session's endpoint, opened to the agent after the handshake.
    url: Url,
}

impl Sse {
    /// Connects in the background (with `--transport sse`).
    pub fn start(shared: Shared) -> Arc<Self> {
        let this = Self::new(shared);
        let reader = this.clone();
        this.shared
            .tasks
            .spawn(async move { reader.read_loop(None).await });
        this
    }

    /// Tries the URL as an HTTP+SSE endpoint (auto detection); on success keeps the stream.
    pub async fn probe(shared: Shared) -> Result<Arc<Self>, ProbeError> {
        let deadline = shared.deadline();
        let resp = shared
            .send(deadline, || open_stream(&shared).into())
            .await
            .map_err(ProbeError::Failed)?;
        if !resp.status().is_success() || !http::is_event_stream(&resp) {
            return Err(ProbeError::NotSse);
        }
        let this = Self::new(shared);
        let reader = this.clone();
        this.shared
            .tasks
            .spawn(async move { reader.read_loop(Some(resp)).await });
        match this.ready(deadline).await {
            Ok(_) => Ok(this),
            Err(f) => {
                this.close();
                Err(ProbeError::Failed(f))
            }
        }
    }

    fn new(shared: Shared) -> Arc<Self> {
        let stop = shared.shutdown.child_token();
        Arc::new(Sse {
            shared,
            endpoint: watch::channel(Endpoint::Connecting).0,
            stop,
            replay: Mutex::default(),
        })
    }

    /// Stops the stream (the agent is leaving).
    pub fn close(&self) {
        self.stop.cancel();
    }

    /// Waits until the endpoint is known, at most until `deadline`.
    async fn ready(&self, deadline: tokio::time::Instant) -> Result<Url, BridgeError> {
        let mut rx = self.endpoint.subscribe();
        let wait = rx.wait_for(|e| !matches!(e, Endpoint::Connecting));
        let endpoint = match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(e)) => e.clone(),
            _ => {
                return Err(BridgeError::new(
                    Reason::Unreachable,
                    false,
                    format!(
                        "no SSE session with {} (the event stream is not connected)",
                        self.shared.target
                    ),
                ));
            }
        };
        match endpoint {
            Endpoint::Ready(url) => Ok(url),
            Endpoint::Refused(why) => Err(BridgeError::new(Reason::EndpointRefused, false, why)),
            Endpoint::Connecting => unreachable!("waited for another state"),
        }
    }

    /// Sends one message from the agent. Requests are POSTed on their own tasks, so that many
    /// callers are not held to one round trip at a time; `initialize`, notifications and
    /// responses go in order (the server must see `initialize` before `initialized`).
    pub async fn send(self: &Arc<Self>, msg: jsonrpc::Message) {
        if msg.has_requests() && msg.method() != Some("initialize") {
            let this = self.clone();
            let unsent = self.shared.unsent.clone();
            let ids = unsent.hold(&msg);
            self.shared
                .tasks
                // Boxed: tokio copies a task's future by value when it spawns and finishes it.
                .spawn(Box::pin(async move {
                    unsent.sending(ids, this.post(msg)).await
                }));
        } else {
            self.post(msg).await;
        }
    }

    /// POSTs one message to the session's endpoint; answers come on the event stream.
    async fn post(&self, msg: jsonrpc::Message) {
        let deadline = self.shared.deadline();
        let url = match self.ready(deadline).await {
            Ok(url) => url,
            Err(f) => return self.shared.out.fail_message(&msg, &f).await,
        };
        let post = || {
            let json = (CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let lean = self.shared.lean.as_ref();
            match lean.and_then(|l| l.post(&url, [json], msg.raw.clone())) {
                Some(req) => req,
                None => self
                    .shared
                    .client
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(msg.raw.clone())
                    .into(),
            }
        };
        match self.shared.send(deadline, post).await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                self.shared
                    .out
                    .fail_message(&msg, &http::status_failure(&resp, &self.shared.target))
                    .await
            }
            Err(f) => self.shared.out.fail_message(&msg, &f).await,
        }
    }

    async fn read_loop(self: Arc<Self>, mut first: Option<reqwest::Response>) {
        let mut attempt = 0u32;
        let mut reconnecting = false;
        while !self.stop.is_cancelled() {
            let resp = match first.take() {
                Some(resp) => resp,
                None => {
                    // Cancel-safe: an abandoned GET is dropped.
                    let authorized = tokio::select! {
                        _ = self.stop.cancelled() => return,
                        a = self.shared.authorize(open_stream(&self.shared)) => a,
                    };
                    let (req, used) = match authorized {
                        Ok(pair) => pair,
                        Err(f) => {
                            tracing::warn!("SSE stream: {}", f.message);
                            self.shared.out.fail_all(&f).await;
                            attempt += 1;
                            self.pause(attempt + 4).await;
                            continue;
                        }
                    };
                    let sent = tokio::select! {
                        _ = self.stop.cancelled() => return,
                        r = req.send() => r,
                    };
                    match sent {
                        Ok(resp) if resp.status().is_success() && http::is_event_stream(&resp) => {
                            resp
                        }
                        Ok(resp) => {
                            self.shared.refused(&resp, &used).await;
                            tracing::warn!(status = %resp.status(), "the SSE endpoint refused the stream; retrying");
                            attempt += 1;
                            self.pause(attempt).await;
                            continue;
                        }
                        Err(e) => {
                            self.shared.link.down(&self.shared.target, &e);
                            attempt += 1;
                            self.pause(attempt).await;
                            continue;
                        }
                    }
                }
            };
            self.shared.link.up(&self.shared.target);
            if self.read_stream(resp, reconnecting).await {
                attempt = 0;
            }
            if self.stop.is_cancelled() {
                return;
            }
            if matches!(*self.endpoint.borrow(), Endpoint::Refused(_)) {
                return;
            }
            self.endpoint.send_replace(Endpoint::Connecting);
            tracing::warn!(
                "the SSE stream from {} dropped: reconnecting",
                self.shared.target
            );
            let lost = BridgeError::new(
                Reason::StreamDropped,
                true,
                "the SSE stream to the server dropped before the answer came",
            );
            self.shared.out.fail_all(&lost).await;
            reconnecting = true;
            attempt += 1;
            self.pause(attempt).await;
        }
    }

    async fn pause(&self, attempt: u32) {
        let delay = http::backoff(attempt, Duration::from_secs(10));
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }

    /// Reads one stream to its end. Returns whether an endpoint was received.
    async fn read_stream(&self, resp: reqwest::Response, reconnecting: bool) -> bool {
        let mut events = http::EventStream::new(resp, self.shared.config.max_message_size);
        let mut got_endpoint = false;
        loop {
            // Cancel-safe: EventStream::next_message keeps what it has not returned.
            let data = tokio::select! {
                _ = self.stop.cancelled() => return got_endpoint,
                data = events.next_message() => data,
            };
            match data {
                None => return got_endpoint,
                Some(Data::Endpoint(url)) => {
                    got_endpoint = true;
                    if !self.on_endpoint(&url, reconnecting).await {
                        // The replayed handshake could not be sent: a new stream, a new try.
                        return false;
                    }
                    if matches!(*self.endpoint.borrow(), Endpoint::Refused(_)) {
                        return got_endpoint;
                    }
                }
                Some(Data::Message(data)) => {
                    if self.is_replay_answer(&data).await {
                        continue;
                    }
                    if !self.shared.out.forward(data).await {
                        self.stop.cancel();
                        return got_endpoint;
                    }
                }
            }
        }
    }

    /// Takes the endpoint the server named. Returns false when the stream must be dropped and
    /// opened again (replaying the handshake on it failed).
    async fn on_endpoint(&self, data: &[u8], reconnecting: bool) -> bool {
        let text = String::from_utf8_lossy(data);
        let url = match self.shared.config.url.join(text.trim()) {
            Ok(url) if url.origin() == self.shared.config.url.origin() => url,
            Ok(url) => {
                let why = format!(
                    "refusing the server's message endpoint {}: it is not on the same origin as {}",
                    url.origin().ascii_serialization(),
                    self.shared.config.url.origin().ascii_serialization()
                );
                tracing::error!("{why}");
                self.endpoint.send_replace(Endpoint::Refused(why.clone()));
                self.shared
                    .out
                    .fail_all(&BridgeError::new(Reason::EndpointRefused, false, why))
                    .await;
                return true;
            }
            Err(e) => {
                tracing::warn!("ignoring an endpoint event that is not a URL: {e}");
                return true;
            }
        };
        tracing::debug!(endpoint = %url, "SSE session endpoint");
        if reconnecting {
            let bridge_id = self.shared.bridge_id();
            if let Some((init, initialized)) = self.shared.replay(&bridge_id) {
                tracing::info!("re-initializing the new SSE session");
                // The endpoint opens to the agent once the replayed initialize is answered.
                *self.replay.lock().expect("replay lock") = Some(Replay {
                    id: Id(bridge_id.into()),
                    initialized,
                    url: url.clone(),
                });
                if !self.post_raw(&url, init).await {
                    self.replay.lock().expect("replay lock").take();
                    return false;
                }
                return true;
            }
        }
        self.endpoint.send_replace(Endpoint::Ready(url));
        true
    }

    /// Whether `data` answers the replayed `initialize`; if so, sends the cached
    /// `notifications/initialized` and opens the endpoint to the agent.
    async fn is_replay_answer(&self, data: &bytes::Bytes) -> bool {
        let done = {
            let mut replay = self.replay.lock().expect("replay lock");
            let answers = replay.as_ref().is_some_and(|r| {
                jsonrpc::parse(data.clone()).is_ok_and(|m| m.response_ids().any(|id| *id == r.id))
            });
            if !answers {
                return false;
            }
            replay.take().expect("checked above")
        };
        if let Some(note) = done.initialized {
            self.post_raw(&done.url, note).await;
        }
        tracing::info!("SSE session re-established");
        self.endpoint.send_replace(Endpoint::Ready(done.url));
        true
    }

    /// POSTs a replayed handshake message; returns whether the server took it.
    async fn post_raw(&self, url: &Url, body: bytes::Bytes) -> bool {
        let req = self
            .shared
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let req = match self.shared.authorize(req).await {
            Ok((req, _)) => req,
            Err(f) => {
                tracing::warn!("replaying the handshake failed: {}", f.message);
                return false;
            }
        };
        let post = req.send();
        // Bounded: a server that never answers must not hold the event stream (and every
        // request waiting for the endpoint) for ever.
        let resp = tokio::select! {
            _ = self.stop.cancelled() => return false,
            r = tokio::time::timeout(self.shared.config.connect_timeout.max(Duration::from_secs(1)), post) => r,
        };
        match resp {
            Ok(Ok(r)) if r.status().is_success() => true,
            Ok(Ok(r)) => {
                tracing::warn!(status = %r.status(), "the server refused a replayed handshake message");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!("replaying the handshake failed: {}", http::error_chain(&e));
                false
            }
            Err(_) => {
                tracing::warn!("replaying the handshake timed out");
                false
            }
        }
    }
}

fn open_stream(shared: &Shared) -> reqwest::RequestBuilder {
    shared
        .client
        .get(shared.config.url.clone())
        .header(ACCEPT, "text/event-stream")
}
