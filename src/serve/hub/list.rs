//! `GET /servers` (what the gateway serves, and how busy each server is) and `/metrics`, whose
//! per-server series carry a `server="NAME"` label.

use super::Gateway;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// GET /servers: names, kinds, routes and state, as JSON.
pub async fn servers(State(gw): State<Arc<Gateway>>, req: Request) -> impl IntoResponse {
    // Everything but the named children is read at once; the request (not `Sync`) is not held
    // across the awaits below.
    // A named client sees only its own named children (their names carry its keys).
    let own = identity(&req);
    let (mut list, apps, removed) = {
        let routes = gw.routes();
        let single = routes.current.len() == 1;
        let mut list = Vec::new();
        let mut apps = Vec::new();
        // A named client sees only the servers granted to it.
        let granted = |name: &str| crate::serve::policy::may_reach(&req, name);
        for (name, unit) in routes.current.iter().filter(|(n, _)| granted(n)) {
            let draining: Vec<&Arc<super::Unit>> = routes
                .draining
                .iter()
                .filter(|u| &u.server.name == name)
                .collect();
            list.push(json!({
                "name": name,
                "kind": kind(&unit.server),
                "scope": unit.server.options.scope.as_str(),
                "routes": routes_of(&unit.server, single),
                "state": {
                    "sessions": unit.app.metrics.sessions.get(),
                    "children": unit.app.metrics.children.get(),
                    "draining_sessions": draining.iter().map(|u| u.app.metrics.sessions.get()).sum::<i64>(),
                },
            }));
            apps.push(unit.app.clone());
        }
        let mut removed: BTreeMap<&str, i64> = BTreeMap::new();
        for u in routes.draining.iter() {
            if !routes.current.contains_key(&u.server.name) && granted(&u.server.name) {
                *removed.entry(&u.server.name).or_default() += u.app.metrics.sessions.get();
            }
        }
        let removed: Vec<Value> = removed
            .into_iter()
            .map(|(name, sessions)| json!({"name": name, "draining_sessions": sessions}))
            .collect();
        (list, apps, removed)
    };
    for (entry, app) in list.iter_mut().zip(apps) {
        entry["state"]["named_children"] = Value::Array(named_children(&app, own.as_deref()).await);
    }
    axum::Json(json!({"servers": list, "removed": removed}))
}

/// The children several clients may reach (`shared`, or an identity's and key's), each with the
/// handshake sessions attached to it and the 2026-07-28 requests in flight at it; with `own`
/// (a named client's identity), only that identity's children.
async fn named_children(app: &crate::serve::app::App, own: Option<&str>) -> Vec<Value> {
    let named = app.named_children().await;
    let mut by_name: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in named.handshake {
        by_name.entry(c.name).or_default().0 += c.sessions;
    }
    for c in named.stateless {
        by_name.entry(c.name).or_default().1 += c.sessions;
    }
    by_name
        .into_iter()
        .filter(|(name, _)| crate::serve::keyed::visible_to(own, name))
        .map(|(name, (attached, in_flight))| {
            json!({"child": name, "attached_sessions": attached, "stateless_in_flight": in_flight})
        })
        .collect()
}

fn kind(server: &crate::gateway::Server) -> &'static str {
    match server.definition {
        crate::gateway::Definition::Stdio { .. } => "stdio",
        crate::gateway::Definition::Remote { .. } => "remote",
    }
}

fn routes_of(server: &crate::gateway::Server, single: bool) -> Value {
    let mut r = json!({
        "mcp": server.mcp_route(),
        "sse": server.sse_route(),
        "messages": format!("{}/messages", server.route_prefix()),
    });
    if single {
        r["aliases"] = json!(["/mcp", "/sse", "/messages"]);
    }
    r
}

/// The identity whose named children a request may see: its named client's, or `None` (all)
/// without named clients.
fn identity(req: &Request) -> Option<String> {
    req.extensions()
        .get::<crate::serve::policy::Requester>()
        .and_then(|r| r.client.as_ref())
        .map(|c| format!("client:{}", c.name))
}

/// GET /metrics: every unit's series with its `server` label, and the gateway-wide ones (errors
/// refused before reaching a server) without. A named client gets the servers granted to it and,
/// of their named children, its own.
pub async fn metrics(State(gw): State<Arc<Gateway>>, req: Request) -> impl IntoResponse {
    let own = identity(&req);
    let units: Vec<_> = gw
        .all_units()
        .into_iter()
        .filter(|u| crate::serve::policy::may_reach(&req, &u.server.name))
        .collect();
    drop(req);
    // Only the root's error count is the gateway's own; its other series are always zero.
    let root = merge(&[(None, gw.root.metrics.render())]);
    let errors: String = root
        .split_inclusive('\n')
        .filter(|l| l.contains("mcp_bridge_http_errors_total"))
        .collect();
    let mut parts: Vec<(Option<String>, String)> = vec![(None, errors)];
    for unit in units {
        let text = unit.app.metrics_text(own.as_deref()).await;
        parts.push((Some(unit.server.name.clone()), text));
    }
    parts.push((None, gw.base.gate.render_metrics()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        merge(&parts),
    )
}

/// Merges Prometheus texts into one: each family's `# HELP`/`# TYPE` once, then its samples
/// from every part, labelled with the part's server. A retired and a current unit of one name
/// give two series with the same labels only while one drains; their sum is the server's.
pub fn merge(parts: &[(Option<String>, String)]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut heads: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (label, text) in parts {
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                family = rest.split(' ').next().unwrap_or("").to_owned();
                let head = heads.entry(family.clone()).or_default();
                if head.len() < 2 && !head.iter().any(|h| h == line) {
                    if head.is_empty() {
                        order.push(family.clone());
                    }
                    head.push(line.to_owned());
                }
            } else if !line.is_empty() {
                let line = match label {
                    Some(l) => with_label(line, l),
                    None => line.to_owned(),
                };
                samples.entry(family.clone()).or_default().push(line);
            }
        }
    }
    let mut out = String::new();
    for family in order {
        for h in heads.remove(&family).unwrap_or_default() {
            out.push_str(&h);
            out.push('\n');
        }
        for s in samples.remove(&family).unwrap_or_default() {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

/// `name value` → `name{server="L"} value`; `name{a="b"} value` → `name{server="L",a="b"} value`.
/// Server names are `[A-Za-z0-9._-]`, so the label needs no escaping.
fn with_label(line: &str, server: &str) -> String {
    let brace = line.find('{');
    let space = line.find(' ');
    match (brace, space) {
        (Some(b), Some(s)) if b < s => {
            format!("{}{{server=\"{server}\",{}", &line[..b], &line[b + 1..])
        }
        (_, Some(s)) => format!("{}{{server=\"{server}\"}}{}", &line[..s], &line[s..]),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_families_carry_the_server_label() {
        let a = "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n\
                 # HELP m M.\n# TYPE m counter\nm{direction=\"in\"} 2\n";
        let parts = vec![
            (None, a.to_owned()),
            (Some("db".to_owned()), a.to_owned()),
            (Some("mem".to_owned()), a.to_owned()),
        ];
        let text = merge(&parts);
        assert_eq!(text.matches("# HELP x_total").count(), 1);
        assert_eq!(text.matches("# TYPE m counter").count(), 1);
        assert!(text.contains("x_total 1\nx_total{server=\"db\"} 1\nx_total{server=\"mem\"} 1\n"));
        assert!(text.contains("m{server=\"db\",direction=\"in\"} 2\n"));
        let help = text.find("# HELP m ").unwrap();
        assert!(text.find("x_total{server=\"mem\"}").unwrap() < help);
    }
}
