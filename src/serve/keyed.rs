//! Children that more than one client may reach, by the name the routing rule gives them
//! (`crate::serve::scope`): the one child of `--scope shared`, the children of session keys,
//! and the child of a client identity for its 2026-07-28 requests. Handshake sessions attach
//! to the child; 2026-07-28 requests of the same name reach the same process through its
//! 2026-07-28 side (translated for a handshake-era command, passed through for one that speaks
//! 2026-07-28 itself). A keyed child lives while a session is attached to it or
//! a 2026-07-28 request is in flight, and for `--keep-alive` after, so a sandbox recreated
//! within that time finds it; a child that exits ends its sessions (their next request gets
//! 404), answers its waiting requests with an error, and the next client of its name starts a
//! fresh one.

use crate::serve::app::App;
use crate::serve::child::Child;
use crate::serve::scope::ChildKey;
use crate::serve::session::Session;
use crate::serve::shared::SharedChild;
use crate::serve::stateless::StatelessChild;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One named child and since when nobody is attached and no 2026-07-28 request in flight.
#[derive(Debug)]
struct Entry {
    child: Arc<SharedChild>,
    empty_since: Option<Instant>,
}

/// The named children.
#[derive(Debug, Default)]
pub struct Keyed {
    map: tokio::sync::Mutex<HashMap<ChildKey, Entry>>,
}

/// What `/metrics` and the gateway's server list show of one named child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedInfo {
    /// The child's name (`shared`, `anonymous/KEY`, `token/KEY`).
    pub name: String,
    /// Sessions attached now (handshake era), or requests in flight (2026-07-28).
    pub sessions: usize,
}

/// What `/metrics` and `GET /servers` show of the named children, by era.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    /// Sessions attached to each child.
    pub handshake: Vec<KeyedInfo>,
    /// 2026-07-28 requests in flight at each child.
    pub stateless: Vec<KeyedInfo>,
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

    /// The 2026-07-28 side of the child named `key`, starting the child if there is none. At
    /// most `--max-sessions` children exist, so varying the key cannot start processes without
    /// bound. A child that exits on the era probe is started once more.
    pub async fn stateless(
        &self,
        app: &Arc<App>,
        key: ChildKey,
    ) -> std::io::Result<Arc<StatelessChild>> {
        let first = self.stateless_once(app, key.clone()).await;
        match first {
            Err(_) if self.gone(&key).await => self.stateless_once(app, key).await,
            other => other,
        }
    }

    /// Whether the child named `key` has exited (or is not there).
    async fn gone(&self, key: &ChildKey) -> bool {
        self.map
            .lock()
            .await
            .get(key)
            .is_none_or(|e| e.child.is_gone())
    }

    async fn stateless_once(
        &self,
        app: &Arc<App>,
        key: ChildKey,
    ) -> std::io::Result<Arc<StatelessChild>> {
        let child = {
            let mut map = self.map.lock().await;
            match map.get_mut(&key) {
                Some(e) if !e.child.is_gone() => {
                    e.empty_since = None;
                    e.child.clone()
                }
                _ => {
                    if app.shutdown.is_cancelled() {
                        return Err(std::io::Error::other("the gateway is shutting down"));
                    }
                    if map.len() >= app.cfg.max_sessions {
                        return Err(std::io::Error::other(format!(
                            "too many children (--max-sessions {}); try again later",
                            app.cfg.max_sessions
                        )));
                    }
                    let child = spawn(app, &key)?;
                    map.insert(
                        key,
                        Entry {
                            child: child.clone(),
                            empty_since: None,
                        },
                    );
                    child
                }
            }
        };
        child.stateless(&app.metrics, &app.stateless).await
    }

    /// Stops keyed children nobody has used for `keep_alive`: no session attached, no
    /// 2026-07-28 request in flight. The shared child of `--scope shared` and the keyless child
    /// of a client identity stay.
    pub async fn expire(&self, keep_alive: Duration) {
        let mut map = self.map.lock().await;
        let now = Instant::now();
        for e in map.values_mut() {
            if e.child.sessions().is_empty() && e.child.stateless_in_flight() == 0 {
                e.empty_since.get_or_insert(now);
            } else {
                e.empty_since = None;
            }
        }
        let expired: Vec<ChildKey> = map
            .iter()
            .filter(|(k, e)| {
                matches!(k, ChildKey::Of(_, Some(_)))
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

    /// The named children: sessions attached to each, and 2026-07-28 requests in flight at
    /// each that has had such requests.
    pub async fn list(&self) -> Named {
        let mut named = Named::default();
        for (k, e) in self.map.lock().await.iter() {
            let name = k.to_string();
            if e.child.stateless_in_flight() > 0 || e.child.has_stateless_side() {
                named.stateless.push(KeyedInfo {
                    name: name.clone(),
                    sessions: e.child.stateless_in_flight(),
                });
            }
            named.handshake.push(KeyedInfo {
                name,
                sessions: e.child.sessions().len(),
            });
        }
        named.handshake.sort_by(|a, b| a.name.cmp(&b.name));
        named.stateless.sort_by(|a, b| a.name.cmp(&b.name));
        named
    }
}

fn spawn(app: &Arc<App>, key: &ChildKey) -> std::io::Result<Arc<SharedChild>> {
    let shared = Arc::new(SharedChild::default());
    // Under the server's span in a gateway, whichever request happens to start the child.
    let span = if app.span.is_none() {
        tracing::info_span!("child", name = %key)
    } else {
        tracing::info_span!(parent: &app.span, "child", name = %key)
    };
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
            sh.stateless_exited(&reason);
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
    /// Every child more than one client may reach, with its sessions attached and its
    /// 2026-07-28 requests in flight (one child may appear under both eras).
    pub async fn named_children(&self) -> Named {
        self.keyed.list().await
    }

    /// The `/metrics` lines of [`App::named_children`]; with `own` (a named client's identity),
    /// only that identity's children (their names carry its session keys).
    pub async fn named_children_metrics(&self, own: Option<&str>) -> String {
        let Named {
            handshake,
            stateless,
        } = self.named_children().await;
        let mut s = String::from(
            "# HELP mcp_bridge_named_child_clients Sessions attached to (handshake) or requests in \
             flight at (stateless) each child several clients may reach.\n\
             # TYPE mcp_bridge_named_child_clients gauge\n",
        );
        for (era, list) in [("handshake", handshake), ("stateless", stateless)] {
            for c in list.into_iter().filter(|c| visible_to(own, &c.name)) {
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

/// Whether a named child (`client:NAME`, `client:NAME/KEY`, `shared`, …) is shown to a client of
/// identity `own` (`client:NAME`; `None`: no named clients, everything is shown). A named client
/// sees only its own children, so it learns no other client's session keys.
pub fn visible_to(own: Option<&str>, child: &str) -> bool {
    own.is_none_or(|o| child == o || child.strip_prefix(o).is_some_and(|k| k.starts_with('/')))
}
