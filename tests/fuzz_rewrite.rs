//! Replays the seed corpus of the `rewrite` fuzz target (fuzz/corpus/rewrite) on stable, as an
//! ordinary test: every input must pass `mcp_bridge::rewrite::check` (no panic, only the id
//! changes). Crashes the fuzzer finds are added to the corpus so they stay fixed.

mod common;

#[test]
fn the_rewrite_corpus_holds() {
    let dir = common::repo().join("fuzz/corpus/rewrite");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let run = std::panic::catch_unwind(|| mcp_bridge::rewrite::check::check(&data));
        assert!(
            run.is_ok(),
            "{} fails the rewrite properties",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 5, "the seed corpus in {} is missing", dir.display());
}

/// Without nightly: every truncation of every seed, and each byte replaced by a few bytes that
/// matter to the scanner, pass the same properties.
#[test]
fn mutations_of_the_corpus_hold() {
    let dir = common::repo().join("fuzz/corpus/rewrite");
    for entry in std::fs::read_dir(&dir).expect("the seed corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        for cut in 0..=data.len() {
            mcp_bridge::rewrite::check::check(&data[..cut]);
        }
        for i in 0..data.len() {
            for b in [
                b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'1', 0xff,
            ] {
                let mut m = data.clone();
                m[i] = b;
                mcp_bridge::rewrite::check::check(&m);
            }
        }
    }
}
