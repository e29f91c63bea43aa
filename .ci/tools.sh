# shellcheck shell=bash
# Sourced by the .ci scripts (and pkg/make-package): the pinned Rust toolchain
# and the LLVM tools that match it.
#
#  - `rustup toolchain install` reads rust-toolchain.toml (channel 1.95.0 with
#    its components and targets) and installs whatever is missing; a
#    toolchain that cannot be installed fails the script, never a skip.
#  - The LLVM tools that read rustc's objects are the rustup `llvm-tools`
#    component: the LLVM rustc itself was built with (LLVM 22 for 1.95.0).
#    Debian's LLVM 14 cannot read them (its llvm-nm failed on 267 of the 268
#    members of safewsk.lib). They are put first on PATH under their usual
#    names, from target/ci-tools/bin, together with rust-lld and
#    llvm-dlltool (llvm-ar's dlltool mode: the component ships no separate
#    binary; llvm-ar picks the mode from the name it is called by).
#  - Every tool's version is printed, and a tool that is not the
#    component's one (its version line must name the rustc release) fails.
#
# After sourcing: LLVM_BIN (the component's directory), RUST_LLD, and PATH.
set -euo pipefail

safewsk_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v rustup >/dev/null || { echo "FAILED: rustup is required (rust-toolchain.toml pins the toolchain)" >&2; exit 1; }
(cd "$safewsk_root" && rustup toolchain install) >"${TMPDIR:-/tmp}/safewsk-rustup.log" 2>&1 ||
    { cat "${TMPDIR:-/tmp}/safewsk-rustup.log" >&2; echo "FAILED: rustup toolchain install (rust-toolchain.toml)" >&2; exit 1; }
rust_release=$(cd "$safewsk_root" && rustc -vV | awk '/^release:/ {print $2}')
rust_host=$(cd "$safewsk_root" && rustc -vV | awk '/^host:/ {print $2}')
pinned=$(awk -F'"' '/^channel/ {print $2}' "$safewsk_root/rust-toolchain.toml")
[ "$rust_release" = "$pinned" ] || { echo "FAILED: rustc is $rust_release, rust-toolchain.toml pins $pinned" >&2; exit 1; }
LLVM_BIN="$(cd "$safewsk_root" && rustc --print sysroot)/lib/rustlib/$rust_host/bin"
RUST_LLD="$LLVM_BIN/rust-lld"
ci_tools="$safewsk_root/target/ci-tools/bin"
mkdir -p "$ci_tools"
for t in llvm-nm llvm-readobj llvm-objdump llvm-ar llvm-objcopy rust-lld; do
    [ -x "$LLVM_BIN/$t" ] || { echo "FAILED: $LLVM_BIN/$t missing (rustup component llvm-tools)" >&2; exit 1; }
    ln -sfn "$LLVM_BIN/$t" "$ci_tools/$t"
done
ln -sfn "$LLVM_BIN/llvm-ar" "$ci_tools/llvm-dlltool"
case ":$PATH:" in *":$ci_tools:"*) ;; *) PATH="$ci_tools:$PATH" ;; esac
export PATH LLVM_BIN RUST_LLD
for t in llvm-nm llvm-readobj llvm-objdump llvm-ar; do
    [ "$(command -v "$t")" = "$ci_tools/$t" ] || { echo "FAILED: $t resolves to $(command -v "$t")" >&2; exit 1; }
    "$t" --version | grep -q "rust-$rust_release" ||
        { echo "FAILED: $t is not the llvm-tools of rustc $rust_release: $("$t" --version | grep -i version)" >&2; exit 1; }
done
unset t pinned
