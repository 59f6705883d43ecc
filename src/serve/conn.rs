//! The accept loop of one listener: at most `--max-connections` open connections (further
//! clients wait in the kernel's backlog, costing serve nothing), each served by hyper's HTTP/1.1
//! with `--header-timeout` for a request's headers (and for an idle kept-alive connection's next
//! request), the peer given to handlers as `ConnectInfo`, and a graceful end on shutdown.

use crate::net::{Listener, Peer};
use crate::serve::Config;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The per-listener connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most open connections.
    pub max_connections: usize,
    /// Time to receive a request's headers.
    pub header_timeout: Duration,
}

impl Limits {
    /// The limits `cfg` sets.
    pub fn of(cfg: &Config) -> Limits {
        Limits {
            max_connections: cfg.max_connections,
            header_timeout: cfg.header_timeout,
        }
    }
}

/// Accepts and serves connections on `listener` until `stop` is cancelled, then lets open
/// connections finish their current request.
pub async fn serve(
    mut listener: Listener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let conns = TaskTracker::new();
    let mut warned = false;
    loop {
        // A free slot first: past the cap, connections stay unaccepted in the backlog.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !warned {
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection limit reached (--max-connections); new clients wait"
                    );
                    warned = true;
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = stop.cancelled() => break,
                }
            }
        };
        let (io, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            _ = stop.cancelled() => break,
        };
        let router = router.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            serve_one(io, peer, router, limits, stop).await;
        });
    }
    drop(listener);
    conns.close();
    conns.wait().await;
}

async fn serve_one(
    io: crate::net::Stream,
    peer: Peer,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let inner = TowerToHyperService::new(router);
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer.clone()));
        inner.call(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
