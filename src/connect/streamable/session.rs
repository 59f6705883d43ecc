//! The life of a Streamable HTTP session beyond single POSTs: the GET stream for messages the
//! server starts, replaying the handshake when the server has lost the session, and the DELETE
//! at the end.

use super::{Session, Streamable, Watch, with_session};
use crate::connect::http::{self, Cursor};
use crate::jsonrpc::{self, Id};
use crate::wire::{BridgeError, LAST_EVENT_ID, Reason, SESSION_ID};
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Streamable {
    /// Opens (or reopens) the GET stream for messages the server starts on its own.
    pub(super) fn start_get_stream(self: &Arc<Self>) {
        let token = self.shared.shutdown.child_token();
        if let Some(old) = self
            .get_stream
            .lock()
            .expect("get lock")
            .replace(token.clone())
        {
            old.cancel();
        }
        let this = self.clone();
        let generation = self.session().generation;
        self.shared
            .tasks
            .spawn(async move { this.get_loop(token, generation).await });
    }

    async fn get_loop(self: Arc<Self>, stop: CancellationToken, generation: u64) {
        let mut cursor = Cursor::default();
        let mut attempt = 0u32;
        while !stop.is_cancelled() {
            let sess = self.session();
            if sess.generation != generation {
                return;
            }
            let mut req = with_session(
                self.shared.client.get(self.shared.config.url.clone()),
                &sess,
            )
            .header(ACCEPT, "text/event-stream");
            if let Some(last) = &cursor.last_id {
                req = req.header(LAST_EVENT_ID, last.as_str());
            }
            // Cancel-safe: an abandoned GET is simply dropped.
            let authorized = tokio::select! {
                _ = stop.cancelled() => return,
                authorized = self.shared.authorize(req) => authorized,
            };
            let (req, used) = match authorized {
                Ok(pair) => pair,
                Err(f) => {
                    tracing::warn!("GET stream: {}", f.message);
                    attempt += 1;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(http::backoff(attempt + 4, Duration::from_secs(30))) => {}
                    }
                    continue;
                }
            };
            let resp = tokio::select! {
                _ = stop.cancelled() => return,
                resp = req.send() => resp,
            };
            let delay = match resp {
                Err(e) => {
                    if e.is_connect() {
                        self.shared.link.down(&self.shared.target, &e);
                    } else {
                        tracing::debug!("GET stream request failed: {}", http::error_chain(&e));
                    }
                    attempt += 1;
                    http::backoff(attempt, Duration::from_secs(5))
                }
                Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!("the server offers no GET stream (405)");
                    return;
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND && sess.id.is_some() => {
                    if let Err(f) = self.reinit(generation).await {
                        tracing::warn!("re-initializing failed: {}", f.message);
                    }
                    return;
                }
                Ok(resp) if resp.status().is_success() && http::is_event_stream(&resp) => {
                    self.shared.link.up(&self.shared.target);
                    tracing::debug!("GET stream open");
                    self.get_open.store(true, Ordering::Relaxed);
                    let progressed = self.read_events(resp, &mut cursor, None, Some(&stop)).await;
                    self.get_open.store(false, Ordering::Relaxed);
                    if progressed {
                        attempt = 0;
                    } else {
                        attempt += 1;
                    }
                    cursor
                        .retry
                        .unwrap_or_else(|| http::backoff(attempt, Duration::from_secs(5)))
                }
                Ok(resp) => {
                    attempt += 1;
                    self.shared.refused(&resp, &used).await;
                    tracing::debug!(status = %resp.status(), content_type = ?http::content_type(&resp), "GET stream refused; will retry");
                    http::backoff(attempt + 4, Duration::from_secs(30))
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// The server lost the session (404): replay the agent's handshake under the bridge's own id,
    /// keep its answer from the agent, and carry on under the new session.
    pub(super) async fn reinit(
        self: &Arc<Self>,
        failed_generation: u64,
    ) -> Result<(), BridgeError> {
        let _guard = self.reinit.lock().await;
        if self.session().generation != failed_generation {
            return Ok(()); // another task has done it already
        }
        let bridge_id = self.shared.bridge_id();
        let Some((init, initialized)) = self.shared.replay(&bridge_id) else {
            return Err(BridgeError::new(
                Reason::SessionLost,
                false,
                "the server lost the session and there is no initialize to replay",
            ));
        };
        tracing::warn!("the server no longer knows the session (404): re-initializing");
        let init = jsonrpc::parse(init)
            .map_err(|e| BridgeError::new(Reason::SessionLost, false, e.to_string()))?;
        let resp = self.send_post(&init, &Session::default()).await?;
        if !resp.status().is_success() {
            let mut f = http::status_failure(&resp, &self.shared.target);
            f.reason = Reason::ReinitializeFailed;
            return Err(f);
        }
        // The new session is published only once its handshake is complete: until then every
        // other request still holds the old one, gets 404, and waits here for the lock.
        let mut fresh = Session {
            id: resp.headers().get(SESSION_ID).cloned(),
            version: None,
            generation: self.session().generation + 1,
        };
        let id = Id(bridge_id.into());
        let mut watch = Watch {
            id: &id,
            found: None,
        };
        let read = if http::is_event_stream(&resp) {
            self.read_stream(resp, &[], Some(&mut watch)).await
        } else {
            self.read_json(resp, Some(&mut watch)).await
        };
        read?;
        let Some(answer) = watch.found else {
            return Err(BridgeError::new(
                Reason::ReinitializeFailed,
                false,
                "the server did not answer the replayed initialize",
            ));
        };
        fresh.version = crate::wire::initialize_version(&answer)
            .and_then(|v| reqwest::header::HeaderValue::try_from(v).ok());
        if let Some(note) = initialized.and_then(|n| jsonrpc::parse(n).ok()) {
            let resp = self.send_post(&note, &fresh).await?;
            if !resp.status().is_success() {
                tracing::warn!(status = %resp.status(), "the server refused the replayed notifications/initialized");
            }
        }
        *self.session.lock().expect("session lock") = fresh;
        tracing::info!("session re-established");
        self.start_get_stream();
        Ok(())
    }

    /// Ends the session: stop the GET stream and DELETE the session (briefly: the agent is leaving).
    pub async fn close(&self) {
        if let Some(token) = self.get_stream.lock().expect("get lock").take() {
            token.cancel();
        }
        let sess = self.session();
        if sess.id.is_none() {
            return;
        }
        let req = with_session(
            self.shared.client.delete(self.shared.config.url.clone()),
            &sess,
        );
        let authorized =
            tokio::time::timeout(Duration::from_millis(400), self.shared.authorize(req)).await;
        let Ok(Ok((req, _))) = authorized else {
            // Without a token the DELETE would only be refused: the session expires instead.
            return tracing::debug!("no access token for the DELETE of the session");
        };
        match tokio::time::timeout(Duration::from_millis(400), req.send()).await {
            Ok(Ok(resp)) => tracing::debug!(status = %resp.status(), "session deleted"),
            Ok(Err(e)) => {
                tracing::debug!("DELETE of the session failed: {}", http::error_chain(&e))
            }
            Err(_) => tracing::debug!("DELETE of the session timed out"),
        }
    }
}
