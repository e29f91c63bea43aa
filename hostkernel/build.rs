//! Compiles the C half of the host kernel (DbgPrint's varargs formatting).
fn main() {
    println!("cargo:rerun-if-changed=src/dbgprint.c");
    cc::Build::new().file("src/dbgprint.c").warnings(true).compile("hostkernel_dbgprint");
}
