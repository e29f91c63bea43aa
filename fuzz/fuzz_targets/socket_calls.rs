#![no_main]
//! cargo +nightly fuzz run socket_calls -- -max_total_time=180
//! (from fuzz/; see README "Fuzzing").

#[path = "socket_input.rs"]
mod socket_input;

libfuzzer_sys::fuzz_target!(|data: &[u8]| socket_input::run(data));
