//! What the shared child sends, routed: answers back to the session (or 2026-07-28 request) that
//! asked, with its id restored; the child's own requests and notifications to the one client they
//! can belong to, else refused or dropped (see the parent module).

use super::*;

impl SharedChild {
    /// Routes one message from the child.
    pub fn dispatch(&self, msg: Message) {
        let adapter = self.adapter.get();
        match msg.kind() {
            Kind::Response { id } => {
                if !self.answered(id, &msg.raw)
                    && let Some(a) = adapter
                {
                    a.dispatch(msg);
                }
            }
            Kind::Request { id, method } => {
                let (id, method) = (id.clone(), method.clone());
                // A 2026-07-28 request in flight may be the one it is about: nobody is sure.
                let others = adapter.map_or(0, |a| a.asking());
                let mut st = self.lock();
                let target = match (st.asking(), adapter) {
                    (Asking::One(s), _) if others == 0 => s,
                    // Only the 2026-07-28 side asks: it answers that it cannot be asked.
                    (Asking::Nobody, Some(a)) if others > 0 => {
                        drop(st);
                        a.dispatch(msg);
                        return;
                    }
                    _ => {
                        drop(st);
                        tracing::warn!(
                            method,
                            "the shared child sent a request while no single session has one \
                             in flight: answering it with an error"
                        );
                        self.refuse(&id, &method);
                        return;
                    }
                };
                st.inbound
                    .insert(value_key(id.as_json()), Arc::downgrade(&target));
                drop(st);
                target.deliver(msg);
            }
            Kind::Notification { method } => {
                let method = method.clone();
                self.notification(&method, msg);
            }
        }
    }

    /// Answers a request of the child that no session can be asked.
    pub(super) fn refuse(&self, id: &Id, method: &str) {
        let err = BridgeError::new(
            Reason::ChildGone,
            false,
            format!(
                "`{method}` cannot be routed: the child is shared and no single session has a \
                 request in flight"
            ),
        )
        .response(Some(id));
        if let Some(c) = self.child.get() {
            let _ = c.try_send(err);
        }
    }

    pub(super) fn notification(&self, method: &str, msg: Message) {
        let adapter = self.adapter.get();
        let others = adapter.map_or(0, |a| a.asking());
        if method.ends_with("/list_changed")
            && let Some(a) = adapter
        {
            a.dispatch(msg.clone());
        }
        let mut st = self.lock();
        let (targets, raw): (Vec<Arc<Session>>, Bytes) = if method.ends_with("/list_changed") {
            (
                st.sessions.iter().filter_map(Weak::upgrade).collect(),
                msg.raw,
            )
        } else if method == "notifications/resources/updated" {
            let uri = rewrite::get(&msg.raw, &["params", "uri"])
                .ok()
                .flatten()
                .and_then(|u| serde_json::from_str::<String>(u).ok())
                .unwrap_or_default();
            let subs = st.subscribed.get(&uri).map(Vec::as_slice).unwrap_or(&[]);
            (subs.iter().filter_map(Weak::upgrade).collect(), msg.raw)
        } else if let Ok(Some(token)) = rewrite::get(&msg.raw, &["params", "progressToken"]) {
            let n = serde_json::from_str::<String>(token)
                .ok()
                .and_then(|t| t.strip_prefix(TOKEN_PREFIX)?.parse::<u64>().ok());
            let Some(o) = n.and_then(|n| st.outbound.get(&n)) else {
                drop(st);
                match adapter {
                    // Not a session's token: the 2026-07-28 side's, or over.
                    Some(a) if n.is_none() => a.dispatch(msg),
                    _ => tracing::debug!("dropping progress for a request that is over"),
                }
                return;
            };
            let restored = o
                .client_token
                .as_deref()
                .and_then(|t| rewrite::splice(&msg.raw, &["params", "progressToken"], t).ok());
            match (o.session.upgrade(), restored) {
                (Some(s), Some(raw)) => (vec![s], raw),
                _ => return,
            }
        } else if method == "notifications/cancelled" {
            // The child gives up one of its own requests: only the session asked hears of it.
            let key = crate::wire::cancelled_id(&msg.raw).map(|id| value_key(id.as_json()));
            let asked = key
                .and_then(|k| st.inbound.remove(&k))
                .and_then(|w| w.upgrade());
            if asked.is_none()
                && let Some(a) = adapter
            {
                // Perhaps a listen stream of the 2026-07-28 side ending.
                drop(st);
                a.dispatch(msg);
                return;
            }
            (asked.into_iter().collect(), msg.raw)
        } else {
            match st.only_asking().filter(|_| others == 0) {
                Some(s) => (vec![s], msg.raw),
                None if adapter.is_some() => {
                    drop(st);
                    if let Some(a) = adapter {
                        a.dispatch(msg);
                    }
                    return;
                }
                None => {
                    tracing::info!(
                        method,
                        "dropping a notification of the shared child: no single session has a \
                         request in flight"
                    );
                    return;
                }
            }
        };
        drop(st);
        // The same message (its progress token perhaps restored): it needs no second parse.
        for t in targets {
            t.deliver(Message {
                raw: raw.clone(),
                parts: msg.parts.clone(),
                batch: msg.batch,
                named: Default::default(),
            });
        }
    }

    /// An answer of the child: back to the session that asked, under the client's own id. The
    /// first `initialize`'s answer also goes to the sessions that waited for it, even when the
    /// session that sent it is gone.
    pub(super) fn answered(&self, id: &Id, raw: &[u8]) -> bool {
        let mut st = self.lock();
        let Some(o) = rewrite::as_number(id.as_json()).and_then(|n| st.outbound.remove(&n)) else {
            drop(st);
            if self.adapter.get().is_none() {
                tracing::debug!(id = id.as_json(), "dropping an answer nobody waits for");
            }
            return false;
        };
        let waiters = if o.first_init {
            st.init.finish(result_of(raw))
        } else {
            Vec::new()
        };
        drop(st);
        if o.first_init {
            self.init_changed.notify_waiters();
        }
        if let Some(s) = o.session.upgrade() {
            // Still an answer, now under the client's id: it needs no second parse.
            let line = rewrite::splice_id(raw, o.client_id.as_json()).map_or_else(
                |e| {
                    BridgeError::new(
                        Reason::ChildGone,
                        false,
                        format!("the MCP server's answer cannot be relayed: {e}"),
                    )
                    .response(Some(&o.client_id))
                },
                one_line,
            );
            s.deliver(Message {
                raw: line,
                parts: vec![Kind::Response { id: o.client_id }],
                batch: false,
                named: Default::default(),
            });
        }
        for (s, reply) in waiters {
            if let Some(s) = s.upgrade() {
                s.deliver_raw(reply);
            }
        }
        true
    }
}
