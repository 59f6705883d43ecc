//! Fuzz target `stateless_headers`: arbitrary bytes through `mcp_bridge::fuzzing::stateless_headers` (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bridge::fuzzing::stateless_headers(data));
