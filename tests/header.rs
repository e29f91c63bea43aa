//! include/safewsk.h must be exactly what cbindgen generates from src/ now.

use std::path::Path;

#[test]
fn checked_in_header_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("utf-8");
    let path = root.join("include/safewsk.h");
    if std::env::var_os("SAFEWSK_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/safewsk.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/safewsk.h is stale: regenerate it with `SAFEWSK_BLESS=1 cargo test --test header` and commit it"
    );
}
