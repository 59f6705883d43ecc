//! Entry point: parse the command line, send logs to stderr, run the chosen mode, and turn its
//! outcome into an exit code.

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout)]

use clap::Parser;
use mcp_bridge::cli::{Cli, Command};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &cli.command {
        Command::Completions { shell } => {
            return print(mcp_bridge::cli_out::write_stdout(
                &mcp_bridge::cli_out::completions(*shell),
            ));
        }
        Command::Man => {
            return print(
                mcp_bridge::cli_out::man_page()
                    .and_then(|page| mcp_bridge::cli_out::write_stdout(&page)),
            );
        }
        _ => {}
    }

    // connect relays one agent's traffic: one thread is enough and keeps latency and memory low.
    // serve handles many sessions, but each call also wakes a child process: by default it
    // leaves half the cores to the children (see `serve_workers`).
    let runtime = match &cli.command {
        Command::Connect(_)
        | Command::Login(_)
        | Command::Logout(_)
        | Command::ExampleServer
        | Command::Doctor(_)
        | Command::Completions { .. }
        | Command::Man => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(serve_workers(args.workers))
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let mut doctor_failed = false;
    let result: anyhow::Result<()> = runtime.block_on(async {
        mcp_bridge::signal::cancel_on_signal(shutdown.clone())?;
        match cli.command {
            Command::Connect(args) => {
                let config = mcp_bridge::connect::Config::try_from(args)?;
                let io = mcp_bridge::stdio::Stdio::process();
                Ok(mcp_bridge::connect::run(config, io, shutdown).await?)
            }
            Command::Serve(args) if args.config.is_some() => serve_file(args, shutdown).await,
            Command::Serve(args) => {
                let config = mcp_bridge::serve::Config::try_from(args)?;
                let listeners = mcp_bridge::serve::bind(&config).await?;
                mcp_bridge::serve::run(config, listeners, shutdown).await;
                Ok(())
            }
            Command::Login(args) => Ok(mcp_bridge::oauth::cmd::run_login(args, shutdown).await?),
            Command::Logout(args) => Ok(mcp_bridge::oauth::cmd::run_logout(args).await?),
            Command::ExampleServer => mcp_bridge::example_server::run(shutdown).await,
            Command::Doctor(args) => {
                // Every check ran and was reported: failures are the exit code, not an error.
                let passed = mcp_bridge::doctor::run(args).await?;
                if !passed {
                    doctor_failed = true;
                }
                Ok(())
            }
            Command::Completions { .. } | Command::Man => Ok(()),
        }
    });
    // Blocking stdin reads must not keep the process alive after the work is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) if doctor_failed => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code of a command that only prints.
/// serve's runtime threads: `--workers`, else half the cores, at least one. On the 2-core
/// benchmark machine one worker beats two on both latency and calls/s (bench/README.md): the
/// child, the client and serve otherwise contend for the same cores, with a cross-thread wake-up
/// per message.
fn serve_workers(asked: Option<u16>) -> usize {
    asked.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .max(1)
        },
        usize::from,
    )
}

fn print(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot write stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `serve --config FILE`: refuses a bad file (naming the JSON path), prints the client config,
/// or serves every server of the file.
async fn serve_file(
    args: mcp_bridge::cli::ServeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let path = args.config.clone().unwrap_or_default();
    let print = args.print_client_config;
    let file = match mcp_bridge::gateway::File::load(&path) {
        // The printed config holds names only: a variable set only where the gateway runs
        // (a token for a header) need not be set to print it.
        Err(e) if print => mcp_bridge::gateway::File::load_with(&path, &|k| {
            Some(std::env::var(k).unwrap_or_default())
        })
        .map_err(|_| e)?,
        loaded => loaded?,
    };
    let text = print.then(|| (args.socket.clone(), args.url.clone()));
    let config = mcp_bridge::serve::gateway_config(args, &file)?;
    if let Some((socket, url)) = text {
        let text = mcp_bridge::serve::client_config_text(socket, url.as_deref(), &file, &config)?;
        // The one thing this mode prints: the config the user redirects into the sandbox.
        #[allow(clippy::print_stdout)]
        {
            print!("{text}");
        }
        return Ok(());
    }
    let listeners = mcp_bridge::serve::bind(&config).await?;
    mcp_bridge::serve::run_gateway(config, file, listeners, shutdown).await;
    Ok(())
}

fn init_logging(cli: &Cli) {
    let filter = if let Some(level) = &cli.log_level {
        EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
    } else if let Ok(env) = std::env::var("RUST_LOG") {
        EnvFilter::try_new(env).unwrap_or_else(|_| EnvFilter::new("info"))
    } else {
        EnvFilter::new(match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        })
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
