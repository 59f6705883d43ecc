//! Fuzz target `sse`: arbitrary bytes through `mcp_bridge::fuzzing::sse` (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bridge::fuzzing::sse(data));
