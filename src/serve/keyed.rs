//! Children that more than one session may reach: the one child of `--scope shared`, and the
//! children of session keys (`--scope per-key`). A keyed child lives while a session is
//! attached to it and for `--keep-alive` after the last one leaves, so a sandbox recreated
//! within that time finds it; a child that exits ends its sessions (their next request gets 404)
//! and the next session of its key starts a fresh one.

use crate::serve::app::App;
use crate::serve::child::Child;
use crate::serve::scope::ChildKey;
use crate::serve::session::Session;
use crate::serve::shared::SharedChild;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One named child and since when nobody is attached.
#[derive(Debug)]
struct Entry {
    child: Arc<SharedChild>,
    empty_since: Option<Instant>,
}

/// The named children.
#[derive(Debug, Default)]
pub struct Keyed {
    map: tokio::sync::Mutex<HashMap<ChildKey, Entry>>,
    /// Children whose last session just left, noted without the async lock.
    emptied: Mutex<Vec<std::sync::Weak<SharedChild>>>,
}

/// What `/metrics` and the gateway's server list show of one named child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedInfo {
    /// The child's name (`shared`, `anonymous/KEY`, `token/KEY`).
    pub name: String,
    /// Sessions attached now.
    pub sessions: usize,
}

impl Keyed {
    /// Attaches `session` to the child named `key`, starting it if there is none.
    pub async fn attach(
        &self,
        app: &Arc<App>,
        key: ChildKey,
        session: &Arc<Session>,
    ) -> std::io::Result<Arc<SharedChild>> {
        let mut map = self.map.lock().await;
        if let Some(e) = map.get_mut(&key)
            && !e.child.is_gone()
        {
            e.empty_since = None;
            e.child.join(session);
            tracing::info!(child = %key, "session attached to a running child");
            return Ok(e.child.clone());
        }
        if app.shutdown.is_cancelled() {
            return Err(std::io::Error::other("the gateway is shutting down"));
        }
        let child = spawn(app, &key)?;
        child.join(session);
        map.insert(
            key,
            Entry {
                child: child.clone(),
                empty_since: None,
            },
        );
        Ok(child)
    }

    /// A session left `child`: if it was the last, the keep-alive clock starts.
    pub fn left(&self, child: &Arc<SharedChild>) {
        if child.sessions().is_empty() {
            self.emptied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arc::downgrade(child));
        }
    }

    /// Stops keyed children nobody has been attached to for `keep_alive` (the shared child of
    /// `--scope shared` stays).
    pub async fn expire(&self, keep_alive: Duration) {
        let emptied = std::mem::take(&mut *self.emptied.lock().unwrap_or_else(|p| p.into_inner()));
        let mut map = self.map.lock().await;
        let now = Instant::now();
        for e in map.values_mut() {
            if emptied.iter().any(|w| w.as_ptr() == Arc::as_ptr(&e.child))
                && e.child.sessions().is_empty()
            {
                e.empty_since.get_or_insert(now);
            }
        }
        let expired: Vec<ChildKey> = map
            .iter()
            .filter(|(k, e)| {
                **k != ChildKey::Shared
                    && e.child.sessions().is_empty()
                    && e.empty_since.is_some_and(|t| now - t >= keep_alive)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(e) = map.remove(&k) {
                tracing::info!(child = %k, "no session attached for --keep-alive: stopping the child");
                if let Some(c) = e.child.child.get() {
                    c.stop();
                }
            }
        }
    }

    /// Takes every child out and stops it, for shutdown.
    pub async fn stop_all(&self) -> Vec<Child> {
        let mut out = Vec::new();
        for (_, e) in self.map.lock().await.drain() {
            if let Some(c) = e.child.child.get() {
                c.stop();
                out.push(c.clone());
            }
        }
        out
    }

    /// The named children and how many sessions each has attached.
    pub async fn list(&self) -> Vec<KeyedInfo> {
        let mut v: Vec<KeyedInfo> = self
            .map
            .lock()
            .await
            .iter()
            .map(|(k, e)| KeyedInfo {
                name: k.to_string(),
                sessions: e.child.sessions().len(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

fn spawn(app: &Arc<App>, key: &ChildKey) -> std::io::Result<Arc<SharedChild>> {
    let shared = Arc::new(SharedChild::default());
    let span = tracing::info_span!("child", name = %key);
    let on_line = Child::messages_to(Arc::downgrade(&shared), SharedChild::dispatch);
    let app_w = Arc::downgrade(app);
    let weak = Arc::downgrade(&shared);
    let name = key.clone();
    let on_exit = move |reason: String| {
        let Some(app) = app_w.upgrade() else { return };
        app.metrics.children.dec();
        if !app.shutdown.is_cancelled() {
            app.metrics.child_crashes.inc();
        }
        let sh = weak.upgrade();
        if let Some(sh) = &sh {
            sh.mark_gone();
        }
        let tasks = app.tasks.clone();
        tasks.spawn(async move {
            let mut map = app.keyed.map.lock().await;
            if let (Some(cur), Some(sh)) = (map.get(&name), sh.as_ref())
                && Arc::ptr_eq(&cur.child, sh)
            {
                map.remove(&name);
            }
            drop(map);
            for s in sh.map(|sh| sh.sessions()).unwrap_or_default() {
                app.end(&s, &reason);
            }
        });
    };
    let child = {
        let _enter = span.enter();
        Child::spawn(&app.cfg, &app.tasks, on_line, on_exit)?
    };
    app.metrics.children.inc();
    app.metrics.children_total.inc();
    let _ = shared.child.set(child);
    Ok(shared)
}

impl App {
    /// Every child more than one client may reach, by era: `(handshake, stateless)`. For a
    /// handshake-era child, `sessions` counts the attached sessions; for a stateless one, the
    /// requests in flight.
    pub async fn named_children(&self) -> (Vec<KeyedInfo>, Vec<KeyedInfo>) {
        (self.keyed.list().await, self.stateless.list().await)
    }

    /// The `/metrics` lines of [`App::named_children`].
    pub async fn named_children_metrics(&self) -> String {
        let (handshake, stateless) = self.named_children().await;
        let mut s = String::from(
            "# HELP mcp_bridge_named_child_clients Sessions attached to (handshake) or requests in \
             flight at (stateless) each child several clients may reach.\n\
             # TYPE mcp_bridge_named_child_clients gauge\n",
        );
        for (era, list) in [("handshake", handshake), ("stateless", stateless)] {
            for c in list {
                let name = c.name.replace('\\', "\\\\").replace('"', "\\\"");
                s.push_str(&format!(
                    "mcp_bridge_named_child_clients{{child=\"{name}\",era=\"{era}\"}} {}\n",
                    c.sessions
                ));
            }
        }
        s
    }
}
