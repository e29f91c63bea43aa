//! Replays every input kept in fuzz/regressions-socket/ (found by `cargo
//! fuzz run socket_calls`) and a table of hand-made ones through the fuzz
//! target's own checks, in every `cargo test`.
//!
//! Issue 17 changed the input layout (the socket calls take no client: the
//! second byte now chooses the socket handle, see socket_input.rs), so the
//! kept inputs replay as other arguments than they were found with; the
//! hand-made table covers what matters by construction.

#[path = "../fuzz/fuzz_targets/socket_input.rs"]
mod socket_input;

use safewsk::nt::{WSK_EVENT_DISABLE, WSK_EVENT_DISCONNECT, WSK_EVENT_RECEIVE, WSK_EVENT_SEND_BACKLOG};
use socket_input::{CALLS, HANDLE_KINDS, LIVE, RANDOM};

#[test]
fn fuzz_socket_regressions_replay() {
    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0; 32], vec![0xFF; 32]];
    // Every call with every forged or stale handle (NULL, all ones, fuzzed
    // bytes, a heap block, the client's handle, a closed socket's, a
    // cleaned-up client's socket's, near misses of the live handle) at IRQL
    // 0-3, with a stack buffer of 28 bytes, flags 0, a 2 ms deadline: each
    // must be STATUS_INVALID_PARAMETER_1 and touch nothing.
    let random_handles: [[u8; 8]; 4] = [
        [0; 8],
        [0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xA5], // tag 0xA5, epoch 1, generation 1, slot 0
        [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0xA5],
    ];
    for call in 0..CALLS {
        for selector in 0..LIVE {
            for irql in 0..4u8 {
                if selector == RANDOM {
                    for bytes in &random_handles {
                        inputs.push([&[call, selector][..], &bytes[..], &[1, 2, 0, irql, 2][..]].concat());
                    }
                } else {
                    for slot in [0u8, 1, 63] {
                        // (The slot and generation bytes matter for selector 9
                        // only; the others ignore the rest of the input.)
                        inputs.push(vec![call, selector, 1, 2, 0, irql, 2, slot, 7, 0, 0, 0]);
                    }
                }
            }
        }
    }
    // Every call with the live socket (close and disconnect get a closed one
    // instead), every buffer kind, lengths 0 and 28, flags 0, IRQL 0-3.
    for call in 0..CALLS {
        for kind in 0..4u8 {
            for len in [0u8, 2] {
                for irql in 0..4u8 {
                    inputs.push(vec![call, LIVE, kind, len, 0, irql, 2]);
                }
            }
        }
        // The callback controls with each event (the live socket has no
        // Dispatch table: refused as parameter 2, or above DISPATCH_LEVEL
        // STATUS_INVALID_LEVEL), all three, WSK_EVENT_DISABLE with one, and
        // a flag that is no connection event.
        let all = WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG;
        for mask in [
            WSK_EVENT_RECEIVE,
            WSK_EVENT_DISCONNECT,
            WSK_EVENT_SEND_BACKLOG,
            all,
            WSK_EVENT_DISABLE | WSK_EVENT_RECEIVE,
            1,
        ] {
            for irql in 0..4u8 {
                inputs.push([&[call, LIVE, 3, 2, 1][..], &mask.to_le_bytes()[..], &[irql, 2][..]].concat());
            }
        }
    }
    assert_eq!(HANDLE_KINDS, LIVE + 2);
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
