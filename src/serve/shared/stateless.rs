//! The 2026-07-28 side of a named child: requests of the stateless revision that the routing
//! rule sends to this child are relayed by a [`StatelessChild`] writing to the same process,
//! numbered from the same counter as the sessions' requests. The first one probes the command's
//! era (once per command, [`Verdict`]); a handshake-era child is initialized once: the bridge
//! sends `initialize` itself unless a session already did (then its cached result is used, and
//! a session that comes later gets the bridge's result).

use super::{Init, SharedChild};
use crate::serve::metrics::Metrics;
use crate::serve::stateless::{ChildEra as Era, HandshakeInfo, StatelessChild, Verdict};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long the child's `initialize` may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Who runs the child's one `initialize`.
enum Claim {
    /// It ran: its result.
    Done(Box<RawValue>),
    /// Nobody yet: the caller does.
    Mine,
    /// A session's is at the child.
    Wait,
}

impl SharedChild {
    /// The 2026-07-28 side of this child, initialized (the first caller does it; later ones
    /// wait). An error: the child did not answer `initialize` in time, or refused it.
    pub async fn stateless(
        self: &Arc<Self>,
        metrics: &Arc<Metrics>,
        verdict: &Verdict,
    ) -> std::io::Result<Arc<StatelessChild>> {
        let Some(child) = self.child.get() else {
            return Err(std::io::Error::other("the child is not running"));
        };
        let rc = self
            .adapter
            .get_or_init(|| {
                Arc::new(StatelessChild::sharing(
                    metrics.clone(),
                    child.clone(),
                    self.numbers.clone(),
                ))
            })
            .clone();
        self.adapter_ready
            .get_or_try_init(|| self.prepare(&rc, verdict))
            .await?;
        Ok(rc)
    }

    /// Whether 2026-07-28 requests have reached this child.
    pub fn has_stateless_side(&self) -> bool {
        self.adapter.get().is_some()
    }

    /// Requests of the 2026-07-28 side in flight (listen streams included).
    pub fn stateless_in_flight(&self) -> usize {
        self.adapter.get().map_or(0, |a| a.in_flight())
    }

    /// Probes the era unless it is known (a child a session already initialized is of the
    /// handshake era as far as this bridge is concerned), then initializes a handshake-era one.
    async fn prepare(&self, rc: &Arc<StatelessChild>, verdict: &Verdict) -> std::io::Result<()> {
        let untouched = matches!(self.lock().init, Init::NotYet);
        let native = match verdict.known() {
            Some(known) => known,
            None if untouched => verdict.speaks_stateless(rc).await?,
            None => false,
        };
        if native {
            let _ = rc.era.set(Era::Stateless);
            return Ok(());
        }
        self.initialize_for(rc).await
    }

    async fn initialize_for(&self, rc: &Arc<StatelessChild>) -> std::io::Result<()> {
        let result = loop {
            let changed = self.init_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.claim_init() {
                Claim::Done(result) => break result,
                Claim::Mine => {
                    let req = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION")},
                    }});
                    let answer = rc.ask(req, INIT_TIMEOUT, false).await;
                    let result = answer
                        .as_ref()
                        .and_then(|a| a.get("result"))
                        .and_then(|r| serde_json::value::to_raw_value(r).ok());
                    self.finish_init(result.clone());
                    match result {
                        Some(r) => break r,
                        None => {
                            let why = match answer.and_then(|a| a.get("error").cloned()) {
                                Some(err) => format!("the MCP server refused initialize: {err}"),
                                None => "the MCP server did not answer initialize".to_owned(),
                            };
                            return Err(std::io::Error::other(why));
                        }
                    }
                }
                Claim::Wait => {
                    if tokio::time::timeout(INIT_TIMEOUT, changed).await.is_err() {
                        return Err(std::io::Error::other(
                            "the MCP server did not answer a session's initialize",
                        ));
                    }
                }
            }
        };
        let info = serde_json::from_str::<Value>(result.get())
            .map(|r| HandshakeInfo::from_result(&r))
            .map_err(|e| std::io::Error::other(format!("the initialize result: {e}")))?;
        if !std::mem::replace(&mut self.lock().initialized_sent, true) {
            rc.notify(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        }
        tracing::info!(
            protocol = info.protocol,
            "2026-07-28 requests reach this handshake-era child too: their answers are translated"
        );
        let _ = rc.era.set(Era::Handshake(info));
        Ok(())
    }

    fn claim_init(&self) -> Claim {
        let mut st = self.lock();
        match &st.init {
            Init::Done(result) => Claim::Done(result.clone()),
            Init::Running(_) => Claim::Wait,
            Init::NotYet => {
                st.init = Init::Running(Vec::new());
                Claim::Mine
            }
        }
    }

    /// The outcome of the bridge's own `initialize`: sessions that waited for it get it too.
    fn finish_init(&self, result: Option<Box<RawValue>>) {
        let waiters = self.lock().init.finish(result);
        for (s, reply) in waiters {
            if let Some(s) = s.upgrade() {
                s.deliver_raw(reply);
            }
        }
        self.init_changed.notify_waiters();
    }

    /// The process ended: requests of the 2026-07-28 side get an error, later ones too.
    pub fn stateless_exited(&self, reason: &str) {
        if let Some(a) = self.adapter.get() {
            a.exited(reason);
        }
    }
}
