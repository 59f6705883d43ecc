//! Everything that goes to the agent passes here. It remembers which of the agent's requests are
//! still waiting, so that each gets exactly one answer: the server's, or one error the bridge
//! makes, whichever comes first; anything later for the same id is dropped.

use crate::jsonrpc::{self, Id, Message};
use crate::stdio::Stdout;
use crate::wire::BridgeError;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The way to the agent, shared by every transport (cheap to clone).
#[derive(Clone)]
pub struct Outbox {
    stdout: Stdout,
    /// Agent requests not answered yet, with their method (for logs and retry decisions).
    pending: Arc<Mutex<HashMap<Id, Box<str>>>>,
    /// Signalled whenever an answer (or a cancellation) leaves nothing waiting.
    idle: Arc<tokio::sync::Notify>,
}

impl Outbox {
    /// An outbox writing to `stdout`, with nothing waiting.
    pub fn new(stdout: Stdout) -> Self {
        Outbox {
            stdout,
            pending: Arc::default(),
            idle: Arc::default(),
        }
    }

    /// Records the agent's requests in `msg` as waiting. `Err` with the id (and nothing recorded) if
    /// one of the ids is already waiting: a second request with the same id would make answers
    /// ambiguous.
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

    /// Whether `id` still waits for its answer.
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

    /// Writes one message from the server, given as the bytes of one JSON-RPC message (or batch);
    /// anything else is dropped with a warning. Returns false once stdout is gone.
    pub async fn forward(&self, data: Bytes) -> bool {
        match jsonrpc::parse(data) {
            Ok(msg) => self.write_from_server(msg).await,
            Err(e) => {
                tracing::warn!("dropped a message from the server that is not JSON-RPC: {e}");
                true
            }
        }
    }

    /// Writes a message from the server. Responses to requests that were already answered (by a
    /// bridge error, or after the agent cancelled them) are dropped so no id is answered twice.
    /// Returns false once stdout is gone.
    async fn write_from_server(&self, msg: Message) -> bool {
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
        self.stdout.send(one_line(msg.raw)).await
    }

    /// Writes a line the bridge made that answers no request (parse errors: `id: null`).
    pub async fn raw(&self, line: Bytes) -> bool {
        self.stdout.send(one_line(line)).await
    }

    /// Writes `line` as the answer to `id`, unless it has been answered already.
    pub async fn reply(&self, id: &Id, line: Bytes) -> bool {
        if self.take(id).is_some() {
            return self.stdout.send(one_line(line)).await;
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

    /// `msg` could not be delivered: every request in it that is still waiting gets the error; a
    /// message without requests has nobody to tell, so the failure is logged.
    pub async fn fail_message(&self, msg: &Message, failure: &BridgeError) {
        if !msg.has_requests() {
            tracing::warn!(
                "could not deliver a {}: {}",
                msg.method().unwrap_or("message"),
                failure.message
            );
        }
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

/// The message as one stdout line: a body that spans lines (a pretty-printed error from any
/// status, JSON or SSE) is folded, one that does not passes as it is.
fn one_line(raw: Bytes) -> Bytes {
    match memchr::memchr2(b'\n', b'\r', &raw) {
        Some(_) => jsonrpc::fold_lines(&raw),
        None => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Reason;
    use tokio_util::sync::CancellationToken;

    /// An outbox whose stdout lines arrive on the returned channel.
    fn outbox() -> (Outbox, std::sync::mpsc::Receiver<Vec<u8>>) {
        struct Sink(std::sync::mpsc::Sender<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.send(b.to_vec()).ok();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (stdout, _thread) = Stdout::spawn_to(Sink(tx), CancellationToken::new());
        (Outbox::new(stdout), rx)
    }

    fn msg(text: &str) -> Message {
        jsonrpc::parse(Bytes::from(text.to_owned())).unwrap()
    }

    /// Closes the outbox and returns every line it wrote (waiting, bounded, for the writer to end).
    fn written(out: Outbox, rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Vec<String> {
        drop(out);
        let mut text = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => text.push_str(&String::from_utf8(chunk).unwrap()),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("the writer did not end: {e}"),
            }
        }
        text.lines().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn each_request_gets_exactly_one_answer() {
        let (out, rx) = outbox();
        out.register(&msg(r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#))
            .unwrap();
        let failure = BridgeError::new(Reason::Unreachable, false, "down");
        assert!(out.fail(&Id("1".into()), &failure).await);
        // The server's answer after the bridge's error is dropped, and so is a second error.
        assert!(
            out.forward(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{}}"#
            ))
            .await
        );
        assert!(out.fail(&Id("1".into()), &failure).await);
        out.idle().await;
        let written = written(out, rx);
        assert_eq!(written.len(), 1, "{written:?}");
        assert!(
            written[0].contains(r#""reason":"unreachable""#),
            "{written:?}"
        );
    }

    #[tokio::test]
    async fn the_first_answer_wins_and_late_ones_are_dropped() {
        let (out, rx) = outbox();
        out.register(&msg(r#"{"jsonrpc":"2.0","id":"x","method":"a"}"#))
            .unwrap();
        assert!(out.is_pending(&Id(r#""x""#.into())));
        let answer = br#"{"jsonrpc":"2.0","id":"x","result":{"n":1}}"#;
        assert!(out.forward(Bytes::from_static(answer)).await);
        assert!(
            out.forward(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":"x","result":{"n":2}}"#
            ))
            .await
        );
        let failure = BridgeError::new(Reason::StreamEnded, true, "late");
        out.fail_all(&failure).await;
        // Messages the server starts, and answers to unknown ids that are null, pass.
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#;
        assert!(out.forward(Bytes::from_static(note)).await);
        assert!(!out.is_pending(&Id(r#""x""#.into())));
        let written = written(out, rx);
        assert_eq!(
            written,
            [
                std::str::from_utf8(answer).unwrap(),
                std::str::from_utf8(note).unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn a_cancelled_request_is_answered_by_nobody() {
        let (out, rx) = outbox();
        out.register(&msg(r#"{"jsonrpc":"2.0","id":2,"method":"slow"}"#))
            .unwrap();
        out.register(&msg(r#"{"jsonrpc":"2.0","id":3,"method":"b"}"#))
            .unwrap();
        out.forget(&Id("2".into()));
        assert!(
            out.forward(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":2,"result":{}}"#
            ))
            .await
        );
        let failure = BridgeError::new(Reason::StreamDropped, true, "gone");
        out.fail_all(&failure).await;
        out.idle().await;
        let written = written(out, rx);
        assert_eq!(written.len(), 1, "{written:?}");
        assert!(
            written[0].starts_with(r#"{"jsonrpc":"2.0","id":3,"#),
            "{written:?}"
        );
    }

    #[tokio::test]
    async fn a_reused_id_is_refused_while_it_waits() {
        let (out, _rx) = outbox();
        let first = msg(r#"{"jsonrpc":"2.0","id":5,"method":"a"}"#);
        out.register(&first).unwrap();
        assert_eq!(out.register(&first), Err(Id("5".into())));
        out.forget(&Id("5".into()));
        assert!(out.register(&first).is_ok());
    }
}
