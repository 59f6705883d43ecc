//! mcp-bridge carries Model Context Protocol messages between an agent in a sandbox and MCP
//! servers on the host. `connect` is a stdio MCP server to the agent and an HTTP client to the
//! remote (Streamable HTTP, HTTP+SSE or the stateless 2026-07-28 revision, over TCP or a Unix
//! socket); `serve` is the reverse, an HTTP MCP server in front of stdio child processes. Messages
//! pass as the bytes they came in: the bridge reads only `id`, `method` and the `initialize`
//! exchange. `wire` holds what both modes say on the wire (headers, versions, error objects).
//!
//! Where an agent's line goes in `connect`, and how the answer comes back:
//! - `stdio.rs` reads the line; `connect/mod.rs` (`run`, `dispatch`) parses it and registers its
//!   requests with `connect/outbox.rs`.
//! - A request whose `_meta` names 2026-07-28 goes to `connect/stateless/`, one POST each; the
//!   rest to the session transport, `connect/streamable/` or `connect/sse.rs` (chosen once by
//!   `connect/detect.rs` under `--transport auto`), which send and read through `connect/http.rs`.
//! - What the server sends comes back through `Outbox::forward`, failures as a
//!   `wire::BridgeError`; the outbox lets each request be answered once, and `stdio.rs` writes
//!   the line to stdout.
//!
//! Where a client's POST goes in `serve`, and how the answer comes back (`serve/guard.rs` checks
//! Host, Origin and token first; `serve/mod.rs` routes `/mcp` by `MCP-Protocol-Version`):
//! - Streamable HTTP session: `serve/streamable.rs` → `serve/session/mod.rs` (`plan`, `send`) →
//!   the child's stdin (`serve/child.rs`, or `serve/shared.rs`, which rewrites ids); stdout lines
//!   come back through `Session::deliver` into `session/log.rs`, sent as JSON or SSE by
//!   `session/stream.rs`.
//! - sse: `serve/sse.rs` (`POST /messages`) → the same `Session` and child; every answer goes out
//!   on the session's one `GET /sse` stream.
//! - stateless: `serve/stateless/mod.rs` checks the request → `stateless/child.rs` (`start`
//!   rewrites id and progress token) → the stateless child; `dispatch` restores them
//!   (`stateless/translate.rs` completes a handshake-era child's answer), sent as JSON or by
//!   `stateless/stream.rs`.
//!
//! The policy (`serve/policy/`, rules in `policy/`) sits on all three: `identify` names the
//! client after the guard; each path hands its message to the gate once (`policy::forward` after
//! `Session::plan`, `policy::admit` before `stateless/child.rs`'s `start_watched`), which answers
//! a refused request itself; the answer passes the request's `Ticket` (list filter, audit line)
//! in `Session::answer` or the stateless child's `answered`.

#![warn(missing_docs)]
// `deny`, not `forbid`: one audited function (serve's child parent-death signal) allows it.
#![deny(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub(crate) mod chunks;
pub mod cli;
pub mod cli_out;
pub mod connect;
pub mod doctor;
pub mod example_server;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub(crate) mod jsonrpc;
pub mod net;
pub mod oauth;
pub mod policy;
pub mod resolve;
pub mod rewrite;
pub mod serve;
pub mod signal;
pub mod sse;
pub mod stdio;
pub(crate) mod wire;
