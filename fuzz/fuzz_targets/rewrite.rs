//! Fuzzes the id and progress-token rewriting of `serve` (`mcp_bridge::rewrite`): any bytes,
//! checked by the properties of `rewrite::check` (no panic, only the id changes, value keys).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mcp_bridge::rewrite::check::check(data);
});
