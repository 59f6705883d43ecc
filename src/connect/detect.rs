//! `--transport auto`: the spec's backwards-compatibility procedure. The first message is POSTed;
//! a 400, 404 or 405 means an HTTP+SSE server, whose GET stream must then open with an `endpoint`
//! event. A URL ending in `/sse` tries HTTP+SSE first. The choice, and why, is logged at info.

use super::sse::{ProbeError, Sse};
use super::streamable::{First, Streamable};
use super::{Shared, Transport};
use crate::jsonrpc::Message;
use crate::wire::{BridgeError, Reason};
use reqwest::StatusCode;

/// Decides the transport with the agent's first message of the handshake era, and sends it.
pub(super) async fn detect(shared: &Shared, msg: Message) -> Transport {
    let msg = if url_names_sse(shared) {
        match Sse::probe(shared.clone()).await {
            Ok(sse) => {
                return chose_sse(
                    sse,
                    msg,
                    "the URL ends in /sse and GET gave an endpoint event",
                )
                .await;
            }
            Err(ProbeError::NotSse) => {
                tracing::debug!("the URL ends in /sse but GET gave no event stream");
                msg
            }
            Err(ProbeError::Failed(f)) => return undecided(shared, &msg, &f).await,
        }
    } else {
        msg
    };
    let streamable = Streamable::new(shared.clone());
    match streamable.send_first(msg).await {
        First::Streamable(status) => {
            tracing::info!(
                "transport: Streamable HTTP (POST answered {})",
                status.as_u16()
            );
            Transport::Streamable(streamable)
        }
        First::Unreachable => Transport::Undecided,
        First::NotStreamable(msg, status) => fall_back(shared, msg, status).await,
    }
}

/// The POST was refused as a Streamable HTTP server would not: try the URL as HTTP+SSE.
async fn fall_back(shared: &Shared, msg: Message, post: StatusCode) -> Transport {
    tracing::debug!(status = post.as_u16(), "POST refused: trying HTTP+SSE");
    match Sse::probe(shared.clone()).await {
        Ok(sse) => {
            let why = format!("POST got {}, GET gave an endpoint event", post.as_u16());
            chose_sse(sse, msg, &why).await
        }
        Err(ProbeError::NotSse) => {
            let f = BridgeError::new(
                Reason::NoMcpEndpoint,
                false,
                format!(
                    "{} speaks neither Streamable HTTP nor HTTP+SSE",
                    shared.target
                ),
            );
            tracing::warn!("{}", f.message);
            undecided(shared, &msg, &f).await
        }
        Err(ProbeError::Failed(f)) => undecided(shared, &msg, &f).await,
    }
}

async fn chose_sse(sse: std::sync::Arc<Sse>, msg: Message, why: &str) -> Transport {
    tracing::info!("transport: sse, legacy HTTP+SSE of 2024-11-05 ({why})");
    sse.send(msg).await;
    Transport::Sse(sse)
}

/// No transport could be chosen: the message gets the error, and the next one tries again.
async fn undecided(shared: &Shared, msg: &Message, failure: &BridgeError) -> Transport {
    shared.out.fail_message(msg, failure).await;
    Transport::Undecided
}

fn url_names_sse(shared: &Shared) -> bool {
    shared
        .config
        .url
        .path()
        .trim_end_matches('/')
        .ends_with("/sse")
}
