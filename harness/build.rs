//! Compiles the C sample driver with the system C compiler against the
//! generated safewsk.h and the host kernel's stand-in WDK headers, with
//! warnings as errors.
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sample = root.join("c-samples/sample_driver/sample_driver.c");
    let exchange = root.join("c-samples/common/sample_exchange.c");
    println!("cargo:rerun-if-changed={}", sample.display());
    println!("cargo:rerun-if-changed={}", root.join("c-samples/common").display());
    println!("cargo:rerun-if-changed={}", root.join("include/safewsk.h").display());
    println!("cargo:rerun-if-changed={}", root.join("hostkernel/include").display());
    let mut build = cc::Build::new();
    build
        .file(&sample)
        .file(&exchange)
        .include(root.join("include"))
        .include(root.join("c-samples/common"))
        .include(root.join("hostkernel/include"))
        .std("c11")
        .flag("-fshort-wchar") // WCHAR is 16-bit on Windows
        .flag("-Wno-multichar") // pool tags are multi-character constants
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true);
    println!("cargo:rerun-if-env-changed=SAFEWSK_ASAN");
    if std::env::var_os("SAFEWSK_ASAN").is_some() {
        // The C code under AddressSanitizer; the link pulls in its runtime.
        build.flag("-fsanitize=address").flag("-fno-omit-frame-pointer");
        // rustc links with -nodefaultlibs, so name the runtime explicitly.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-lasan");
    }
    build.compile("sample_driver");
}
