//! Everything that goes to the agent passes here. It remembers which of the agent's requests are
//! still waiting, so that each gets exactly one answer: the server's, or one error the bridge
//! makes, whichever comes first; anything later for the same id is dropped.

use crate::jsonrpc::{self, Id, Message};
use crate::stdio::Stdout;
use crate::wire::BridgeError;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Outbox {
    stdout: Stdout,
    /// Agent requests not answered yet, with their method (for logs and retry decisions).
    pending: Arc<Mutex<HashMap<Id, Box<str>>>>,
    /// Signalled whenever an answer (or a cancellation) leaves nothing waiting.
    idle: Arc<tokio::sync::Notify>,
}

impl Outbox {
    pub fn new(stdout: Stdout) -> Self {
        Outbox {
            stdout,
            pending: Arc::default(),
            idle: Arc::default(),
        }
    }

    /// Records the agent's requests in `msg` as waiting. Returns false (and records nothing) if one
    /// of the ids is already waiting: a second request with the same id would make answers ambiguous.
    pub fn register(&self, msg: &Message) -> Result<(), Id> {
        let mut pending = self.pending.lock().expect("pending lock");
        for id in msg.request_ids() {
            if pending.contains_key(id) {
                return Err(id.clone());
            }
        }
        for part in &msg.parts {
            if let jsonrpc::Kind::Request { id, method } = part {
                pending.insert(id.clone(), method.as_str().into());
            }
        }
        Ok(())
    }

    /// Removes `id` from the waiting requests; returns its method if it was waiting.
    fn take(&self, id: &Id) -> Option<Box<str>> {
        let mut pending = self.pending.lock().expect("pending lock");
        let method = pending.remove(id);
        if pending.is_empty() {
            self.idle.notify_waiters();
        }
        method
    }

    /// Waits until no request is waiting for an answer.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending.lock().expect("pending lock").is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// The agent cancelled `id`: the server will not answer, and neither will the bridge.
    pub fn forget(&self, id: &Id) {
        self.take(id);
    }

    pub fn is_pending(&self, id: &Id) -> bool {
        self.pending.lock().expect("pending lock").contains_key(id)
    }

    /// Ids still waiting.
    pub fn pending_ids(&self) -> Vec<Id> {
        self.pending
            .lock()
            .expect("pending lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Writes a message from the server. Responses to requests that were already answered (by a
    /// bridge error, or after the agent cancelled them) are dropped so no id is answered twice.
    /// Returns false once stdout is gone.
    pub async fn from_server(&self, msg: Message) -> bool {
        if msg.response_ids().next().is_some() {
            let mut known = false;
            for id in msg.response_ids() {
                known |= self.take(id).is_some();
            }
            let null_id = msg.response_ids().all(|id| id.as_json() == "null");
            if !known && !msg.batch && !null_id {
                tracing::debug!(
                    "dropping a response for an id that is not waiting (answered already or cancelled)"
                );
                return true;
            }
        }
        self.stdout.send(msg.raw).await
    }

    /// Writes a line the bridge made that answers no request (parse errors: `id: null`).
    pub async fn raw(&self, line: Bytes) -> bool {
        self.stdout.send(line).await
    }

    /// Writes `line` as the answer to `id`, unless it has been answered already.
    pub async fn reply(&self, id: &Id, line: Bytes) -> bool {
        if self.take(id).is_some() {
            return self.stdout.send(line).await;
        }
        true
    }

    /// Answers `id` with an error, unless it has been answered already.
    pub async fn fail(&self, id: &Id, failure: &BridgeError) -> bool {
        let waiting = self.take(id);
        if let Some(method) = waiting {
            tracing::debug!(%method, reason = failure.reason.as_str(), "answering a request with an error: {}", failure.message);
            return self.stdout.send(failure.named_response(Some(id))).await;
        }
        true
    }

    /// Answers every request in `msg` that is still waiting with an error.
    pub async fn fail_message(&self, msg: &Message, failure: &BridgeError) {
        for id in msg.request_ids() {
            self.fail(id, failure).await;
        }
    }

    /// Answers every waiting request with an error (the stream they were to come on is gone).
    pub async fn fail_all(&self, failure: &BridgeError) {
        for id in self.pending_ids() {
            self.fail(&id, failure).await;
        }
    }
}
