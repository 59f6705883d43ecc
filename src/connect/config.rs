//! `connect`'s settings, validated: the URL, headers with `${VAR}` expanded, the CA bundle read.
//! Everything that can be wrong with the command line is found here, before any traffic.

use crate::cli::{ConnectArgs, TransportChoice};
use crate::gateway::ExpandError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Validated options of `connect`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The remote MCP endpoint (http or https).
    pub url: Url,
    /// Which transport to speak, or `auto` to detect it.
    pub transport: TransportChoice,
    /// Extra headers for every request; values are marked sensitive so logs never show them.
    pub headers: HeaderMap,
    /// Reach the remote through this Unix socket instead of TCP.
    pub unix: Option<PathBuf>,
    /// How long a message waits for an unreachable remote before it gets an error.
    pub connect_timeout: Duration,
    /// Largest message taken from the agent or the remote.
    pub max_message_size: usize,
    /// Extra trusted CA certificates (from `--ca-cert`).
    pub ca_certs: Vec<reqwest::Certificate>,
    /// OAuth access tokens for every request: only the gateway's relay on the host has one
    /// (`mcp-bridge login`); `connect` in a sandbox never does.
    pub auth: Option<std::sync::Arc<crate::oauth::TokenProvider>>,
}

/// What is wrong with `connect`'s command line. Messages name the flag and never a header value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("URL `{url}`: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it does not parse (in the message, not a source: logs print it once).
        why: url::ParseError,
    },
    /// The URL is not http or https.
    #[error("URL `{0}`: the scheme must be http or https")]
    Scheme(String),
    /// A `--header` without a colon (only its first word is kept: the rest may be a secret).
    #[error("--header `{0}` is not `Name: value`")]
    HeaderShape(String),
    /// A `--header` name that HTTP does not allow.
    #[error("--header: `{0}` is not a valid header name")]
    HeaderName(String),
    /// A `${VAR}` in a `--header` value that is not set.
    #[error("--header {name}: environment variable {var} is not set")]
    HeaderVariable {
        /// The header.
        name: HeaderName,
        /// The missing variable.
        var: String,
    },
    /// A `--header` value whose `${…}` cannot be expanded (the message never holds the value).
    #[error("--header {name}: {why}")]
    HeaderExpand {
        /// The header.
        name: HeaderName,
        /// What is wrong with the `${…}`.
        why: crate::gateway::ExpandError,
    },
    /// A `--header` value with characters a header cannot carry.
    #[error("--header {0}: the value has characters a header cannot carry")]
    HeaderValue(HeaderName),
    /// `--ca-cert` cannot be read.
    #[error("cannot read --ca-cert {}: {why}", path.display())]
    CaCertRead {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        why: std::io::Error,
    },
    /// `--ca-cert` is not PEM.
    #[error("--ca-cert {}: not a PEM certificate: {why}", path.display())]
    CaCertParse {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        why: reqwest::Error,
    },
    /// `--session-key` with characters or a length the bridge does not accept.
    #[error(
        "--session-key: use 1 to {} letters, digits or -._:@+=/",
        crate::wire::SESSION_KEY_MAX
    )]
    SessionKey,
    /// A duration or size outside what the bridge can honour.
    #[error("{0}")]
    Range(String),
    /// `--ca-cert` holds no certificate.
    #[error("--ca-cert {}: no certificate found", .0.display())]
    CaCertEmpty(PathBuf),
}

impl TryFrom<ConnectArgs> for Config {
    type Error = ConfigError;

    fn try_from(args: ConnectArgs) -> Result<Config, ConfigError> {
        let url = Url::parse(&args.url).map_err(|why| ConfigError::Url {
            url: redact_url(&args.url),
            why,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Scheme(redact_url(&args.url)));
        }
        if args.connect_timeout > MAX_CONNECT_TIMEOUT {
            return Err(ConfigError::Range(format!(
                "--connect-timeout {:?} is over the {}-hour limit",
                args.connect_timeout,
                MAX_CONNECT_TIMEOUT.as_secs() / 3600
            )));
        }
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&args.max_message_size) {
            return Err(ConfigError::Range(format!(
                "--max-message-size {} is outside {MIN_MESSAGE_SIZE} bytes to {} GiB",
                args.max_message_size,
                MAX_MESSAGE_SIZE >> 30
            )));
        }
        let ca_certs = match &args.ca_cert {
            Some(path) => read_ca_certs(path)?,
            None => Vec::new(),
        };
        Ok(Config {
            url,
            transport: args.transport,
            headers: with_session_key(parse_headers(&args.headers)?, args.session_key.as_deref())?,
            unix: args.unix,
            connect_timeout: args.connect_timeout,
            max_message_size: args.max_message_size,
            ca_certs,
            auth: None,
        })
    }
}

/// Longest `--connect-timeout`: a message waiting longer than a day is a typo, and sums of
/// instants past it could overflow.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Smallest `--max-message-size`: an `initialize` must fit.
const MIN_MESSAGE_SIZE: usize = 1024;
/// Largest `--max-message-size`: one message is held whole in memory.
const MAX_MESSAGE_SIZE: usize = 4 << 30;

/// `url` as it may appear in logs and errors: userinfo and query (where tokens travel) are
/// replaced by `***`. Works on text that does not parse as a URL too.
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(start);
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let mut out = String::from(head);
    match authority.rfind('@') {
        Some(at) => {
            out.push_str("***");
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    match tail.find(['?', '#']) {
        Some(q) => {
            out.push_str(&tail[..q]);
            out.push_str(if tail[q..].starts_with('?') {
                "?***"
            } else {
                "#***"
            });
        }
        None => out.push_str(tail),
    }
    out
}

fn read_ca_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let pem = std::fs::read(path).map_err(|why| ConfigError::CaCertRead {
        path: path.to_owned(),
        why,
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|why| ConfigError::CaCertParse {
            path: path.to_owned(),
            why,
        })?;
    if certs.is_empty() {
        return Err(ConfigError::CaCertEmpty(path.to_owned()));
    }
    Ok(certs)
}

/// Adds the `--session-key` header (replacing one given with `--header`).
fn with_session_key(mut map: HeaderMap, key: Option<&str>) -> Result<HeaderMap, ConfigError> {
    if let Some(key) = key {
        if !crate::wire::valid_session_key(key) {
            return Err(ConfigError::SessionKey);
        }
        let value =
            reqwest::header::HeaderValue::from_str(key).map_err(|_| ConfigError::SessionKey)?;
        map.insert(crate::wire::SESSION_KEY, value);
    }
    Ok(map)
}

/// Parses `Name: value` header flags, expanding `${VAR}` in values from the environment.
pub(crate) fn parse_headers(specs: &[String]) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (name, value) = spec
            .split_once(':')
            .ok_or_else(|| ConfigError::HeaderShape(header_name_only(spec).to_owned()))?;
        let name = HeaderName::try_from(name.trim())
            .map_err(|_| ConfigError::HeaderName(name.trim().to_owned()))?;
        let value = crate::gateway::expand_vars(value.trim(), |var| std::env::var(var).ok())
            .map_err(|e| match e {
                ExpandError::Unset(var) => ConfigError::HeaderVariable {
                    name: name.clone(),
                    var,
                },
                why => ConfigError::HeaderExpand {
                    name: name.clone(),
                    why,
                },
            })?;
        let mut value =
            HeaderValue::try_from(value).map_err(|_| ConfigError::HeaderValue(name.clone()))?;
        // Keeps the value out of any Debug output (and so out of logs).
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn header_name_only(spec: &str) -> &str {
    // Never echo a whole header spec: its value may be a secret.
    spec.split_whitespace().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_with_the_gateway_rules() {
        let home = std::env::var("HOME").unwrap_or_default();
        let map =
            parse_headers(&["X-A: ${HOME}/$$5 ${MCP_BRIDGE_TEST_UNSET_B:-dflt}".into()]).unwrap();
        assert_eq!(map["x-a"], format!("{home}/$5 dflt").as_str());
        let err = parse_headers(&["X-Key: Bearer s3cret ${unclosed".into()]).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("X-Key") || err.to_string().contains("x-key"));
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("https://user:pw@h:1/p/a?token=s#f"),
            "https://***@h:1/p/a?***"
        );
        assert_eq!(redact_url("http://h/mcp"), "http://h/mcp");
        assert_eq!(redact_url("http://h/mcp#x"), "http://h/mcp#***");
        assert_eq!(redact_url("ht tp://a:b@c?d"), "ht tp://***@c?***");
        assert_eq!(redact_url("no-scheme?key"), "no-scheme?***");
    }

    #[test]
    fn header_errors_name_the_header_not_the_value() {
        let err = parse_headers(&["X-Key: ${MCP_BRIDGE_TEST_UNSET_VAR}".into()]).unwrap_err();
        assert!(err.to_string().contains("MCP_BRIDGE_TEST_UNSET_VAR"));
        let err = parse_headers(&["Authorization Bearer abc".into()]).unwrap_err();
        assert!(!err.to_string().contains("abc"));
    }

    #[test]
    fn only_http_urls_are_taken() {
        let args = |url: &str| ConnectArgs {
            url: url.into(),
            transport: TransportChoice::Auto,
            headers: Vec::new(),
            unix: None,
            connect_timeout: Duration::from_secs(1),
            max_message_size: 1024,
            ca_cert: None,
            session_key: None,
        };
        assert!(Config::try_from(args("http://127.0.0.1:1/mcp")).is_ok());
        assert!(matches!(
            Config::try_from(args("ftp://host/")),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            Config::try_from(args("not a url")),
            Err(ConfigError::Url { .. })
        ));
    }
}
