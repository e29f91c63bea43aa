#![no_main]
//! cargo +nightly fuzz run server_calls -- -max_total_time=180
//! (from fuzz/; see docs/servers-and-datagrams.md).

#[path = "server_input.rs"]
mod server_input;

libfuzzer_sys::fuzz_target!(|data: &[u8]| server_input::run(data));
