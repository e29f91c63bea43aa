#!/usr/bin/env python3
"""The deepest stack each safewsk export uses inside the library.

    stack.py [--budget BYTES] [--markdown FILE | --check FILE] LABEL=LIB ...

(.ci/stack builds the four libraries and runs this.)

LIB is a safewsk.lib (MSVC x64 or ARM64); LABEL names its column (e.g.
x64-Release). For every exported SafeWsk* function, and for every library
function the kernel calls through a pointer (completion routines, DPCs:
functions whose address the code takes), the script measures the deepest
chain of calls that stays inside the library:

  depth(f) = max(frame(f) + depth(g) for each g that f calls,
                 depth(h) for each h that f tail-calls (its frame is gone),
                 frame(f))

- frame(f) comes from the unwind data (llvm-readobj --unwind): on x64 the
  UNWIND_INFO codes (PUSH_NONVOL 8 bytes each, ALLOC_SMALL/ALLOC_LARGE
  their size) plus the 8-byte return address; on ARM64 the prologue's
  stack adjustments (`sub sp, #N`, pre-indexed `[sp, #-N]!` saves), or the
  FrameSize of packed unwind data, or, when larger, what the prologue's
  instructions allocate (the unwind codes omit the locals' allocation after
  the frame pointer is set); the return address is in LR and saved inside
  the frame. A function without
  unwind data is a leaf that does not touch the stack pointer (x64: the
  return address only).
- The calls come from the disassembly with relocations (llvm-objdump -d -r):
  a call or branch with a relocation to a function defined in the library's
  objects (the LTO object, and the compiler_builtins members it uses, also
  read from the archive). Calls to imports (the kernel, NETIO) and through
  pointers (the WSK provider) leave the library and are not counted: they
  run on the same stack, below the figure given here.
- Recursion (a cycle in the call graph) fails: its depth has no bound.

Prints a table (bytes per export and library, the deepest chain of the
first library) and fails if any figure is above the budget (BUDGET below,
or --budget). --markdown FILE
writes the same table as a Markdown page (docs/stack.md), --check FILE
fails if that page differs from what the measurement gives. Any tool error
fails (the tools are the rustup llvm-tools component, .ci/tools.sh).
"""
import os
import re
import subprocess
import sys
import tempfile

FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
INSN = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)(?:\s+(.*?))?\s*$")
RELOC = re.compile(r"^\s+([0-9a-f]+):\s+(IMAGE_REL_\S+)\s+(\S+)")
CALLS = {"call", "callq", "bl"}
BRANCHES = re.compile(r"^(jmp|jmpq|b|b\.\w+|cbz|cbnz|tbz|tbnz|j\w+)$")


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


class Library:
    def __init__(self, path, workdir):
        self.path = path
        members = run("llvm-ar", "t", path).split()
        os.makedirs(workdir, exist_ok=True)
        subprocess.run(["llvm-ar", "x", os.path.abspath(path)], cwd=workdir, check=True)
        self.objects = [os.path.join(workdir, m) for m in members]
        lto = [o for o in self.objects if os.path.basename(o).startswith("safewsk-")]
        if len(lto) != 1:
            sys.exit(f"{path}: expected one safewsk-* member (the LTO object), found {len(lto)}")
        self.lto = lto[0]
        self.arch = "ARM64" if "COFF-ARM64" in run("llvm-readobj", "--file-headers", self.lto) else "x64"
        # Which member defines which function: the LTO object, and the
        # compiler_builtins members, loaded on demand.
        self.defined_in = {}
        for line in run("llvm-nm", "--defined-only", "-A", path).splitlines():
            m = re.match(r"^.*?:(\S+):\s*[0-9a-f]*\s+([Tt])\s+(\S+)$", line)
            if m:
                self.defined_in.setdefault(m.group(3), os.path.join(workdir, m.group(1)))
        self.frames, self.calls, self.tails, self.taken = {}, {}, {}, set()
        self.loaded = set()
        self.prologues = {}
        self.load(self.lto)
        self.exports = sorted(f for f in self.calls if f.startswith("SafeWsk"))

    def load(self, obj):
        if obj in self.loaded:
            return
        self.loaded.add(obj)
        self.frames.update(self.unwind(obj))
        cur = None
        insns = []
        for line in run("llvm-objdump", "-d", "-r", "--no-show-raw-insn", obj).splitlines():
            m = FUNC.match(line)
            if m:
                cur = m.group(1)
                self.calls.setdefault(cur, set())
                self.tails.setdefault(cur, set())
                continue
            m = RELOC.match(line)
            if m and cur is not None and insns:
                fn, mn, kind = insns[-1]
                target = m.group(3)
                if mn in CALLS:
                    self.calls[fn].add(target)
                elif BRANCHES.match(mn):
                    self.tails[fn].add(target)
                elif "BRANCH" not in m.group(2) and "REL32" in m.group(2) or "PAGE" in m.group(2):
                    self.taken.add(target)  # an address taken: maybe a function
                continue
            m = INSN.match(line)
            if m and cur is not None:
                insns.append((cur, m.group(2), m.group(3) or ""))
                if self.arch == "ARM64":
                    self.arm64_prologue(cur, m.group(2), (m.group(3) or "").split("//")[0])

    def arm64_prologue(self, fn, mn, ops):
        """ARM64: the stack the prologue allocates, from the instructions up
        to the first branch. Needed besides the unwind data: once a frame
        pointer is set up, the unwind codes need not describe the
        allocation of the locals (the unwinder restores SP from FP), and
        LLVM omits it (a `sub sp, sp, #N` after `add x29, sp, #M`)."""
        state = self.prologues.setdefault(fn, [0, True])
        if not state[1]:
            return
        if mn.startswith(("b", "cb", "tb", "ret")):
            state[1] = False
            return
        m = re.match(r"sub\s*$", mn) and re.fullmatch(r"sp, sp, #(0x[0-9a-f]+|\d+)(?:, lsl #(\d+))?", ops.strip())
        if m:
            state[0] += int(m.group(1), 0) << int(m.group(2) or 0)
        m = re.search(r"\[sp, #-(0x[0-9a-f]+|\d+)\]!", ops)
        if m and mn.startswith("st"):
            state[0] += int(m.group(1), 0)

    def unwind(self, obj):
        text = run("llvm-readobj", "--unwind", obj)
        if re.search(r"Chained|Fragment: Yes|ChainInfo", text):
            sys.exit(f"{obj}: chained unwind data or a function fragment, which this script does not read yet")
        frames = {}
        for block in re.split(r"\n  RuntimeFunction \{", text)[1:]:
            m = re.search(r"(?:StartAddress|Function): (\S+)", block)
            if not m:
                sys.exit(f"{obj}: a RuntimeFunction without its function")
            name = m.group(1)
            if self.arch == "x64":
                size = 8  # the return address
                for code in re.findall(r"0x[0-9A-F]+: (\w+)(?: (?:reg|size)=(\w+))?", block):
                    if code[0] == "PUSH_NONVOL":
                        size += 8
                    elif code[0] in ("ALLOC_SMALL", "ALLOC_LARGE"):
                        size += int(code[1])
                    elif code[0] == "PUSH_MACHFRAME":
                        sys.exit(f"{obj}: {name}: PUSH_MACHFRAME")
            elif "FrameSize:" in block:
                # ARM64 packed unwind data: the whole frame in one field.
                size = int(re.search(r"FrameSize: (\d+)", block).group(1))
            else:
                prologue = re.search(r"Prologue \[(.*?)\n\s*\]\n", block, re.S)
                if not prologue:
                    sys.exit(f"{obj}: {name}: no prologue in its unwind data")
                size = 0
                for n in re.findall(r"sub sp, #(\d+)", prologue.group(1)):
                    size += int(n)
                for n in re.findall(r"#-(\d+)\]!", prologue.group(1)):
                    size += int(n)
            frames[name] = max(size, frames.get(name, 0))
        return frames

    def frame(self, f):
        if self.arch == "ARM64":
            return max(self.frames.get(f, 0), self.prologues.get(f, [0])[0])
        return self.frames.get(f, 8)

    def depth(self, f, memo, stack=()):
        if f in memo:
            return memo[f]
        if f in stack:
            sys.exit(f"{self.path}: recursion through {' -> '.join(stack + (f,))}: no stack bound")
        if f not in self.calls:
            obj = self.defined_in.get(f)
            if obj is None:
                memo[f] = (0, [])  # outside the library: an import or the kernel
                return memo[f]
            self.load(obj)
        best = (self.frame(f), [f])
        for g in sorted(self.calls.get(f, ())):
            d, chain = self.depth(g, memo, stack + (f,))
            if chain and self.frame(f) + d > best[0]:
                best = (self.frame(f) + d, [f] + chain)
        for h in sorted(self.tails.get(f, ())):
            if h == f or h not in self.calls and h not in self.defined_in:
                continue
            d, chain = self.depth(h, memo, stack + (f,))
            if chain and d > best[0]:
                best = (d, [f + " (tail call)"] + chain)
        memo[f] = best
        return best

    def entries(self):
        """Exports, then the library's functions whose address the code takes
        (what the kernel calls through a pointer: completion routines, DPC
        routines; core's formatting functions, reached through a panic's
        fmt::Arguments, are counted in the chains that panic instead)."""
        callbacks = sorted(t for t in self.taken if t in self.calls and demangle(t).startswith("safewsk::"))
        return [(e, "export") for e in self.exports] + [(c, "callback") for c in callbacks]


def demangle(name):
    # Rust legacy mangling: _ZN<len><part>...17h<hash>E -> part::part
    m = re.fullmatch(r"_ZN(.*)17h[0-9a-f]{16}E", name)
    if not m:
        return name
    parts, s = [], m.group(1)
    while s:
        n = re.match(r"(\d+)", s)
        if not n:
            return name
        length = int(n.group(1))
        s = s[len(n.group(1)):]
        parts.append(s[:length])
        s = s[length:]
    return "::".join(parts).replace("$LT$", "<").replace("$GT$", ">").replace("..", "::")


# The budget, bytes per entry point and build: 1/16 of the 24 KiB kernel
# stack of x64 Windows (docs/design.md, "Stack budget").
BUDGET = 1536


def main(argv):
    budget, markdown, check, libs = BUDGET, None, None, []
    api, write_api = None, False
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a == "--budget":
            budget = int(args.pop(0))
        elif a == "--markdown":
            markdown = args.pop(0)
        elif a == "--check":
            check = args.pop(0)
        elif a == "--api":
            api = args.pop(0)
        elif a == "--write-api":
            api, write_api = args.pop(0), True
        elif "=" in a:
            libs.append(tuple(a.split("=", 1)))
        else:
            print(__doc__)
            return 2
    if not libs:
        print(__doc__)
        return 2
    work = tempfile.mkdtemp(prefix="safewsk-stack.")
    results, chains, kinds = {}, {}, {}
    for i, (label, path) in enumerate(libs):
        lib = Library(path, os.path.join(work, str(i)))
        memo = {}
        for name, kind in lib.entries():
            d, chain = lib.depth(name, memo)
            key = demangle(name)
            kinds[key] = kind
            results.setdefault(key, {})[label] = d
            chains.setdefault(key, {})[label] = [demangle(c) for c in chain]
    labels = [l for l, _ in libs]
    order = sorted(results, key=lambda k: (kinds[k] != "export", k))
    over = []
    width = max(len(k) for k in order)
    lines = [f"{'entry point':<{width}}  " + "  ".join(f"{l:>13}" for l in labels)]
    for k in order:
        cells = []
        for l in labels:
            v = results[k].get(l)
            cells.append(f"{'-' if v is None else v:>13}")
            if v is not None and budget is not None and v > budget:
                over.append(f"{k} ({l}): {v} bytes > budget {budget}")
        lines.append(f"{k:<{width}}  " + "  ".join(cells))
    print("\n".join(lines))
    worst = max(((results[k][l], k, l) for k in order for l in labels if l in results[k]))
    print(f"deepest: {worst[1]} ({worst[2]}), {worst[0]} bytes: " + " -> ".join(chains[worst[1]][worst[2]]))
    if budget is not None:
        print(f"budget: {budget} bytes per entry point; {len(over)} over it")
    for o in over:
        print("  OVER BUDGET: " + o)
    page = render(results, chains, kinds, order, labels, budget)
    if markdown:
        with open(markdown, "w", encoding="utf-8") as f:
            f.write(page)
        print(f"wrote {markdown}")
    stale = False
    if check:
        old = open(check, encoding="utf-8").read() if os.path.exists(check) else ""
        if old != page:
            stale = True
            print(f"{check} is not what the measurement gives: run .ci/stack --write")
    if api:
        if not api_lines(api, results, labels, budget, write_api):
            stale = True
    return 1 if over or stale else 0


API_LINE = "/// Stack (bytes used inside the library, docs/stack.md): "


def api_lines(api_dir, results, labels, budget, write):
    """Each export's doc comment in src/api/*.rs carries one line with its
    figures, just before its `cbindgen:prefix` line, so that the header
    states them. Write mode rewrites the lines; check mode reports stale
    ones. True if every line is as measured (or was written)."""
    ok = True
    for fname in sorted(os.listdir(api_dir)):
        if not fname.endswith(".rs"):
            continue
        path = os.path.join(api_dir, fname)
        lines = open(path, encoding="utf-8").read().split("\n")
        out, changed = [], False
        for i, line in enumerate(lines):
            if line.startswith(API_LINE):
                changed = True  # dropped here, written again below
                continue
            if line.startswith("/// cbindgen:prefix="):
                name = None
                for nxt in lines[i + 1:i + 4]:
                    m = re.search(r"fn (SafeWsk\w+)\(", nxt)
                    if m:
                        name = m.group(1)
                        break
                if name in results:
                    figures = ", ".join(f"{l} {results[name].get(l, '-')}" for l in labels)
                    out.append(f"{API_LINE}{figures} (budget {budget}).")
            out.append(line)
        new = "\n".join(out)
        old = "\n".join(lines)
        if new != old or changed:
            if new != old:
                if write:
                    open(path, "w", encoding="utf-8").write(new)
                    print(f"wrote the stack lines of {path}")
                else:
                    ok = False
                    print(f"{path}: the stack lines are not what the measurement gives: run .ci/stack --write")
    return ok


def render(results, chains, kinds, order, labels, budget):
    out = [
        "# Stack use per entry point",
        "",
        "Generated by `.ci/stack --write` from the four MSVC builds of safewsk.lib",
        "(`.ci/stack.py`, which `.ci/msvc` runs on every CI build and which fails",
        "when this page is stale or a figure is above the budget). Each figure is",
        "the deepest chain of calls inside the library, in bytes: frame sizes from",
        "the unwind data, calls from the disassembly (see `.ci/stack.py`). What the",
        "kernel, NETIO and the WSK provider use below the library comes on top.",
        "",
        f"Budget: {budget} bytes per entry point and build (see docs/design.md,",
        "*Stack budget*). The columns are the MSBuild configurations: Debug is the",
        "`kernel-dev` profile, Release `kernel-release`.",
        "",
        "| entry point | kind | " + " | ".join(labels) + " |",
        "|---|---|" + "---:|" * len(labels),
    ]
    for k in order:
        out.append(f"| `{k}` | {kinds[k]} | " + " | ".join(str(results[k].get(l, "-")) for l in labels) + " |")
    out += ["", "The deepest chain of each export in the first column's build:", ""]
    first = labels[0]
    for k in order:
        if kinds[k] == "export" and first in chains[k]:
            out.append(f"- `{k}` ({results[k][first]} bytes): " + " → ".join(f"`{c}`" for c in chains[k][first]))
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
