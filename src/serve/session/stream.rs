//! SSE response bodies. A body is a cursor over one stream of the session's event log: it sends
//! what the log holds after the cursor, then waits for more, so a cut connection loses nothing
//! that a resume cannot fetch again.

use crate::serve::app::App;
use crate::serve::session::{Session, Transport};
use axum::body::Body;
use bytes::Bytes;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Keeps the session attached (not idle) while a body exists; for an HTTP+SSE session, the
/// body's end ends the session.
struct Attached {
    session: Arc<Session>,
    app: Arc<App>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.session.detach();
        if self.session.transport == Transport::Sse {
            self.app
                .end(&self.session, "the client closed the SSE stream");
        }
    }
}

struct Reader {
    attached: Attached,
    stream: u64,
    generation: u64,
    cursor: u64,
    preamble: Option<Bytes>,
    rx: watch::Receiver<()>,
    shutdown: CancellationToken,
    keepalive: Option<Duration>,
    over: bool,
}

/// An SSE body reading `stream` of `session` after `cursor`. `preamble` goes first.
pub fn body(
    app: &Arc<App>,
    session: Arc<Session>,
    stream: u64,
    generation: u64,
    cursor: u64,
    preamble: Option<Bytes>,
) -> Body {
    chunks(reader(app, session, stream, generation, cursor, preamble))
}

fn reader(
    app: &Arc<App>,
    session: Arc<Session>,
    stream: u64,
    generation: u64,
    cursor: u64,
    preamble: Option<Bytes>,
) -> Reader {
    session.attach();
    Reader {
        rx: session.subscribe(),
        attached: Attached {
            session,
            app: app.clone(),
        },
        stream,
        generation,
        cursor,
        preamble,
        shutdown: app.shutdown.clone(),
        keepalive: app.cfg.keepalive,
        over: false,
    }
}

fn chunks(reader: Reader) -> Body {
    let chunks = futures_util::stream::unfold(reader, |mut r| async move {
        let chunk = r.next().await?;
        Some((Ok::<Bytes, Infallible>(chunk), r))
    });
    Body::from_stream(chunks)
}

/// How long a POST's answer stream waits for its first event before it sends its headers alone.
const FIRST_EVENT_WAIT: Duration = Duration::from_millis(10);

/// The answer stream of a POST. A fast answer (the usual case) arrives before the headers leave:
/// the response then goes out whole, headers and events in one write with a `Content-Length`;
/// otherwise the headers go after [`FIRST_EVENT_WAIT`] and the events follow as they come.
pub async fn answer(app: &Arc<App>, session: Arc<Session>, stream: u64) -> Body {
    let mut reader = reader(app, session, stream, 0, 0, None);
    // Cancel-safe: `next` reads from its cursor again after an interrupted wait.
    match tokio::time::timeout(FIRST_EVENT_WAIT, reader.next()).await {
        Ok(Some(first)) if reader.over => Body::from(first),
        Ok(Some(first)) => {
            reader.preamble = Some(first);
            chunks(reader)
        }
        Ok(None) => Body::empty(),
        Err(_) => chunks(reader),
    }
}

impl Reader {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(p) = self.preamble.take() {
            return Some(p);
        }
        loop {
            if self.over || self.shutdown.is_cancelled() {
                return None;
            }
            // Mark the current version seen before reading, so a push after the read wakes us.
            self.rx.borrow_and_update();
            let mut out = Vec::new();
            let session = &self.attached.session;
            let (cursor, over) = session.read(self.stream, self.generation, self.cursor, &mut out);
            self.cursor = cursor;
            self.over = over;
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
            if over {
                return None;
            }
            let wait = async {
                match self.keepalive {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            // All branches are cancel-safe: `changed` only marks a version, the others are timers.
            tokio::select! {
                changed = self.rx.changed() => if changed.is_err() { return None },
                _ = self.shutdown.cancelled() => return None,
                _ = wait => return Some(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }
}
