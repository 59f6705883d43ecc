//! Hot reload of the gateway file: polled once a second (its bytes, so an editor's
//! rename-over-write and a same-second edit are both seen) and re-read on every SIGHUP. A file
//! that fails to load is logged with its JSON path and the running configuration stays.
//! Servers added start serving; servers removed or changed are retired: their sessions go on
//! until they end or the drain timeout passes, then their children stop.

use super::{Gateway, Unit};
use crate::gateway::{Diff, File};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the file is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How often a retired unit is checked for its last session.
const DRAIN_CHECK: Duration = Duration::from_millis(200);

/// Watches `path` until the gateway stops.
pub async fn watch(gw: Arc<Gateway>, path: PathBuf) {
    let mut hup = match crate::signal::hangups() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); the file is still watched");
            None
        }
    };
    let mut last = std::fs::read(&path).ok();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = gw.shutdown.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = std::fs::read(&path).ok();
        if !forced && now == last {
            continue;
        }
        last = now;
        if forced {
            tracing::info!("SIGHUP: reloading {}", path.display());
        }
        reload(&gw, &path);
    }
}

/// Loads the file again and applies what changed.
pub fn reload(gw: &Arc<Gateway>, path: &std::path::Path) {
    match File::load(path) {
        Ok(file) => apply(gw, file),
        Err(e) => tracing::warn!("reload refused, the running configuration stays: {e}"),
    }
}

fn apply(gw: &Arc<Gateway>, new: File) {
    let diff = {
        let old = gw.file.lock().unwrap_or_else(|p| p.into_inner());
        Diff::between(&old, &new)
    };
    if diff.settings_changed {
        let old = gw.file.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = (&old.bridge, &new.bridge);
        let mut fixed = Vec::new();
        for (key, same) in [
            ("listen", a.listen == b.listen),
            ("authTokenFile", a.auth_token_file == b.auth_token_file),
            ("sessionTtl", a.session_ttl == b.session_ttl),
            ("maxSessions", a.max_sessions == b.max_sessions),
            ("drainTimeout", a.drain_timeout == b.drain_timeout),
            ("clients", a.clients == b.clients),
            ("audit", a.audit == b.audit),
            ("rateLimit", a.rate_limit == b.rate_limit),
        ] {
            if !same {
                fixed.push(key);
            }
        }
        tracing::warn!(
            "{}; changed mcpBridge settings take effect at the next restart: {}",
            diff.summary(),
            fixed.join(", ")
        );
    } else {
        tracing::info!("{}", diff.summary());
    }
    let mut retired = Vec::new();
    {
        let mut routes = gw.routes_mut();
        for name in &diff.removed {
            if let Some(u) = routes.current.remove(name) {
                retired.push(u);
            }
        }
        for name in diff.changed.iter().chain(&diff.added) {
            if let Some(server) = new.servers.get(name) {
                let unit = gw.unit(server);
                if let Some(old) = routes.current.insert(name.clone(), unit) {
                    retired.push(old);
                }
            }
        }
        routes.draining.extend(retired.iter().cloned());
    }
    *gw.file.lock().unwrap_or_else(|p| p.into_inner()) = new;
    for unit in retired {
        tokio::spawn(drain(gw.clone(), unit));
    }
}

/// Lets a retired unit's sessions end on their own, up to the drain timeout, then stops it.
async fn drain(gw: Arc<Gateway>, unit: Arc<Unit>) {
    let deadline = Instant::now() + gw.base.drain_timeout;
    loop {
        if unit.app.metrics.sessions.get() <= 0 || gw.shutdown.is_cancelled() {
            break;
        }
        if Instant::now() >= deadline {
            tracing::info!(
                server = %unit.server.name,
                sessions = unit.app.metrics.sessions.get(),
                "drain timeout: ending the retired server's remaining sessions"
            );
            break;
        }
        tokio::time::sleep(DRAIN_CHECK).await;
    }
    unit.app.stop_all().await;
    unit.app.shutdown.cancel();
    gw.routes_mut().draining.retain(|u| !Arc::ptr_eq(u, &unit));
    tracing::info!(server = %unit.server.name, "retired server stopped");
}
