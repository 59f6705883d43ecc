//! Memory of a process tree, read from /proc: a process and every descendant, each one's
//! peak (VmHWM), current (VmRSS) or proportional (Pss) resident set, summed.

use std::collections::HashMap;

/// Which resident-set figure to read.
#[derive(Clone, Copy)]
pub enum Rss {
    /// The high-water mark since the process started.
    Peak,
    /// Resident now.
    Current,
    /// Proportional set size now: each shared page divided among the processes mapping it.
    Pss,
}

/// `root` and all its descendants that are alive now.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// One process's resident set in bytes.
pub fn rss(pid: u32, which: Rss) -> Option<u64> {
    let (file, key) = match which {
        Rss::Peak => ("status", "VmHWM:"),
        Rss::Current => ("status", "VmRSS:"),
        Rss::Pss => ("smaps_rollup", "Pss:"),
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The summed resident set of `root`'s tree, in bytes.
pub fn tree_rss(root: u32, which: Rss) -> Option<u64> {
    let pids = tree(root);
    let sum: u64 = pids.iter().filter_map(|&p| rss(p, which)).sum();
    (sum > 0).then_some(sum)
}
