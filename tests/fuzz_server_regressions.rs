//! Replays every input kept in fuzz/regressions-server/ (found by `cargo
//! fuzz run server_calls`) and a table of hand-made ones through the fuzz
//! target's own checks (fuzz/fuzz_targets/server_input.rs), in every `cargo
//! test`: the server and datagram exports (issue 20) with every handle kind,
//! address shape, options, buffer kind and IRQL.

#[path = "../fuzz/fuzz_targets/server_input.rs"]
mod server_input;

use server_input::{CALLS, HANDLES, RIGHT};

#[test]
fn fuzz_server_regressions_replay() {
    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0; 64], vec![0xFF; 64]];
    // Every call with every handle selector, client selector and IRQL, with
    // a loopback IPv4 address (port 9), default options, a stack buffer of
    // 64 bytes, flags 0, the family AF_INET, 2 entries, "localhost" and a
    // numeric service, the out pointers given, a valid request, 2 ms.
    for call in 0..CALLS {
        for handle in 0..HANDLES {
            for client in [0u8, 1, 2] {
                for irql in 0..4u8 {
                    let mut input = vec![call, handle];
                    if handle == 2 {
                        input.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0xA5]);
                    }
                    if handle == 7 {
                        input.push(call & 1);
                    }
                    input.extend_from_slice(&[
                        client, 0, 9, // port 9 (LE bytes of the u16 read)
                        2, 0, 1, 2, 3, // IPv4, 127.1.2.3
                        0, // options NULL
                        1, 2, // stack buffer, length 64
                        0, // flags 0
                        1, // AF_INET
                        2, // 2 entries
                        1, // node "localhost"
                        2, 0x35, 0, // service "53"
                        1, // out pointers given
                        irql, 2, // IRQL, 2 ms
                        1, 1, // a callback, Reserved 0
                    ]);
                    inputs.push(input);
                }
            }
        }
    }
    // The live socket of each call's kind, every address shape, options
    // shape, buffer kind and length, at PASSIVE_LEVEL.
    for call in 0..CALLS {
        for addr in 0..8u8 {
            for special in 0..4u8 {
                for opts in 0..3u8 {
                    for kind in 0..4u8 {
                        inputs.push(vec![
                            call, RIGHT, 2, 0x50, 0, addr, special, 1, 2, 3, opts, 5, 1, 2, kind, 2, 0, 0, 1, 1, 0, 0,
                            1, 0, 2, 1, 1,
                        ]);
                    }
                }
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions-server");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            inputs.push(std::fs::read(e.path()).expect("read fuzz input"));
        }
    }
    for input in &inputs {
        server_input::run(input);
    }
    eprintln!("replayed {} server-call fuzz inputs", inputs.len());
}
