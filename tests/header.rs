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

/// The header refuses a 32-bit Windows build (`_WIN32` without `_WIN64`),
/// whose calling convention and layouts the library does not match; a
/// 64-bit one compiles.
#[test]
fn header_refuses_32_bit_windows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compile = |defines: &[&str]| {
        let mut cmd = std::process::Command::new("cc");
        cmd.args(["-std=c11", "-fsyntax-only", "-fshort-wchar", "-x", "c"])
            .arg(format!("-I{}", root.join("include").display()))
            .arg(format!("-I{}", root.join("hostkernel/include").display()))
            .args(defines)
            .arg(root.join("tests/c/header_check.c"));
        cmd.output().expect("run the C compiler")
    };
    let x86 = compile(&["-D_WIN32"]);
    assert!(!x86.status.success(), "a 32-bit Windows build must not compile");
    let stderr = String::from_utf8_lossy(&x86.stderr);
    assert!(stderr.contains("safewsk supports 64-bit Windows only"), "{stderr}");
    let x64 = compile(&["-D_WIN32", "-D_WIN64"]);
    assert!(x64.status.success(), "{}", String::from_utf8_lossy(&x64.stderr));
}
