#![no_main]
//! cargo +nightly fuzz run connect_params -- -max_total_time=300
//! (from fuzz/; see README "Fuzzing").

#[path = "connect_input.rs"]
mod connect_input;

libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_input::run(data));
