#!/usr/bin/env python3
"""Control Flow Guard in safewsk's object: is every indirect call checked?

    cfg_calls.py OBJECT [--expect-unguarded]

OBJECT is the library's LTO object (the safewsk-*.o member of safewsk.lib),
read with the llvm-tools llvm-objdump / llvm-readobj on PATH (.ci/tools.sh).
Prints one line per indirect branch that is not checked, then a summary:

  x64 (the "dispatch" mechanism): a checked call is `call *(%rip)` (or a
      `jmp *(%rip)` tail call) through __guard_dispatch_icall_fptr, or a
      `jmp *%reg` tail call whose register was loaded from it, with the
      target in RAX. A branch through `__imp_*` (the import table, read-only
      after load) and the `jmp *%reg` of a jump table (a bounds-checked
      switch inside one function, base loaded from .rdata) are not calls
      CFG checks, in MSVC's output either.
  ARM64 (the "check" mechanism): `blr xN` to the routine loaded from
      __guard_check_icall_fptr, with the target in X15, then `blr`/`br` to
      the target register, unchanged since. Jump tables (`br` after an
      `adr` base) are not calls.

Also checks the object's @feat.00 symbol has the /guard:cf bit (0x800).
Exit 0 when every indirect call is checked (or, with --expect-unguarded,
when at least one is not: the negative control for a library built without
-C control-flow-guard). Any tool error fails.
"""
import re
import subprocess
import sys

INSN = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)(?:\s+(.*?))?\s*$")
RELOC = re.compile(r"^\s+([0-9a-f]+):\s+(IMAGE_REL_\S+)\s+(\S+)")
FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")

# ARM64 mnemonics whose first operand is not a destination register.
NOT_A_WRITE = {"cmp", "cmn", "tst", "cbz", "cbnz", "tbz", "tbnz", "b", "bl", "blr", "br", "ret", "ccmp", "ccmn",
               "prfm", "nop", "hint", "dmb", "dsb", "isb", "brk", "udf", "msr"}


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def functions(obj):
    """[(name, [(offset, mnemonic, operands, [reloc target, ...]), ...])]"""
    out, cur = [], None
    for line in run("llvm-objdump", "-d", "-r", "--no-show-raw-insn", obj).splitlines():
        m = FUNC.match(line)
        if m:
            cur = (m.group(1), [])
            out.append(cur)
            continue
        if cur is None:
            continue
        m = RELOC.match(line)
        if m and cur[1]:
            cur[1][-1][3].append(m.group(3))
            continue
        m = INSN.match(line)
        if m:
            ops = (m.group(3) or "").split("#")[0].split("//")[0].strip()  # without objdump's comments
            cur[1].append((int(m.group(1), 16), m.group(2), ops, []))
    return out


def feat00(obj):
    text = run("llvm-readobj", "--symbols", obj)
    m = re.search(r"Name: @feat\.00\s+Value: (\d+)", text)
    return int(m.group(1)) if m else None


def x64(funcs):
    checked, imports, tables, bad = 0, 0, 0, []
    for name, insns in funcs:
        for i, (off, mn, ops, rel) in enumerate(insns):
            mnb = mn.replace("rex64", "").strip()
            if not re.match(r"(call|jmp)q?$", mnb) or not ops.startswith("*"):
                continue
            target = rel[0] if rel else ""
            if target == "__guard_dispatch_icall_fptr":
                checked += 1
            elif target.startswith("__imp_"):
                imports += 1
            elif re.fullmatch(r"\*%r\w+", ops) and x64_dispatch_in_register(insns, i):
                checked += 1  # the dispatch routine's address, loaded into a register (tail calls)
            elif mnb.startswith("jmp") and re.fullmatch(r"\*%r\w+", ops) and is_x64_jump_table(insns, i):
                tables += 1
            else:
                bad.append(f"{name}+0x{off:x}: {mn} {ops} {' '.join(rel)}")
    return checked, imports, tables, bad


def x64_dispatch_in_register(insns, i):
    """`call/jmp *%reg` where reg's last write loaded __guard_dispatch_icall_fptr."""
    reg = insns[i][2][1:]
    for off, mn, ops, rel in reversed(insns[max(0, i - 16):i]):
        if ops.endswith(", " + reg) or ops == reg:
            return mn == "movq" and "__guard_dispatch_icall_fptr" in rel
    return False


def is_x64_jump_table(insns, i):
    reg = insns[i][2][1:]
    for off, mn, ops, rel in reversed(insns[max(0, i - 6):i]):
        if mn == "addq" and ops.endswith(", " + reg):
            base = ops.split(",")[0].strip()
            for _, mn2, ops2, rel2 in reversed(insns[max(0, i - 8):i]):
                if mn2 == "leaq" and ops2.endswith(", " + base) and rel2 and rel2[0].startswith((".rdata", "$JTI")):
                    return True
            return False
    return False


def writes(mn, ops, reg):
    if mn in NOT_A_WRITE or mn.startswith(("st", "b.")):
        return False
    regs = [r.strip() for r in ops.split(",")]
    if not regs:
        return False
    names = {reg, "w" + reg[1:]}
    if regs[0] in names:
        return True
    return mn in ("ldp", "ldnp", "ldpsw") and len(regs) > 1 and regs[1] in names


def arm64(funcs):
    checked, tables, bad, check_calls = 0, 0, [], 0
    for name, insns in funcs:
        for i, (off, mn, ops, rel) in enumerate(insns):
            if mn not in ("blr", "br"):
                continue
            reg = ops.strip()
            # The call of the check routine itself: reg loaded from the guard pointer.
            if loaded_from_guard(insns, i, reg):
                check_calls += 1
                continue
            if guarded(insns, i, reg):
                checked += 1
            elif mn == "br" and adr_table(insns, i, reg):
                tables += 1
            else:
                bad.append(f"{name}+0x{off:x}: {mn} {reg}")
    return checked, check_calls, tables, bad


def loaded_from_guard(insns, i, reg):
    for off, mn, ops, rel in reversed(insns[:i]):
        if writes(mn, ops, reg):
            return mn.startswith("ldr") and "__guard_check_icall_fptr" in rel
    return False


def guarded(insns, i, reg):
    """A check call (blr of the guard routine) with X15 = reg, after which
    reg was not written, except by a register copy (`mov reg, src`), which
    is followed back to the register that was checked (LLVM may check the
    target in one register and call it through a copy in another: the check
    routine preserves the argument registers)."""
    j = i - 1
    while j >= 0:
        off, mn, ops, rel = insns[j]
        if mn == "blr" and loaded_from_guard(insns, j, ops.strip()):
            # X15 must hold reg: the last write to x15 before the check.
            for off2, mn2, ops2, rel2 in reversed(insns[:j]):
                if writes(mn2, ops2, "x15"):
                    return mn2 == "mov" and ops2.replace(" ", "") == f"x15,{reg}"
            return False
        if writes(mn, ops, reg):
            parts = [p.strip() for p in ops.split(",")]
            if mn == "mov" and len(parts) == 2 and parts[1].startswith("x") and parts[1][1:].isdigit():
                reg = parts[1]
            else:
                return False
        j -= 1
    return False


def adr_table(insns, i, reg):
    for off, mn, ops, rel in reversed(insns[max(0, i - 8):i]):
        if mn == "adr":
            return True
    return False


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    obj, expect_unguarded = argv[1], "--expect-unguarded" in argv
    arch = "arm64" if "COFF-ARM64" in run("llvm-readobj", "--file-headers", obj) else "x64"
    funcs = functions(obj)
    feat = feat00(obj)
    if arch == "x64":
        checked, imports, tables, bad = x64(funcs)
        other = f"{imports} through the import table"
    else:
        checked, check_calls, tables, bad = arm64(funcs)
        other = f"{check_calls} calls of the check routine itself"
    for b in bad:
        print("  unchecked indirect call:", b)
    cfg_bit = feat is not None and feat & 0x800 != 0
    print(f"{arch}: {checked} indirect calls checked through "
          f"{'__guard_dispatch_icall_fptr' if arch == 'x64' else '__guard_check_icall_fptr'}, {len(bad)} unchecked, "
          f"{tables} jump-table branches, {other}; @feat.00 = 0x{feat or 0:x} "
          f"({'/guard:cf' if cfg_bit else 'no /guard:cf bit'})")
    if expect_unguarded:
        return 0 if bad and not cfg_bit else 1
    return 0 if not bad and cfg_bit and checked > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
