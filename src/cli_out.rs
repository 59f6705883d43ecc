//! Output of the commands whose stdout is a report or a file rather than a protocol channel:
//! `completions`, `man` and `doctor`. The one writer here is the only other place allowed to
//! touch stdout besides [`crate::stdio`], and no protocol ever runs in the same process.

use clap::CommandFactory;
use std::io::Write;

/// Writes `bytes` to stdout and flushes. A closed pipe (`… | head`) is not an error.
// These commands print a document for a person or a script; they never run next to `connect`'s
// or `example-server`'s JSON-RPC stdout.
#[allow(clippy::disallowed_methods)]
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The completion script for `shell`, generated from the clap definitions.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = crate::cli::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mcp-bridge", &mut buf);
    buf
}

/// The manual page (roff) for the command and every subcommand, generated from the clap
/// definitions.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = crate::cli::Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        // clap keeps names as &'static str: leak the few subcommand names once.
        let name: &'static str = format!("mcp-bridge-{}", sub.get_name()).leak();
        let sub = sub.clone().name(name).bin_name(name);
        buf.extend_from_slice(b"\n");
        let man = clap_mangen::Man::new(sub);
        man.render_name_section(&mut buf)?;
        man.render_synopsis_section(&mut buf)?;
        man.render_description_section(&mut buf)?;
        man.render_options_section(&mut buf)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let text = String::from_utf8(completions(shell)).unwrap();
            assert!(
                text.contains("connect") && text.contains("serve"),
                "{shell}"
            );
        }
    }

    #[test]
    fn man_page_covers_the_subcommands() {
        let text = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(text.contains(".TH") && text.contains("connect") && text.contains("serve"));
        assert!(text.contains("\\-\\-listen") || text.contains("listen"));
    }
}
