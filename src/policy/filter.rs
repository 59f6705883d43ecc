//! List filtering: the answers to `tools/list`, `prompts/list`, `resources/list` and
//! `resources/templates/list` lose the entries the client's rules do not expose. Only the array
//! is rewritten; every other byte (`nextCursor`, `_meta`, unknown fields, the id) stays as the
//! server sent it, so pagination still leads on even when a page comes out shorter or empty.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::check::ToolCatalog;
use super::rules::{Patterns, Rules};
use crate::jsonrpc::{self, Id};

/// A list answer the gateway could not read, so it cannot tell what it would expose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server's {method} answer could not be filtered by policy: {detail}")]
pub struct FilterError {
    /// The list method whose answer it was.
    pub method: String,
    /// What could not be read.
    pub detail: String,
}

impl FilterError {
    /// The bridge error that replaces the answer, for request `id` (raw JSON text):
    /// code -32000, `data.reason` = `policy-unfilterable`.
    pub fn response(&self, id: &str) -> Bytes {
        jsonrpc::error_response(
            Some(&Id(id.into())),
            jsonrpc::BRIDGE_ERROR,
            &self.to_string(),
            Some(serde_json::json!({"source": "mcp-bridge", "reason": "policy-unfilterable"})),
        )
    }
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ListResult<'a> {
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
    #[serde(borrow)]
    prompts: Option<&'a RawValue>,
    #[serde(borrow)]
    resources: Option<&'a RawValue>,
    #[serde(borrow, rename = "resourceTemplates")]
    templates: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "uriTemplate")]
    uri_template: Option<Cow<'a, str>>,
    #[serde(borrow)]
    annotations: Option<Annotations<'a>>,
}

#[derive(Deserialize)]
struct Annotations<'a> {
    #[serde(borrow, rename = "readOnlyHint")]
    read_only: Option<&'a RawValue>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

/// Filters the answer to a list request of `method` (the method of the request it answers).
/// `Ok(None)`: send the answer as it is (not a list method, an error answer, or nothing
/// removed); `Ok(Some(bytes))`: send these instead; `Err`: send [`FilterError::response`].
/// With `read_only` rules, the tools seen teach `catalog` which are read-only. Methods whose
/// kind has no rules return `Ok(None)` without parsing.
pub fn filter_list(
    rules: &Rules,
    catalog: &ToolCatalog,
    method: &str,
    answer: &[u8],
) -> Result<Option<Bytes>, FilterError> {
    let (list, patterns) = match method {
        "tools/list" => (List::Tools, &rules.tools),
        "prompts/list" => (List::Prompts, &rules.prompts),
        "resources/list" => (List::Resources, &rules.resources),
        "resources/templates/list" => (List::Templates, &rules.resources),
        _ => return Ok(None),
    };
    let read_only = list == List::Tools && rules.read_only;
    if patterns.is_open() && !read_only {
        return Ok(None);
    }
    let fail = |detail: String| FilterError {
        method: method.to_owned(),
        detail,
    };
    let text = std::str::from_utf8(answer).map_err(|e| fail(format!("invalid UTF-8: {e}")))?;
    let parsed: Answer<'_> = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
    let result = match (parsed.result, parsed.error) {
        (Some(result), None) => result,
        // An error answer, or not an answer at all: nothing is listed, nothing to hide.
        _ => return Ok(None),
    };
    let fields: ListResult<'_> =
        serde_json::from_str(result.get()).map_err(|e| fail(e.to_string()))?;
    let array = match list {
        List::Tools => fields.tools,
        List::Prompts => fields.prompts,
        List::Resources => fields.resources,
        List::Templates => fields.templates,
    };
    let Some(array) = array else {
        return Ok(None);
    };
    let entries: Vec<&RawValue> =
        serde_json::from_str(array.get()).map_err(|e| fail(e.to_string()))?;
    let mut kept: Vec<&str> = Vec::with_capacity(entries.len());
    for entry in &entries {
        if exposed(entry, list, patterns, read_only, catalog) {
            kept.push(entry.get());
        }
    }
    if kept.len() == entries.len() {
        return Ok(None);
    }
    let start =
        offset_in(text, array.get()).ok_or_else(|| fail("internal: array not found".into()))?;
    let end = start + array.get().len();
    let mut out = Vec::with_capacity(answer.len());
    out.extend_from_slice(&answer[..start]);
    out.push(b'[');
    for (i, entry) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(entry.as_bytes());
    }
    out.push(b']');
    out.extend_from_slice(&answer[end..]);
    Ok(Some(Bytes::from(out)))
}

fn exposed(
    entry: &RawValue,
    list: List,
    patterns: &Patterns,
    read_only: bool,
    catalog: &ToolCatalog,
) -> bool {
    // An entry the gateway cannot read is dropped: it cannot tell whether it would be exposed.
    let Ok(e) = serde_json::from_str::<Entry<'_>>(entry.get()) else {
        return false;
    };
    let name = match list {
        List::Tools | List::Prompts => e.name,
        List::Resources => e.uri,
        List::Templates => e.uri_template,
    };
    let Some(name) = name else {
        return false;
    };
    if list != List::Tools {
        return patterns.refusal(&name).is_none();
    }
    let hint = e
        .annotations
        .and_then(|a| a.read_only)
        .is_some_and(|v| v.get().trim() == "true");
    if read_only {
        catalog.learn(&name, hint);
    }
    patterns.refusal(&name).is_none() && (!read_only || hint)
}

/// Where `part` (a slice of `whole`, as serde's borrowed raw values are) starts in `whole`.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (whole.get(start..start + part.len()) == Some(part)).then_some(start)
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
