#!/usr/bin/env python3
"""The import list (.ci/imports.txt) and what .ci/msvc checks with it.

  imports.py defs OUTDIR
      OUTDIR/<dll>.def (ntoskrnl, netio, hal) from both sections, for
      llvm-dlltool.
  imports.py read IMAGE
      The image's imports, DLL!Function (DLL upper-cased), one a line, read
      with llvm-readobj --coff-imports (any tool error fails).
  imports.py library IMAGE ARCH CONFIG
      IMAGE links the library alone: its imports must be exactly the
      [library] lines whose ONLY field admits ARCH (x64/ARM64) and CONFIG
      (Debug/Release). Prints the count, or each difference.
  imports.py allowed IMAGE
      Every import of IMAGE is listed in either section; prints the image's
      minimum Windows build (the largest BUILD over its imports).
  imports.py minimum
      The library's minimum Windows build: the largest BUILD of [library].
  imports.py claim
      README.md, docs/windows-build.md and pkg/README.md state the
      library's minimum as "Windows 10 version 1507 (build 10240)" (for the
      minimum `imports.py minimum` prints), and none still makes the old
      claims (Windows 8 / Server 2012; "only ntoskrnl.exe and NETIO.SYS").
"""
import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIST = os.path.join(ROOT, ".ci/imports.txt")
# The release names of the builds a BUILD field may name.
RELEASES = {10240: "Windows 10 version 1507", 19041: "Windows 10 version 2004"}
CLAIM_FILES = ["README.md", "docs/windows-build.md", "pkg/README.md"]
OLD_CLAIMS = ["Windows 8 / Server 2012", "Windows 8 / Server\n2012", "only ntoskrnl.exe and NETIO.SYS",
              "only\nntoskrnl.exe and NETIO.SYS"]
KINDS = {"x64", "ARM64", "Debug", "Release"}


def parse():
    """{section: [(DLL!Function (DLL upper-cased), dll as written, build, only)]}"""
    sections, cur = {}, None
    for n, raw in enumerate(open(LIST, encoding="utf-8"), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            cur = sections.setdefault(m.group(1), [])
            continue
        fields = line.split()
        if cur is None or len(fields) not in (2, 3) or "!" not in fields[0] or not fields[1].isdigit():
            sys.exit(f"{LIST}:{n}: expected 'DLL!Function BUILD [ONLY]' inside a section: {raw.rstrip()}")
        dll, fn = fields[0].split("!", 1)
        build = int(fields[1])
        if build not in RELEASES:
            sys.exit(f"{LIST}:{n}: build {build} is not one of {sorted(RELEASES)} (add its release name)")
        only = set(fields[2].split(",")) if len(fields) == 3 else set()
        if only - KINDS:
            sys.exit(f"{LIST}:{n}: ONLY {fields[2]}: not among {sorted(KINDS)}")
        cur.append((f"{dll.upper()}!{fn}", dll, build, only))
    if set(sections) != {"library", "samples"}:
        sys.exit(f"{LIST}: expected the sections [library] and [samples], found {sorted(sections)}")
    names = [e[0] for s in sections.values() for e in s]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        sys.exit(f"{LIST}: listed twice: {dups}")
    fns = [n.split("!")[1] for n in names]
    clash = sorted({f for f in fns if fns.count(f) > 1})
    if clash:
        sys.exit(f"{LIST}: listed under two DLLs: {clash}")
    return sections


def read(image):
    text = subprocess.run(["llvm-readobj", "--coff-imports", image], check=True, capture_output=True,
                          text=True).stdout
    out, dll = set(), None
    for line in text.splitlines():
        if line.startswith("Import {"):
            dll = None
        m = re.match(r"  Name: (\S+)", line)
        if m:
            dll = m.group(1).upper()
        m = re.match(r"  Symbol: (\S+)", line)
        if m:
            if dll is None:
                sys.exit(f"{image}: an imported symbol before its DLL name")
            out.add(f"{dll}!{m.group(1)}")
    if not out:
        sys.exit(f"{image}: no imports read")
    return out


def builds():
    return {e[0]: e[2] for s in parse().values() for e in s}


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "defs":
        os.makedirs(argv[2], exist_ok=True)
        per_dll = {}
        for s in parse().values():
            for _, dll, _, _ in s:
                per_dll.setdefault(dll, [])
            for name, dll, _, _ in s:
                per_dll[dll].append(name.split("!", 1)[1])
        for dll, fns in per_dll.items():
            base = dll.rsplit(".", 1)[0].lower()
            with open(os.path.join(argv[2], base + ".def"), "w") as f:
                f.write(f"LIBRARY {dll}\nEXPORTS\n" + "".join(fn + "\n" for fn in sorted(fns)))
            print(f"{base}.def: {dll}, {len(fns)} routines")
        return 0
    if cmd == "read":
        print("\n".join(sorted(read(argv[2]))))
        return 0
    if cmd == "library":
        image, arch, config = argv[2], argv[3], argv[4]
        want = set()
        for name, _, _, only in parse()["library"]:
            archs, configs = only & {"x64", "ARM64"}, only & {"Debug", "Release"}
            if (not archs or arch in archs) and (not configs or config in configs):
                want.add(name)
        got = read(image)
        extra, missing = sorted(got - want), sorted(want - got)
        for e in extra:
            print(f"  new import, not in [library] of .ci/imports.txt: {e} (add it with its minimum build)")
        for m in missing:
            print(f"  listed for {arch} {config} in [library] of .ci/imports.txt but not imported: {m}")
        if extra or missing:
            return 1
        print(f"{len(got)} imports, exactly the [library] list for {arch} {config}")
        return 0
    if cmd == "allowed":
        b = builds()
        got = read(argv[2])
        bad = sorted(got - set(b))
        for e in bad:
            print(f"  {argv[2]}: import outside .ci/imports.txt: {e}")
        if bad:
            return 1
        print(max(b[n] for n in got))
        return 0
    if cmd == "minimum":
        print(max(e[2] for e in parse()["library"]))
        return 0
    if cmd == "claim":
        minimum = max(e[2] for e in parse()["library"])
        claim = f"{RELEASES[minimum]} (build {minimum})"
        errors = []
        for rel in CLAIM_FILES:
            text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
            flat = re.sub(r"\s+", " ", text)
            if claim not in flat:
                errors.append(f"{rel} does not state the minimum as '{claim}'")
            for old in OLD_CLAIMS:
                if re.sub(r"\s+", " ", old) in flat:
                    errors.append(f"{rel} still says '{old.replace(chr(10), ' ')}'")
        for e in errors:
            print("  " + e)
        if errors:
            return 1
        print(f"the library's minimum, {claim}, stated in {', '.join(CLAIM_FILES)}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
