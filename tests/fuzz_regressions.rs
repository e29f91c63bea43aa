//! Replays every input kept in fuzz/regressions/ (crashers and interesting
//! cases found by `cargo fuzz run connect_params`) through the fuzz target's
//! own checks, plus a few hand-made inputs, so they run in every `cargo test`.

#[path = "../fuzz/fuzz_targets/connect_input.rs"]
mod connect_input;

#[test]
fn fuzz_regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 64],
        vec![0xFF; 64],
        // valid client, SOCK_STREAM, TCP, AF_INET local and remote 127.0.0.1:80
        [
            &[0u8, 1, 0, 6, 0, 0, 0, 1][..],
            &[16, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[16, 2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[0, 0, 1, 0][..],
        ]
        .concat(),
    ];
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
