//! The command's era, probed once, and the children of a command that speaks 2026-07-28 itself:
//! one per name the routing rule gives a 2026-07-28 request (the one child of `--scope shared`;
//! otherwise one per client identity and session key), so a client never reaches another's
//! child. Such a process serves that era only, so these children are not the ones handshake
//! sessions of the same name reach. (For a handshake-era command, 2026-07-28 requests go to the
//! named children of `crate::serve::keyed`, shared with the sessions.) A keyed child with no
//! request in flight for `--keep-alive` is stopped; the next request for its key starts a fresh
//! one.

use crate::serve::app::App;
use crate::serve::child::Child;
use crate::serve::keyed::KeyedInfo;
use crate::serve::scope::ChildKey;
use crate::serve::stateless::child::StatelessChild;
use crate::serve::stateless::probe::{self, Slot, Verdict};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Entry {
    slot: Slot,
    last_used: Mutex<Option<Instant>>,
}

/// Every stateless child, by name.
#[derive(Debug, Default)]
pub struct Slots {
    map: Mutex<HashMap<ChildKey, Arc<Entry>>>,
    verdict: Mutex<Option<Verdict>>,
    /// Held while the one probe runs.
    probing: tokio::sync::Mutex<()>,
}

impl Slots {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ChildKey, Arc<Entry>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the command speaks 2026-07-28 itself (probed the first time it is asked).
    pub async fn speaks_stateless(&self, app: &App) -> std::io::Result<bool> {
        let known = || *self.verdict.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = known() {
            return Ok(v == Verdict::Stateless);
        }
        let _one = self.probing.lock().await;
        if let Some(v) = known() {
            return Ok(v == Verdict::Stateless);
        }
        if app.shutdown.is_cancelled() {
            return Err(std::io::Error::other("the gateway is shutting down"));
        }
        let v = probe::probe(app).await?;
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        Ok(v == Verdict::Stateless)
    }

    /// The running child named `key` of a 2026-07-28 command, started if there is none. At
    /// most `--max-sessions` of them exist, so varying the key cannot start processes without
    /// bound.
    pub async fn get(&self, app: &App, key: ChildKey) -> std::io::Result<Arc<StatelessChild>> {
        let entry = {
            let mut map = self.map();
            if !map.contains_key(&key) && map.len() >= app.cfg.max_sessions {
                return Err(std::io::Error::other(format!(
                    "too many stateless children (--max-sessions {}); try again later",
                    app.cfg.max_sessions
                )));
            }
            map.entry(key).or_default().clone()
        };
        *entry.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        entry.slot.get(app).await
    }

    /// Stops keyed children with nothing in flight and unused for `keep_alive`. The child of
    /// an identity without a key, and the shared one, stay.
    pub async fn expire(&self, keep_alive: Duration) {
        let candidates: Vec<(ChildKey, Arc<Entry>)> = self
            .map()
            .iter()
            .filter(|(k, _)| matches!(k, ChildKey::Of(_, Some(_))))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (key, e) in candidates {
            let idle = e
                .last_used
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none_or(|t| t.elapsed() >= keep_alive);
            if !idle {
                continue;
            }
            let mut current = e.slot.current.lock().await;
            if current.as_ref().is_some_and(|rc| rc.in_flight() > 0) {
                continue;
            }
            let mut map = self.map();
            if map.get(&key).is_some_and(|cur| Arc::ptr_eq(cur, &e)) {
                map.remove(&key);
            }
            drop(map);
            if let Some(rc) = current.take() {
                tracing::info!(child = %key, "no request for --keep-alive: stopping the stateless child");
                if let Some(c) = rc.child.get() {
                    c.stop();
                }
            }
        }
    }

    /// Takes every child out and stops it, for shutdown.
    pub async fn stop_all(&self) -> Vec<Child> {
        let all: Vec<Arc<Entry>> = self.map().drain().map(|(_, e)| e).collect();
        let mut out = Vec::new();
        for e in all {
            if let Some(rc) = e.slot.current.lock().await.take()
                && let Some(c) = rc.child.get()
            {
                c.stop();
                out.push(c.clone());
            }
        }
        out
    }

    /// The running children and how many requests each has in flight.
    pub async fn list(&self) -> Vec<KeyedInfo> {
        let all: Vec<(ChildKey, Arc<Entry>)> = self
            .map()
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        let mut out = Vec::new();
        for (k, e) in all {
            if let Some(rc) = e
                .slot
                .current
                .lock()
                .await
                .as_ref()
                .filter(|rc| !rc.is_gone())
            {
                out.push(KeyedInfo {
                    name: k.to_string(),
                    sessions: rc.in_flight(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
