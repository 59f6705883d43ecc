//! The gateway's shared state: the session table, tombstones of ended sessions (so a late client
//! learns why its session is gone), the shared child, and the reaper that ends idle sessions.

use crate::net::hex;
use crate::serve::child::Child;
use crate::serve::config::Config;
use crate::serve::metrics::Metrics;
use crate::serve::scope::{Caller, Era, Route, route};
use crate::serve::session::{Link, Session, Transport};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many ended sessions are remembered for their 404 message.
const TOMBSTONES: usize = 4096;

/// Shared by every request handler.
#[derive(Debug)]
pub struct App {
    /// The validated settings.
    pub cfg: Config,
    /// The counters `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the gateway stops.
    pub shutdown: CancellationToken,
    /// Every child task, waited for (bounded) at shutdown.
    pub tasks: TaskTracker,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    tombstones: Mutex<HashMap<String, String>>,
    /// Children more than one session may reach (`--scope shared`, keyed), by name.
    pub keyed: crate::serve::keyed::Keyed,
    /// Whether the command speaks 2026-07-28 itself (probed once).
    pub stateless: crate::serve::stateless::Verdict,
    /// Bytes held in request bodies now, against `--max-body-total`.
    pub bodies: Arc<crate::serve::http::BodyBudget>,
    /// Children of ended sessions that have not exited yet: they still hold a process, so they
    /// count against `--max-sessions` until they are gone.
    stopping: Arc<AtomicUsize>,
    /// What its children and sessions log under (the server's name in a gateway); none for a
    /// plain `serve -- CMD`, whose logs need no name.
    pub span: tracing::Span,
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("too many sessions (--max-sessions {0}); try again later")]
    Full(usize),
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Spawn(std::io::Error),
}

impl App {
    /// The state of a gateway with no sessions yet.
    pub fn new(cfg: Config, shutdown: CancellationToken) -> Arc<App> {
        Self::new_in(cfg, shutdown, tracing::Span::none())
    }

    /// As [`App::new`], logging under `span`.
    pub fn new_in(cfg: Config, shutdown: CancellationToken, span: tracing::Span) -> Arc<App> {
        let bodies = crate::serve::http::BodyBudget::new(cfg.max_body_total);
        Arc::new(App {
            cfg,
            metrics: Arc::new(Metrics::default()),
            shutdown,
            tasks: TaskTracker::new(),
            sessions: Mutex::new(HashMap::new()),
            tombstones: Mutex::new(HashMap::new()),
            keyed: Default::default(),
            stateless: Default::default(),
            bodies,
            stopping: Arc::default(),
            span,
        })
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds a live session, or says why it is gone.
    pub fn session(&self, id: &str) -> Result<Arc<Session>, String> {
        if let Some(s) = self.sessions().get(id) {
            return Ok(s.clone());
        }
        let tombs = self.tombstones.lock().unwrap_or_else(|p| p.into_inner());
        Err(tombs
            .get(id)
            .cloned()
            .unwrap_or_else(|| "unknown or expired session".to_owned()))
    }

    /// Creates a session with its child, or attached to the child the routing rule names.
    pub async fn create(
        self: &Arc<Self>,
        transport: Transport,
        peer: &str,
        caller: &Caller,
    ) -> Result<Arc<Session>, CreateError> {
        if self.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)
            .map_err(|e| CreateError::Spawn(std::io::Error::other(e.to_string())))?;
        let id = hex(&raw);
        let session = Session::new(
            id.clone(),
            transport,
            self.cfg.replay_buffer,
            self.metrics.clone(),
        );
        {
            let mut map = self.sessions();
            if map.len() + self.stopping.load(Ordering::Acquire) >= self.cfg.max_sessions {
                self.metrics.sessions_rejected.inc();
                return Err(CreateError::Full(self.cfg.max_sessions));
            }
            map.insert(id.clone(), session.clone());
        }
        self.metrics.sessions.inc();
        self.metrics.sessions_total.inc();
        let _enter = session.span.clone().entered();
        tracing::info!(peer, ?transport, "session opened");
        drop(_enter);
        let link = match route(self.cfg.scope, caller, Era::Handshake) {
            Route::Child(key) => self
                .keyed
                .attach(self, key, &session)
                .await
                .map(Link::Shared),
            Route::OwnChild => self.spawn_own(&session).map(Link::Own),
        };
        match link {
            Ok(link) => {
                let _ = session.link.set(link);
                Ok(session)
            }
            Err(e) => {
                self.end(
                    &session,
                    &format!("the MCP server could not be started: {e}"),
                );
                Err(CreateError::Spawn(e))
            }
        }
    }

    fn spawn_own(self: &Arc<Self>, session: &Arc<Session>) -> std::io::Result<Child> {
        let _enter = session.span.clone().entered();
        let on_line = Child::messages_to(Arc::downgrade(session), Session::deliver);
        let app = Arc::downgrade(self);
        let weak = Arc::downgrade(session);
        let metrics = self.metrics.clone();
        let on_exit = move |reason: String| {
            metrics.children.dec();
            let (Some(app), Some(s)) = (app.upgrade(), weak.upgrade()) else {
                return;
            };
            if s.closed().is_none() {
                metrics.child_crashes.inc();
            }
            app.end(&s, &reason);
        };
        let child = Child::spawn(&self.cfg, &self.tasks, on_line, on_exit)?;
        self.metrics.children.inc();
        self.metrics.children_total.inc();
        Ok(child)
    }

    /// Ends a session: answers what it waits for, stops its child, and remembers why.
    pub fn end(&self, session: &Arc<Session>, reason: &str) {
        // The tombstone goes in first: a client answered by `close` may ask again at once.
        {
            let mut tombs = self.tombstones.lock().unwrap_or_else(|p| p.into_inner());
            if tombs.len() >= TOMBSTONES {
                tombs.clear();
            }
            tombs
                .entry(session.id.to_string())
                .or_insert_with(|| format!("session ended: {reason}"));
        }
        let removed = {
            let mut map = self.sessions();
            let removed = map.remove(&*session.id).is_some();
            // Under the table's lock, so that `create` never sees the place free in between.
            if removed && let Some(Link::Own(child)) = session.link.get() {
                self.hold_until_exit(child.clone());
            }
            removed
        };
        session.close(reason);
        if let Some(Link::Shared(shared)) = session.link.get() {
            shared.leave(session);
        }
        if removed {
            self.metrics.sessions.dec();
            let _enter = session.span.enter();
            tracing::info!(reason, "session ended");
        }
    }

    /// This server's `/metrics` lines: its counters, the bytes held in request bodies and its
    /// named children (with `own`, a named client's identity, only that client's).
    pub async fn metrics_text(&self, own: Option<&str>) -> String {
        let held = self.bodies.held();
        self.metrics.render()
            + &format!(
                "# HELP mcp_bridge_request_body_bytes Bytes held in request bodies being read, \
                 against --max-body-total.\n# TYPE mcp_bridge_request_body_bytes gauge\n\
                 mcp_bridge_request_body_bytes {held}\n"
            )
            + &self.named_children_metrics(own).await
    }

    /// Keeps `child`'s place under `--max-sessions` until its process has exited.
    fn hold_until_exit(&self, child: Child) {
        self.stopping.fetch_add(1, Ordering::AcqRel);
        let stopping = self.stopping.clone();
        self.tasks.spawn(async move {
            child.wait().await;
            stopping.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Ends sessions idle past the TTL, until shutdown.
    pub async fn reap(self: Arc<Self>) {
        let ttl = self.cfg.session_ttl;
        let every = (ttl.min(self.cfg.keep_alive()) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let idle: Vec<Arc<Session>> = self
                .sessions()
                .values()
                .filter(|s| {
                    s.transport == Transport::Streamable && s.idle_for().is_some_and(|d| d >= ttl)
                })
                .cloned()
                .collect();
            for s in idle {
                self.end(&s, "idle for longer than --session-ttl");
            }
            self.keyed.expire(self.cfg.keep_alive()).await;
        }
    }

    /// Ends every session and waits (bounded) for the children to stop.
    pub async fn stop_all(self: &Arc<Self>) {
        let all: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        let mut children = Vec::new();
        for s in &all {
            if let Some(Link::Own(c)) = s.link.get() {
                children.push(c.clone());
            }
            self.end(s, "the gateway is shutting down");
        }
        children.extend(self.keyed.stop_all().await);
        let wait_all = async {
            for c in &children {
                c.wait().await;
            }
        };
        let limit = self.cfg.stop_timeout * 2 + Duration::from_secs(2);
        if tokio::time::timeout(limit, wait_all).await.is_err() {
            tracing::warn!("some children did not stop in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn app(ttl: &str) -> Arc<App> {
        let cli = Cli::try_parse_from(["mcp-bridge", "serve", "--session-ttl", ttl, "--", "cat"])
            .expect("valid arguments");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        App::new(
            Config::try_from(args).expect("valid"),
            CancellationToken::new(),
        )
    }

    /// The TTL runs on tokio's clock: the test moves it forward instead of waiting.
    #[tokio::test(start_paused = true)]
    async fn an_idle_session_ends_after_the_ttl_and_not_before() {
        let app = app("10m");
        let session = app
            .create(Transport::Streamable, "test", &Caller::default())
            .await
            .expect("a session with a `cat` child");
        let reaper = tokio::spawn(app.clone().reap());

        tokio::time::sleep(Duration::from_secs(9 * 60)).await;
        assert!(app.session(&session.id).is_ok(), "still alive at 9 minutes");
        // Activity restarts the clock.
        session.touch();
        tokio::time::sleep(Duration::from_secs(9 * 60)).await;
        assert!(
            app.session(&session.id).is_ok(),
            "alive 9 minutes after a touch"
        );

        tokio::time::sleep(Duration::from_secs(2 * 60)).await;
        let why = app
            .session(&session.id)
            .expect_err("ended after 10 idle minutes");
        assert!(why.contains("--session-ttl"), "{why}");
        assert!(session.closed().is_some());

        app.shutdown.cancel();
        let _ = reaper.await;
        app.stop_all().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_attached_session_never_expires() {
        let app = app("1m");
        let session = app
            .create(Transport::Streamable, "test", &Caller::default())
            .await
            .expect("a session with a `cat` child");
        let reaper = tokio::spawn(app.clone().reap());
        session.attach();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(app.session(&session.id).is_ok());
        session.detach();
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(app.session(&session.id).is_err());
        app.shutdown.cancel();
        let _ = reaper.await;
        app.stop_all().await;
    }
}
