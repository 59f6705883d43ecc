//! The "child" of a remote server: `connect`'s relay run in-process over a pipe, so a session
//! of a `"url"` entry in the gateway file behaves like one of a stdio server (lines in, lines
//! out, stopped in order) while the remote's headers stay on the host.

use crate::serve::child::{Child, TooLong, read_stdout, write_stdin};
use crate::serve::config::Config;
use crate::stdio::Stdio;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Bytes buffered in each direction of the pipe between the session and the relay.
const PIPE: usize = 256 * 1024;

/// Starts a relay to `remote`; `on_line` and `on_exit` are those of [`Child::spawn`].
pub fn spawn(
    remote: &Arc<crate::connect::Config>,
    cfg: &Config,
    tasks: &TaskTracker,
    on_line: impl FnMut(Result<Bytes, TooLong>) + Send + 'static,
    on_exit: impl FnOnce(String) + Send + 'static,
) -> Child {
    let (ours, theirs) = tokio::io::duplex(PIPE);
    let (from_relay, to_relay) = tokio::io::split(ours);
    let (relay_in, relay_out) = tokio::io::split(theirs);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stop = CancellationToken::new();
    let exited = CancellationToken::new();
    let span = tracing::Span::current();
    tracing::info!(
        remote = %remote.url.origin().ascii_serialization(),
        "relay started"
    );

    tasks.spawn(write_stdin(to_relay, rx, stop.clone()).instrument(span.clone()));
    let reader = tasks
        .spawn(read_stdout(from_relay, cfg.max_message_size, on_line).instrument(span.clone()));
    let config = (**remote).clone();
    let grace = cfg.stop_timeout;
    let (stop2, exited2) = (stop.clone(), exited.clone());
    tasks.spawn(
        async move {
            let cancel = CancellationToken::new();
            let run = crate::connect::run(config, Stdio::pipe(relay_in, relay_out), cancel.clone());
            tokio::pin!(run);
            let outcome = tokio::select! {
                r = &mut run => Some(r),
                _ = stop2.cancelled() => None,
            };
            // Asked to stop: stdin is closed, so the relay ends once its answers are out; past
            // the grace it is cancelled.
            let outcome = match outcome {
                Some(r) => r,
                None => match tokio::time::timeout(grace, &mut run).await {
                    Ok(r) => r,
                    Err(_) => {
                        cancel.cancel();
                        tokio::time::timeout(grace, &mut run)
                            .await
                            .unwrap_or(Ok(()))
                    }
                },
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            let reason = match outcome {
                Ok(()) => "the relay to the remote server ended".to_owned(),
                Err(e) => format!("the relay to the remote server failed: {e}"),
            };
            if stop2.is_cancelled() {
                tracing::info!("relay stopped: {reason}");
            } else {
                tracing::warn!("relay ended on its own: {reason}");
            }
            exited2.cancel();
            on_exit(reason);
        }
        .instrument(span),
    );
    Child::from_parts(tx, stop, exited)
}
