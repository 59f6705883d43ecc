//! What is measured: the direct connections, `mcp-bridge connect` on both transports, the peer
//! bridges on both transports, and the gateways (`mcp-bridge serve` and its peers) in front of
//! the stdio server. A tool that is missing becomes a target with the reason it is n/a.

use crate::gateway::free_port;
use crate::measure::{Cmd, Target, Via};
use std::path::{Path, PathBuf};

/// Where the tools under test are.
pub struct Tools {
    /// The mcp-bridge binary.
    pub bridge: PathBuf,
    /// bench/.peers, as filled by bench/setup.sh.
    pub peers: PathBuf,
    /// This program, which is also the stdio server.
    pub me: PathBuf,
}

impl Tools {
    fn node_peer(&self, package: &str, script: &str) -> Result<Cmd, String> {
        let script = self
            .peers
            .join(package)
            .join("node_modules")
            .join(package)
            .join(script);
        if !script.is_file() {
            return Err(format!("n/a: {package} not installed (run bench/setup.sh)"));
        }
        Ok(Cmd {
            program: "node".into(),
            args: vec![script.display().to_string()],
            env: vec![],
        })
    }

    fn mcp_remote(&self) -> Result<Cmd, String> {
        let mut cmd = self.node_peer("mcp-remote", "dist/proxy.js")?;
        // Keeps its token cache out of the user's home.
        let dir = self.peers.join("mcp-remote-config");
        cmd.env
            .push(("MCP_REMOTE_CONFIG_DIR".into(), dir.display().to_string()));
        Ok(cmd)
    }

    fn supergateway(&self) -> Result<Cmd, String> {
        self.node_peer("supergateway", "dist/index.js")
    }

    fn mcp_proxy(&self) -> Result<Cmd, String> {
        let program = self.peers.join("mcp-proxy").join("bin").join("mcp-proxy");
        if !program.is_file() {
            return Err("n/a: mcp-proxy not installed (run bench/setup.sh)".into());
        }
        Ok(Cmd {
            program,
            args: vec![],
            env: vec![],
        })
    }

    /// mcp-bridge, with logs at `warn`.
    pub fn bridge(&self) -> Result<Cmd, String> {
        if !self.bridge.is_file() {
            return Err(format!("n/a: {} not built", self.bridge.display()));
        }
        Ok(Cmd {
            program: self.bridge.clone(),
            args: vec![],
            env: vec![("RUST_LOG".into(), "warn".into())],
        })
    }

    /// The benchmark's stdio server (this program).
    pub fn stdio_server(&self) -> Cmd {
        Cmd {
            program: self.me.clone(),
            args: vec!["stdio-server".into()],
            env: vec![],
        }
    }
}

fn target(name: &str, cmd: Result<Cmd, String>, extra: &[&str]) -> Target {
    match cmd {
        Ok(mut cmd) => {
            cmd.args.extend(extra.iter().map(|s| s.to_string()));
            Target {
                name: name.into(),
                via: Via::Stdio(cmd),
                unavailable: None,
            }
        }
        Err(why) => Target {
            name: name.into(),
            via: Via::DirectHttp(String::new()),
            unavailable: Some(why),
        },
    }
}

/// The stdio bridges and direct connections to the server at `base` (`http://127.0.0.1:PORT`).
pub fn connect_targets(tools: &Tools, base: &str) -> Vec<Target> {
    let mcp = format!("{base}/mcp");
    let sse = format!("{base}/sse");
    vec![
        Target {
            name: "direct (Streamable HTTP)".into(),
            via: Via::DirectHttp(mcp.clone()),
            unavailable: None,
        },
        Target {
            name: "direct (legacy SSE)".into(),
            via: Via::DirectSse(sse.clone()),
            unavailable: None,
        },
        target(
            "mcp-bridge connect (Streamable HTTP)",
            tools.bridge(),
            &["connect", "--transport", "streamable", &mcp],
        ),
        target(
            "mcp-bridge connect (legacy SSE)",
            tools.bridge(),
            &["connect", "--transport", "sse", &sse],
        ),
        target(
            "mcp-remote (Streamable HTTP)",
            tools.mcp_remote(),
            &[&mcp, "--transport", "http-only"],
        ),
        target(
            "mcp-remote (legacy SSE)",
            tools.mcp_remote(),
            &[&sse, "--transport", "sse-only"],
        ),
        target(
            "supergateway (Streamable HTTP)",
            tools.supergateway(),
            &["--streamableHttp", &mcp, "--logLevel", "none"],
        ),
        target(
            "supergateway (legacy SSE)",
            tools.supergateway(),
            &["--sse", &sse, "--logLevel", "none"],
        ),
        target(
            "mcp-proxy (Streamable HTTP)",
            tools.mcp_proxy(),
            &["--transport", "streamablehttp", &mcp],
        ),
        target(
            "mcp-proxy (legacy SSE)",
            tools.mcp_proxy(),
            &["--transport", "sse", &sse],
        ),
    ]
}

fn gateway(name: &str, cmd: Result<Cmd, String>, port: u16, args: Vec<String>) -> Target {
    gateway_at(name, cmd, port, args, "/mcp", vec![])
}

/// A gateway serving at `path` on `port`, driven with `headers` on every request.
pub fn gateway_at(
    name: &str,
    cmd: Result<Cmd, String>,
    port: u16,
    args: Vec<String>,
    path: &str,
    headers: Vec<(String, String)>,
) -> Target {
    match cmd {
        Ok(mut cmd) => {
            cmd.args.extend(args);
            Target {
                name: name.into(),
                via: Via::Gateway {
                    cmd,
                    url: format!("http://127.0.0.1:{port}{path}"),
                    port,
                    headers,
                },
                unavailable: None,
            }
        }
        Err(why) => Target {
            name: name.into(),
            via: Via::DirectHttp(String::new()),
            unavailable: Some(why),
        },
    }
}

/// The stdio server driven directly, a bare HTTP round trip to the benchmark server at `base`,
/// and each gateway in front of the stdio server, over Streamable HTTP. serve's configurations
/// (gateway file, policy, audit log) are written to `dir`.
pub fn serve_targets(tools: &Tools, base: &str, dir: &Path) -> Vec<Target> {
    let server = tools.stdio_server();
    let server_line = shell_words(&server.program, &server.args);
    let mut out = vec![
        Target {
            name: "stdio server, direct".into(),
            via: Via::Stdio(server.clone()),
            unavailable: None,
        },
        Target {
            name: BARE.into(),
            via: Via::Bare(format!("{base}/bench/bare")),
            unavailable: None,
        },
        Target {
            name: RELAY.into(),
            via: Via::Bare(format!("{base}/bench/relay")),
            unavailable: None,
        },
    ];
    let port = || free_port().unwrap_or(0);
    let p = port();
    let mut args = vec![
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{p}"),
        // Room for the idle sessions besides the measuring one (the default is 100).
        "--max-sessions".into(),
        "1000".into(),
        "--".into(),
    ];
    args.push(server.program.display().to_string());
    args.extend(server.args.iter().cloned());
    out.push(gateway("mcp-bridge serve", tools.bridge(), p, args));
    out.extend(crate::configs::serve_configs(tools, dir));
    let p = port();
    out.push(gateway(
        "supergateway (stdio→Streamable HTTP)",
        tools.supergateway(),
        p,
        vec![
            "--stdio".into(),
            server_line.clone(),
            "--outputTransport".into(),
            "streamableHttp".into(),
            "--stateful".into(),
            "--port".into(),
            p.to_string(),
            "--logLevel".into(),
            "none".into(),
        ],
    ));
    let p = port();
    let mut args = vec![
        "--port".into(),
        p.to_string(),
        "--host".into(),
        "127.0.0.1".into(),
    ];
    args.push(server.program.display().to_string());
    args.extend(server.args.iter().cloned());
    out.push(gateway(
        "mcp-proxy (stdio→Streamable HTTP)",
        tools.mcp_proxy(),
        p,
        args,
    ));
    out
}

/// The bare HTTP round trip's row.
pub const BARE: &str = "bare HTTP round trip (axum, fixed JSON)";
/// The floor of any HTTP gateway to a stdio server: the bare round trip plus one pipe hop each
/// way to the stdio server, nothing read or checked (the benchmark server's `/bench/relay`).
pub const RELAY: &str = "bare relay to the stdio server (axum + pipe, nothing else)";

/// Whether `name` is a baseline row, measured whenever serve is.
pub fn is_baseline(name: &str) -> bool {
    name.starts_with("stdio server") || name == BARE || name == RELAY
}

fn shell_words(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}
