//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`: seeds and inputs that once
//! crashed) through the same harnesses the cargo-fuzz targets use, on stable, as ordinary tests.
//! A harness panics when a parser breaks one of its promises; bad input alone never does.

use std::path::Path;

/// Runs `harness` on every file of `fuzz/corpus/<target>/`; there must be some.
fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let name = file.display().to_string();
        if std::panic::catch_unwind(|| harness(&data)).is_err() {
            panic!("{name} breaks the {target} harness");
        }
    }
}

#[test]
fn sse_corpus() {
    replay("sse", mcp_bridge::fuzzing::sse);
}

#[test]
fn lines_corpus() {
    replay("lines", mcp_bridge::fuzzing::lines);
}

#[test]
fn stateless_headers_corpus() {
    replay("stateless_headers", mcp_bridge::fuzzing::stateless_headers);
}
