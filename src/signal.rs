//! Process signals. Both modes stop on SIGINT (a user's Ctrl-C) and SIGTERM (a supervisor or
//! `docker stop`): either one cancels the root token and the mode shuts down in order.
//! `serve --config` also reloads its file on SIGHUP.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Cancels `token` at the first SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        // Both branches only wait for a signal; losing one to the other is harmless.
        tokio::select! {
            _ = int.recv() => tracing::debug!("SIGINT: shutting down"),
            _ = term.recv() => tracing::debug!("SIGTERM: shutting down"),
            _ = token.cancelled() => return,
        }
        token.cancel();
    });
    Ok(())
}

/// SIGHUP as a stream (`serve --config` reloads its file on each). Registering replaces the
/// default action, which would end the process.
pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    signal(SignalKind::hangup())
}
