//! `Mcp-Param-*` validation for the stateless revision. The bridge is the server the client sees,
//! so it checks each `tools/call`'s parameter headers against the tool's input schema. Schemas
//! come from a `tools/list` the bridge sends to the stateless child itself; the listing is kept
//! for a minute, dropped when the child says its tools changed, and refreshed (at most every two
//! seconds) when a call names a tool it does not know. If the listing fails, calls pass unchecked.

use crate::serve::stateless::child::StatelessChild;
use crate::wire::stateless::{
    CAPABILITIES_KEY, ParamMap, VERSION_KEY, argument_at, decode_header_value, header_params,
    param_text,
};
use crate::wire::{PARAM_PREFIX, STATELESS_VERSION};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a listing is trusted.
const FRESH: Duration = Duration::from_secs(60);
/// A call naming an unknown tool relists only if the listing is at least this old.
const RELIST_AFTER: Duration = Duration::from_secs(2);
/// How long the bridge waits for one page of its own listing.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// A listing longer than this many pages is cut short.
const MAX_PAGES: usize = 50;

/// The tools of the latest listing.
#[derive(Debug)]
pub struct ToolCache {
    at: Instant,
    /// Tool name -> its header-mapped arguments; `None` when its annotations are invalid.
    tools: HashMap<String, Option<ParamMap>>,
}

/// The bridge's own `_meta` envelope, for the requests it makes itself.
pub fn own_envelope() -> Value {
    json!({
        VERSION_KEY: STATELESS_VERSION,
        CAPABILITIES_KEY: {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// The tool listing of the stateless child, kept between calls.
#[derive(Debug, Default)]
pub struct Tools {
    cache: Mutex<Option<ToolCache>>,
}

impl Tools {
    /// Forgets the listing (the child said its tools changed).
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The header-mapped arguments of `tool`, or `None` when its calls cannot be checked.
    pub async fn params_for(&self, child: &Arc<StatelessChild>, tool: &str) -> Option<ParamMap> {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.as_ref().filter(|c| c.at.elapsed() < FRESH) {
                if let Some(entry) = c.tools.get(tool) {
                    return entry.clone();
                }
                if c.at.elapsed() < RELIST_AFTER {
                    return None;
                }
            }
        }
        let tools = list_tools(child).await?;
        let entry = tools.get(tool).cloned().flatten();
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(ToolCache {
            at: Instant::now(),
            tools,
        });
        entry
    }
}

/// Lists the child's tools, page by page, with the header-mapped arguments of each.
async fn list_tools(child: &Arc<StatelessChild>) -> Option<HashMap<String, Option<ParamMap>>> {
    let mut tools = HashMap::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let mut params = json!({"_meta": own_envelope()});
        if let Some(c) = cursor.take() {
            params["cursor"] = c;
        }
        let req = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": params});
        let answer = child.ask(req, LIST_TIMEOUT, true).await;
        let Some(result) = answer.as_ref().and_then(|a| a.get("result")) else {
            tracing::debug!("listing the child's tools failed; Mcp-Param-* go unchecked");
            return None;
        };
        for tool in result["tools"].as_array().into_iter().flatten() {
            let Some(name) = tool["name"].as_str() else {
                continue;
            };
            let map = match header_params(&tool["inputSchema"]) {
                Ok(map) => Some(map),
                Err(why) => {
                    tracing::warn!(tool = name, "its Mcp-Param-* are not checked: {why}");
                    None
                }
            };
            tools.insert(name.to_owned(), map);
        }
        match result.get("nextCursor") {
            Some(c) if !c.is_null() => cursor = Some(c.clone()),
            _ => return Some(tools),
        }
    }
    Some(tools)
}

/// Checks a call's `Mcp-Param-*` headers against its arguments: a header for each mapped
/// argument present (equal after decoding; integers compared as numbers), none for one absent.
pub fn check_params(headers: &HeaderMap, map: &ParamMap, arguments: &Value) -> Result<(), String> {
    for (path, token) in map {
        let name = format!("{PARAM_PREFIX}{}", token.to_ascii_lowercase());
        let dotted = path.join(".");
        let mut values = headers.get_all(name.as_str()).iter();
        let header = values.next();
        if values.next().is_some() {
            return Err(format!("Mcp-Param-{token} header is given more than once"));
        }
        let value = argument_at(arguments, path).filter(|v| !v.is_null());
        let expected = value.and_then(param_text);
        let (header, expected) = match (header, expected) {
            (None, None) => continue,
            (Some(_), None) if value.is_none() => {
                return Err(format!(
                    "Mcp-Param-{token} header is present but the request body has no '{dotted}' argument"
                ));
            }
            // An object or array argument has no header form: nothing to compare.
            (_, None) => continue,
            (None, Some(_)) => {
                return Err(format!(
                    "Mcp-Param-{token} header is missing but the request body's '{dotted}' argument is present"
                ));
            }
            (Some(h), Some(e)) => (h, e),
        };
        let decoded = header
            .to_str()
            .ok()
            .and_then(decode_header_value)
            .ok_or_else(|| format!("Mcp-Param-{token} header is not a valid header value"))?;
        let same = if value.is_some_and(Value::is_number) {
            decoded.trim().parse::<f64>().ok() == expected.parse::<f64>().ok()
        } else {
            decoded == expected
        };
        if !same {
            return Err(format!(
                "Mcp-Param-{token} header does not match the request body's '{dotted}' argument"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn map() -> ParamMap {
        vec![
            (vec!["region".into()], "Region".into()),
            (vec!["a".into()], "A".into()),
        ]
    }

    #[test]
    fn params_must_mirror_the_arguments() {
        let mut h = HeaderMap::new();
        let args = json!({"region": "Hello, 世界", "a": 42});
        assert!(check_params(&h, &map(), &args).is_err(), "missing");
        h.insert(
            "mcp-param-region",
            HeaderValue::from_static("=?base64?SGVsbG8sIOS4lueVjA==?="),
        );
        h.insert("mcp-param-a", HeaderValue::from_static("42.0"));
        assert_eq!(check_params(&h, &map(), &args), Ok(()));
        h.insert("mcp-param-a", HeaderValue::from_static("41"));
        assert!(check_params(&h, &map(), &args).is_err(), "different");
        h.insert("mcp-param-a", HeaderValue::from_static("42"));
        h.append("mcp-param-a", HeaderValue::from_static("42"));
        assert!(check_params(&h, &map(), &args).is_err(), "twice");
        let mut h = HeaderMap::new();
        assert_eq!(check_params(&h, &map(), &json!({"a": null})), Ok(()));
        h.insert("mcp-param-region", HeaderValue::from_static("x"));
        assert!(check_params(&h, &map(), &json!({})).is_err(), "no argument");
        h.insert(
            "mcp-param-region",
            HeaderValue::from_static("=?base64?@@?="),
        );
        assert!(check_params(&h, &map(), &json!({"region": "x"})).is_err());
    }
}
