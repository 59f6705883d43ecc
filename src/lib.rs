//! mcp-bridge carries Model Context Protocol messages between an agent in a sandbox and MCP
//! servers on the host. `connect` is a stdio MCP server to the agent and an HTTP client to the
//! remote (Streamable HTTP or legacy SSE, over TCP or a Unix socket); `serve` is the reverse, an
//! HTTP MCP server in front of stdio child processes. Messages pass as the bytes they came in:
//! the bridge reads only `id`, `method` and the `initialize` exchange.

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod chunks;
pub mod cli;
pub mod cli_out;
pub mod connect;
pub mod doctor;
pub mod example_server;
pub mod jsonrpc;
pub mod net;
pub mod resolve;
pub mod rev2026;
pub mod serve;
pub mod signal;
pub mod sse;
pub mod stdio;
