//! Replays every input kept in fuzz/regressions/ (crashers and interesting
//! cases found by `cargo fuzz run connect_params`) through the fuzz target's
//! own checks, plus a few hand-made inputs, so they run in every `cargo test`.

#[path = "../fuzz/fuzz_targets/connect_input.rs"]
mod connect_input;

#[test]
fn fuzz_regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    // Valid arguments (SOCK_STREAM, TCP, AF_INET local and remote
    // 127.0.0.1:80, deadline 1 ms, PASSIVE_LEVEL) after the client selector;
    // `shape` 0x40 makes it the asynchronous connect.
    let valid = |client: u8, shape: u8| -> Vec<u8> {
        [
            &[client, 1, 0, 6, 0, 0, 0, 1][..],
            &[16, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[16, 2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[shape, 0, 1, 1][..],
        ]
        .concat()
    };
    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0; 64], vec![0xFF; 64], valid(0, 0), valid(0, 0x40)];
    // Issue 17: every kind of forged or stale client handle (selector 2 + 3k:
    // a heap block, all ones, a cleaned-up client, 8 fuzzed bytes, a socket
    // handle, the live handle's next generation), with otherwise valid
    // arguments, synchronous and asynchronous: each must be parameter 1.
    for k in 0..6u8 {
        for shape in [0, 0x40] {
            let mut input = valid(2 + 3 * k, shape);
            if k == 3 {
                // The fuzzed handle's 8 bytes follow the selector.
                input.splice(1..1, [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
            }
            inputs.push(input);
        }
    }
    // SAFEWSK_FUZZ_CORPUS=fuzz/corpus/connect_params replays a whole corpus.
    let extra = std::env::var_os("SAFEWSK_FUZZ_CORPUS").map(std::path::PathBuf::from);
    for d in std::iter::once(dir).chain(extra) {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                inputs.push(std::fs::read(e.path()).expect("read fuzz input"));
            }
        }
    }
    let mut reaching = 0;
    for input in &inputs {
        let before = hostkernel::provider_connect_calls();
        connect_input::run(input);
        if hostkernel::provider_connect_calls() != before {
            reaching += 1;
        }
    }
    eprintln!("replayed {} fuzz inputs, {reaching} of them reached the provider", inputs.len());
    assert!(reaching > 0, "no input got past validation: the replay checks only rejections");
}
