//! Fuzz target `lines`: arbitrary bytes through `mcp_bridge::fuzzing::lines` (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_bridge::fuzzing::lines(data));
