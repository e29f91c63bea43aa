//! Replays every input kept in fuzz/regressions-socket/ (found by `cargo
//! fuzz run socket_calls`) and a table of hand-made ones through the fuzz
//! target's own checks, in every `cargo test`.

#[path = "../fuzz/fuzz_targets/socket_input.rs"]
mod socket_input;

#[test]
fn fuzz_socket_regressions_replay() {
    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0; 32], vec![0xFF; 32]];
    // Every call (0-5) with the live client and socket, every buffer kind,
    // lengths 0 / 28 / 4096-capped, flags 0, IRQL 0-3.
    for call in 0..6u8 {
        for kind in 0..4u8 {
            for len in [0u8, 2] {
                for irql in 0..4u8 {
                    inputs.push(vec![call, 2, 3, kind, len, 0, irql, 2]);
                }
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions-socket");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            inputs.push(std::fs::read(e.path()).expect("read fuzz input"));
        }
    }
    for input in &inputs {
        socket_input::run(input);
    }
    eprintln!("replayed {} socket-call fuzz inputs", inputs.len());
}
