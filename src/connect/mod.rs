//! Sandbox side: a stdio MCP server to the agent that relays every message to a remote MCP server
//! over Streamable HTTP or legacy HTTP+SSE, and every server message back to stdout.

mod http;
mod legacy;
mod modern;
pub mod outbox;
mod streamable;

use crate::cli::{ConnectArgs, TransportChoice};
use crate::jsonrpc::{self, Kind, Message};
use crate::stdio::{self, Line, Stdout};
use crate::wire::{self, BridgeError, Reason};
use bytes::Bytes;
use outbox::Outbox;
use reqwest::header::HeaderMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

/// Validated options of `connect`.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: Url,
    pub transport: TransportChoice,
    pub headers: HeaderMap,
    pub unix: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub max_message_size: usize,
    pub ca_cert: Option<PathBuf>,
}

impl TryFrom<ConnectArgs> for Config {
    type Error = anyhow::Error;

    fn try_from(args: ConnectArgs) -> anyhow::Result<Config> {
        let url = Url::parse(&args.url).map_err(|e| anyhow::anyhow!("URL `{}`: {e}", args.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("URL `{}`: the scheme must be http or https", args.url);
        }
        Ok(Config {
            url,
            transport: args.transport,
            headers: http::parse_headers(&args.headers)?,
            unix: args.unix,
            connect_timeout: args.connect_timeout,
            max_message_size: args.max_message_size,
            ca_cert: args.ca_cert,
        })
    }
}

/// What every part of a connection shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub client: reqwest::Client,
    pub out: Outbox,
    pub link: http::Link,
    /// The agent's `initialize` request and `notifications/initialized`, replayed when the
    /// remote has lost the session.
    pub handshake: Arc<Mutex<Handshake>>,
    pub tasks: TaskTracker,
    /// Cancelled when the bridge shuts down.
    pub shutdown: CancellationToken,
    /// The remote, for messages: `URL` or `URL via unix:PATH`.
    pub target: Arc<str>,
}

#[derive(Default)]
pub(crate) struct Handshake {
    pub initialize: Option<Bytes>,
    pub initialized: Option<Bytes>,
    /// Counter for the ids of requests the bridge makes itself.
    pub next_id: u64,
}

impl Shared {
    /// A fresh id for a request the bridge sends on its own; never one an agent would choose.
    pub fn bridge_id(&self) -> String {
        let mut h = self.handshake.lock().expect("handshake lock");
        h.next_id += 1;
        format!("\"mcp-bridge-{}\"", h.next_id)
    }

    /// The cached handshake, with the `initialize` request re-addressed to `id`.
    pub fn replay(&self, id: &str) -> Option<(Bytes, Option<Bytes>)> {
        let h = self.handshake.lock().expect("handshake lock");
        let init = jsonrpc::with_id(h.initialize.as_ref()?, id).ok()?;
        Some((init, h.initialized.clone()))
    }

    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.connect_timeout
    }
}

enum Transport {
    Undecided,
    Streamable(Arc<streamable::Streamable>),
    Legacy(Arc<legacy::Legacy>),
}

/// Runs the bridge until stdin ends, stdout closes, or `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = http::build_client(&config)?;
    let target: Arc<str> = match &config.unix {
        Some(path) => format!("{} via unix:{}", config.url, path.display()).into(),
        None => config.url.as_str().into(),
    };
    let stdout_closed = shutdown.child_token();
    let (stdout, writer) = Stdout::spawn(stdout_closed.clone());
    let shared = Shared {
        config: Arc::new(config),
        client,
        out: Outbox::new(stdout.clone()),
        link: http::Link::default(),
        handshake: Arc::default(),
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        target,
    };
    let mut lines = stdio::spawn_stdin_reader(shared.config.max_message_size);
    let mut transport = match shared.config.transport {
        TransportChoice::Streamable => {
            Transport::Streamable(streamable::Streamable::new(shared.clone()))
        }
        TransportChoice::Sse => Transport::Legacy(legacy::Legacy::start(shared.clone())),
        TransportChoice::Auto => Transport::Undecided,
    };

    let modern = modern::Modern::new(shared.clone());
    let mut eof = false;
    loop {
        // Each branch either waits on a channel or a token: dropping it loses nothing.
        let line = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = stdout_closed.cancelled() => break,
            line = lines.recv() => line,
        };
        let Some(line) = line else {
            eof = true;
            break;
        };
        let Some(msg) = accept(&shared.out, line).await else {
            continue;
        };
        transport = dispatch(&shared, &modern, transport, msg).await;
    }

    if eof {
        // The agent closed stdin: give answers already on their way a moment to arrive.
        // Cancel-safe: both branches only wait.
        tokio::select! {
            _ = shared.out.idle() => {}
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        tracing::debug!("stdin closed: ending the session");
    }
    match &transport {
        Transport::Streamable(s) => s.close().await,
        Transport::Legacy(l) => l.close(),
        Transport::Undecided => {}
    }
    shutdown.cancel();
    shared.tasks.close();
    let _ = tokio::time::timeout(Duration::from_millis(200), shared.tasks.wait()).await;
    drop((transport, modern, shared, stdout));
    // The writer flushes whenever its queue is idle, so everything sent so far is out; it ends
    // once the last handle is gone. A task that outlived the wait above must not hold up the exit.
    writer.finish(Duration::from_millis(300)).await;
    Ok(())
}

/// Turns a stdin line into a message, or answers it with the error it deserves.
async fn accept(out: &Outbox, line: Line) -> Option<Message> {
    let text = match line {
        Line::Text(text) => text,
        Line::TooLong { len } => {
            tracing::warn!("refused a {len}-byte message from the agent: over --max-message-size");
            let err = BridgeError::refusal(
                Reason::TooLarge,
                wire::INVALID_REQUEST,
                format!("message of {len} bytes is over the --max-message-size limit"),
            );
            out.raw(err.named_response(None)).await;
            return None;
        }
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match jsonrpc::parse(text) {
        Ok(msg) => Some(msg),
        Err(e) => {
            tracing::warn!("refused a message from the agent: {e}");
            let err = BridgeError::refusal(Reason::InvalidMessage, e.code(), e.to_string());
            out.raw(err.named_response(None)).await;
            None
        }
    }
}

/// Notes what the bridge must remember of an agent message. Returns false if the message is
/// not to be sent on (a cancellation of a 2026-07-28 request, done by closing its POST).
fn remember_handshake(
    shared: &Shared,
    modern: &modern::Modern,
    transport: &Transport,
    msg: &Message,
) -> bool {
    match msg.method() {
        Some("initialize") if matches!(msg.kind(), Kind::Request { .. }) => {
            shared.handshake.lock().expect("handshake lock").initialize = Some(msg.raw.clone());
        }
        Some("notifications/initialized") => {
            shared.handshake.lock().expect("handshake lock").initialized = Some(msg.raw.clone());
        }
        Some("notifications/cancelled") => {
            // The server will not answer a cancelled request; neither will the bridge.
            if let Some(id) = wire::cancelled_id(&msg.raw) {
                shared.out.forget(&id);
                if modern.cancel(&id) {
                    return false;
                }
            }
            // With no session of an earlier revision, there is nowhere to send it.
            if matches!(transport, Transport::Undecided) {
                tracing::debug!(
                    "dropping a cancellation for a request that is no longer in flight"
                );
                return false;
            }
        }
        _ => {}
    }
    true
}

/// Sends one agent message on its way: a 2026-07-28 request on its own, anything else on the
/// session transport (deciding which one on the first message).
async fn dispatch(
    shared: &Shared,
    modern: &Arc<modern::Modern>,
    transport: Transport,
    msg: Message,
) -> Transport {
    let version = modern::modern_version(&msg);
    if version.is_none() && !remember_handshake(shared, modern, &transport, &msg) {
        return transport;
    }
    if let Err(id) = shared.out.register(&msg) {
        tracing::warn!(
            id = id.as_json(),
            "the agent reused the id of a request still waiting"
        );
    }
    if let Some(version) = version {
        // 2026-07-28: each request stands alone, whatever the handshake state.
        modern.send(msg, version);
        return transport;
    }
    match transport {
        Transport::Streamable(s) => {
            s.send(msg).await;
            Transport::Streamable(s)
        }
        Transport::Legacy(l) => {
            l.send(msg).await;
            Transport::Legacy(l)
        }
        Transport::Undecided => detect(shared, msg).await,
    }
}

/// The spec's backwards-compatibility procedure: POST the first message; a 400, 404 or 405 means
/// the server is a legacy HTTP+SSE one. A URL ending in `/sse` tries legacy first.
async fn detect(shared: &Shared, msg: Message) -> Transport {
    if shared
        .config
        .url
        .path()
        .trim_end_matches('/')
        .ends_with("/sse")
    {
        match legacy::Legacy::probe(shared.clone()).await {
            Ok(l) => {
                tracing::info!("transport: legacy HTTP+SSE (2024-11-05)");
                l.send(msg).await;
                return Transport::Legacy(l);
            }
            Err(legacy::ProbeError::NotSse) => {}
            Err(legacy::ProbeError::Failed(f)) => {
                shared.out.fail_message(&msg, &f).await;
                return Transport::Undecided;
            }
        }
    }
    let s = streamable::Streamable::new(shared.clone());
    match s.send_first(msg).await {
        streamable::First::Streamable => {
            tracing::info!("transport: Streamable HTTP");
            Transport::Streamable(s)
        }
        streamable::First::Unreachable => Transport::Undecided,
        streamable::First::NotStreamable(msg) => {
            tracing::debug!("POST refused: trying legacy HTTP+SSE");
            match legacy::Legacy::probe(shared.clone()).await {
                Ok(l) => {
                    tracing::info!("transport: legacy HTTP+SSE (2024-11-05)");
                    l.send(msg).await;
                    Transport::Legacy(l)
                }
                Err(legacy::ProbeError::NotSse) => {
                    let f = BridgeError::new(
                        Reason::NoMcpEndpoint,
                        false,
                        format!(
                            "{} speaks neither Streamable HTTP nor HTTP+SSE",
                            shared.target
                        ),
                    );
                    tracing::warn!("{}", f.message);
                    shared.out.fail_message(&msg, &f).await;
                    Transport::Undecided
                }
                Err(legacy::ProbeError::Failed(f)) => {
                    shared.out.fail_message(&msg, &f).await;
                    Transport::Undecided
                }
            }
        }
    }
}

/// Writes one message from the server to the agent. `inspect` sees it first and may keep it back
/// (answers to the bridge's own requests). Returns false once stdout is gone.
pub(crate) async fn forward(shared: &Shared, data: Bytes) -> bool {
    match jsonrpc::parse(data) {
        Ok(msg) => shared.out.from_server(msg).await,
        Err(e) => {
            tracing::warn!("dropped a message from the server that is not JSON-RPC: {e}");
            true
        }
    }
}

/// Sends the failure for every request in `msg` (used when a message cannot be delivered).
pub(crate) async fn fail(shared: &Shared, msg: &Message, failure: &BridgeError) {
    if msg.has_requests() {
        shared.out.fail_message(msg, failure).await;
    } else {
        tracing::warn!(
            "could not deliver a {}: {}",
            msg.method().unwrap_or("message"),
            failure.message
        );
    }
}
