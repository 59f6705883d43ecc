//! The event stream that answers one stateless request: `event: message` frames for progress
//! (or a subscription's notifications), the final answer, then the end. No event ids: the
//! revision has no resumption. Keep-alive comments while idle. Dropping the body before the
//! answer (the client closed the connection) cancels the request at the child.

use crate::serve::app::App;
use crate::serve::stateless::child::{InFlight, Out};
use crate::sse;
use axum::body::Body;
use bytes::Bytes;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Reader {
    rx: mpsc::UnboundedReceiver<Out>,
    guard: InFlight,
    first: Option<Out>,
    shutdown: CancellationToken,
    keepalive: Option<Duration>,
    over: bool,
}

fn frame(out: &Out) -> Bytes {
    let mut buf = Vec::with_capacity(out.raw().len() + 24);
    sse::write_event(&mut buf, Some("message"), None, out.raw());
    Bytes::from(buf)
}

/// The body for request `guard`, reading what the child says from `rx`; `first` goes first.
pub fn body(
    app: &Arc<App>,
    rx: mpsc::UnboundedReceiver<Out>,
    guard: InFlight,
    first: Option<Out>,
) -> Body {
    let reader = Reader {
        rx,
        guard,
        first,
        shutdown: app.shutdown.clone(),
        keepalive: app.cfg.keepalive,
        over: false,
    };
    let chunks = futures_util::stream::unfold(reader, |mut r| async move {
        let chunk = r.next().await?;
        Some((Ok::<Bytes, Infallible>(chunk), r))
    });
    Body::from_stream(chunks)
}

impl Reader {
    async fn next(&mut self) -> Option<Bytes> {
        if self.over {
            return None;
        }
        let out = match self.first.take() {
            Some(out) => out,
            None => {
                let wait = async {
                    match self.keepalive {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                // All branches are cancel-safe: a message not yet received stays queued.
                tokio::select! {
                    m = self.rx.recv() => m?,
                    _ = self.shutdown.cancelled() => return None,
                    _ = wait => return Some(Bytes::from_static(b": ping\n\n")),
                }
            }
        };
        if let Out::Answer(_) = out {
            self.guard.disarm();
            self.over = true;
        }
        Some(frame(&out))
    }
}
