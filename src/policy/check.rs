//! The check on a request before it reaches the server: `tools/call`, `prompts/get`,
//! `resources/read`, `resources/subscribe` and `completion/complete` of something the client's
//! rules do not expose are answered by the gateway and never forwarded.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Mutex;

use bytes::Bytes;
use serde::Deserialize;

use super::rules::{Refusal, Rules};
use crate::jsonrpc::{self, Id, Message};

/// What servers answer for an unknown tool or prompt (the TypeScript SDK's InvalidParams).
pub const UNKNOWN_NAME: i64 = -32602;
/// What servers answer for an unknown resource (the spec's "Resource not found").
pub const RESOURCE_NOT_FOUND: i64 = -32002;

/// Which kind of thing a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// `tools/call`.
    Tool,
    /// `prompts/get`, or a completion of a prompt's argument.
    Prompt,
    /// `resources/read` and `resources/subscribe`, or a completion of a template's argument.
    Resource,
}

impl Subject {
    /// `tool`, `prompt` or `resource`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Tool => "tool",
            Subject::Prompt => "prompt",
            Subject::Resource => "resource",
        }
    }
}

/// A request the policy refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// What kind of thing it names.
    pub subject: Subject,
    /// The tool or prompt name or resource URI asked for (empty when it could not be read).
    pub name: String,
    /// Which rule refused it.
    pub refusal: Refusal,
}

impl Denied {
    /// The JSON-RPC code: what a server answers for an unknown tool/prompt/resource, so to the
    /// agent a refused name looks like one that does not exist.
    pub fn code(&self) -> i64 {
        match self.subject {
            Subject::Tool | Subject::Prompt => UNKNOWN_NAME,
            Subject::Resource => RESOURCE_NOT_FOUND,
        }
    }

    /// The error answering request `id` (its raw JSON text, kept byte for byte).
    /// `error.data` = `{"source":"mcp-bridge","reason":"policy-denied","rule":…,"tool"|"prompt"|"resource":…}`.
    pub fn response(&self, id: &str) -> Bytes {
        let what = self.subject.as_str();
        // The name is the client's own text: echo a bounded part of it.
        let shown: String = self.name.chars().take(200).collect();
        let message = match self.refusal {
            Refusal::Malformed => format!(
                "{what} request refused by the gateway's policy: it does not name a {what} the policy can check"
            ),
            Refusal::NotReadOnly if self.subject == Subject::Tool => format!(
                "unknown tool `{}`: this client may only call tools marked read-only (list the tools to see them)",
                shown
            ),
            _ => format!("unknown {what} `{shown}`: not available to this client (gateway policy)"),
        };
        let mut data = serde_json::json!({
            "source": "mcp-bridge",
            "reason": "policy-denied",
            "rule": self.refusal.as_str(),
            "mayHaveRun": false,
        });
        data[what] = shown.into();
        jsonrpc::error_response(Some(&Id(id.into())), self.code(), &message, Some(data))
    }
}

/// Which tools a server has said are read-only (`annotations.readOnlyHint: true`), learnt from
/// its `tools/list` answers as they pass through [`filter_list`](super::filter::filter_list).
/// serve keeps one per child process and calls [`clear`](Self::clear) when that child sends
/// `notifications/tools/list_changed`. A tool not seen in a list is not read-only (fail closed).
#[derive(Debug, Default)]
pub struct ToolCatalog {
    read_only: Mutex<HashSet<String>>,
}

impl ToolCatalog {
    /// Records one listed tool.
    pub fn learn(&self, name: &str, read_only: bool) {
        let mut set = self.read_only.lock().unwrap_or_else(|e| e.into_inner());
        if read_only {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }

    /// Forgets everything: the server's tools changed.
    pub fn clear(&self) {
        self.read_only
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether `name` was listed with `readOnlyHint: true`.
    pub fn is_read_only(&self, name: &str) -> bool {
        self.read_only
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, rename = "ref")]
    reference: Option<Reference<'a>>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
}

/// What a request names, read from it once for both the rules and the audit record.
#[derive(Debug, PartialEq, Eq)]
pub struct Asked<'a> {
    /// What kind of thing it names.
    pub subject: Subject,
    /// The tool or prompt name or resource URI (`None` when the request does not say, or says it
    /// in a shape the gateway cannot read).
    pub name: Option<Cow<'a, str>>,
    /// A completion whose `ref.type` is neither `ref/prompt` nor `ref/resource`: `name` is then
    /// its name or URI for the audit log, but the rules refuse it.
    pub odd_reference: bool,
}

impl<'a> Asked<'a> {
    /// What `msg` (a single request of `method`) names: `params.name` of `tools/call` and
    /// `prompts/get` and `params.uri` of `resources/*`, as the envelope's pass found them; the
    /// reference of `completion/complete`, which is parsed here. `None` for other methods.
    pub fn of(method: &str, msg: &'a Message) -> Option<Asked<'a>> {
        let (subject, name) = match method {
            "tools/call" => (Subject::Tool, msg.param_name()),
            "prompts/get" => (Subject::Prompt, msg.param_name()),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                (Subject::Resource, msg.param_uri())
            }
            "completion/complete" => return Some(Asked::completion(&msg.raw)),
            _ => return None,
        };
        Some(Asked {
            subject,
            name: name.map(Cow::Borrowed),
            odd_reference: false,
        })
    }

    fn completion(request: &'a [u8]) -> Asked<'a> {
        let reference = serde_json::from_slice::<Request<'_>>(request)
            .ok()
            .and_then(|r| r.params)
            .and_then(|p| p.reference);
        let Some(r) = reference else {
            return Asked {
                subject: Subject::Prompt,
                name: None,
                odd_reference: false,
            };
        };
        match r.kind.as_deref() {
            Some("ref/prompt") => Asked {
                subject: Subject::Prompt,
                name: r.name,
                odd_reference: false,
            },
            Some("ref/resource") => Asked {
                subject: Subject::Resource,
                name: r.uri,
                odd_reference: false,
            },
            _ => Asked {
                subject: Subject::Prompt,
                name: r.name.or(r.uri),
                odd_reference: true,
            },
        }
    }
}

impl Rules {
    /// Checks one request (`request`: the whole message, a single JSON object; serve splits or
    /// refuses batches) before it is forwarded: the composition serve's gate makes of
    /// [`passes_unread`](Self::passes_unread), [`Asked::of`] and
    /// [`check_asked`](Self::check_asked) (which also reuses what it read for the audit
    /// record). Methods that name nothing pass without parsing, and so does every method whose
    /// kind has no rules. A request the gateway cannot read (duplicate keys, a name that is not
    /// a string) is refused: the server might read it differently.
    #[cfg(test)]
    pub fn check_call(
        &self,
        method: &str,
        request: &[u8],
        catalog: &ToolCatalog,
    ) -> Result<(), Denied> {
        if self.passes_unread(method) {
            return Ok(());
        }
        let msg = tests::parsed(request);
        match Asked::of(method, &msg) {
            Some(asked) => self.check_asked(&asked, catalog),
            None => Ok(()),
        }
    }

    /// Whether a request of `method` passes without being read: it names nothing the rules
    /// check, or no rule applies to what it names.
    pub fn passes_unread(&self, method: &str) -> bool {
        match method {
            "tools/call" => self.tools.is_open() && !self.read_only,
            "prompts/get" => self.prompts.is_open(),
            "resources/read" | "resources/subscribe" => self.resources.is_open(),
            // Completions name a prompt or a resource template: a hidden one must not leak its
            // arguments.
            "completion/complete" => self.prompts.is_open() && self.resources.is_open(),
            _ => true,
        }
    }

    /// Checks what a request names, already read with [`Asked::of`]; call it only when
    /// [`passes_unread`](Self::passes_unread) is false.
    pub fn check_asked(&self, asked: &Asked<'_>, catalog: &ToolCatalog) -> Result<(), Denied> {
        let subject = asked.subject;
        let name = match &asked.name {
            Some(name) if !asked.odd_reference => name,
            _ => {
                return Err(Denied {
                    subject,
                    name: String::new(),
                    refusal: Refusal::Malformed,
                });
            }
        };
        let refusal = match subject {
            Subject::Tool => self.tool_refusal(name, self.read_only && catalog.is_read_only(name)),
            Subject::Prompt => self.prompts.refusal(name),
            Subject::Resource => self.resources.refusal(name),
        };
        match refusal {
            None => Ok(()),
            Some(refusal) => Err(Denied {
                subject,
                name: name.clone().into_owned(),
                refusal,
            }),
        }
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
