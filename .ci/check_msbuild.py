#!/usr/bin/env python3
"""What can be checked of safewsk's MSBuild files without MSBuild.

  check_msbuild.py check
      Every .props/.targets/.vcxproj/.nuspec under c-samples/, pkg/ and
      verify/:
      - XML well-formed;
      - every $(Name) is a property defined in the file, in a file of its
        group (the .props/.targets pair, or what a .vcxproj imports), or a
        documented MSBuild/WDK property (KNOWN_PROPERTIES, with sources);
      - every $([Class]::Function) and $(Name.Method()) is one MSBuild
        documents (PROPERTY_FUNCTIONS), every %(Metadata) a known one, every
        @(Item) defined in the file;
      - every local <Import Project> and every ClCompile/Inf/ClInclude item
        path exists;
      - the KMDF sample's INF decoration names one build for all sections.

  check_msbuild.py cargo-command Platform=x64 Configuration=Debug SafeWskRoot=DIR ...
      Evaluates c-samples/safewsk.props then safewsk.targets (PropertyGroups
      in order, the conditions and functions they use) with the given
      global properties and prints the cargo command line the
      SafeWskCargoBuild target runs, one argument per line, with the
      Windows path separators turned into '/'. .ci/msvc builds with it, so
      CI builds the library exactly as the targets do.

  check_msbuild.py property NAME [--dir=DIR] Platform=... ...
      Prints one evaluated property (e.g. SafeWskLibDir); with --dir, of
      DIR/safewsk.props + DIR/safewsk.targets (an unpacked package's
      build/native/) instead of the pair in c-samples/.

  check_msbuild.py inf-build
      Prints the build number of the KMDF INF's NT$ARCH$.10.0...<build>.
"""
import os
import re
import shlex
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
NS = "{http://schemas.microsoft.com/developer/msbuild/2003}"

LEARN = "https://learn.microsoft.com/"
RESERVED = LEARN + "visualstudio/msbuild/msbuild-reserved-and-well-known-properties"
COMMON = LEARN + "visualstudio/msbuild/common-msbuild-project-properties"
MACROS = LEARN + "cpp/build/reference/common-macros-for-build-commands-and-properties"
VCXPROJ = LEARN + "cpp/build/reference/vcxproj-file-structure"
EXTENSIBILITY = LEARN + "visualstudio/extensibility/visual-cpp-project-extensibility"
WDK_PROPS = LEARN + "windows-hardware/drivers/develop/building-a-driver"
WDK_SAMPLE = ("microsoft/Windows-driver-samples network/wsk/echosrv/echosrv.vcxproj "
              "(commit 32d34c8): $(DDK_LIB_PATH)\\netio.lib")

# Properties a file may use without defining them, and where they are documented.
KNOWN_PROPERTIES = {
    "MSBuildThisFileDirectory": RESERVED,
    "MSBuildProjectName": RESERVED,
    "MSBuildProjectDirectory": RESERVED,
    "Configuration": COMMON,
    "Platform": COMMON,
    "VCTargetsPath": VCXPROJ,
    "PlatformToolset": MACROS,
    "TargetPath": MACROS,
    "TargetName": MACROS,
    "IntDir": MACROS,
    "OutDir": MACROS,
    "ProjectName": MACROS,
    "TLogLocation": EXTENSIBILITY + " (MSBuild .tlog files)",
    "DDK_LIB_PATH": WDK_SAMPLE,
    "KMDF_VERSION_MAJOR": WDK_PROPS + " (KMDF version properties of a driver project)",
    "KMDF_VERSION_MINOR": WDK_PROPS + " (KMDF version properties of a driver project)",
}
# Property functions: https://learn.microsoft.com/visualstudio/msbuild/property-functions
PROPERTY_FUNCTIONS = {"[MSBuild]::EnsureTrailingSlash", "[MSBuild]::NormalizeDirectory"}
STRING_METHODS = {"TrimEnd", "StartsWith", "ToUpperInvariant"}
# Well-known item metadata and the item definition metadata of ClCompile/Link.
KNOWN_METADATA = {"FullPath", "Identity", "AdditionalIncludeDirectories", "AdditionalDependencies",
                  "AdditionalOptions", "PreprocessorDefinitions"}

GROUPS = [
    ["c-samples/safewsk.props", "c-samples/safewsk.targets"],
    ["pkg/safewsk.props", "c-samples/safewsk.targets"],
]
INF = "c-samples/kmdf_sample/kmdf_sample.inf"


def local(tag):
    return tag[len(NS):] if tag.startswith(NS) else tag


def files_to_check():
    out = []
    for top in ("c-samples", "pkg", "verify"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for n in sorted(names):
                if n.endswith((".props", ".targets", ".vcxproj", ".nuspec")):
                    out.append(os.path.relpath(os.path.join(dirpath, n), ROOT))
    return sorted(out)


def defined_properties(tree):
    names = set()
    for el in tree.iter():
        if local(el.tag) == "PropertyGroup":
            names.update(local(c.tag) for c in el)
    return names


def defined_items(tree):
    names = set()
    for el in tree.iter():
        if local(el.tag) == "ItemGroup":
            names.update(local(c.tag) for c in el)
    return names


def texts(tree):
    """Every attribute value and text of the file."""
    for el in tree.iter():
        for v in el.attrib.values():
            yield v
        if el.text and el.text.strip():
            yield el.text


def to_local_path(project_dir, path):
    return os.path.normpath(os.path.join(project_dir, path.replace("\\", "/")))


def check():
    errors = []
    parsed = {}
    for rel in files_to_check():
        try:
            parsed[rel] = ET.parse(os.path.join(ROOT, rel))
        except ET.ParseError as e:
            errors.append(f"{rel}: not well-formed XML: {e}")
    for rel, tree in parsed.items():
        if rel.endswith(".nuspec"):
            continue  # $version$-style tokens, no MSBuild properties
        here = os.path.dirname(os.path.join(ROOT, rel))
        defined = defined_properties(tree)
        items = defined_items(tree)
        for group in GROUPS:
            if rel in group:
                for other in group:
                    if other in parsed:
                        defined |= defined_properties(parsed[other])
        # Local imports: their properties count, and they must exist.
        for el in tree.iter():
            if local(el.tag) == "Import":
                project = el.attrib.get("Project", "")
                if project.startswith("$(VCTargetsPath)"):
                    continue
                path = to_local_path(here, project)
                if not os.path.exists(path):
                    errors.append(f"{rel}: imported {project} does not exist")
                    continue
                try:
                    defined |= defined_properties(ET.parse(path))
                except ET.ParseError:
                    pass
            if local(el.tag) in ("ClCompile", "ClInclude", "Inf") and "Include" in el.attrib:
                inc = el.attrib["Include"]
                if "$(" not in inc and "*" not in inc and not os.path.exists(to_local_path(here, inc)):
                    errors.append(f"{rel}: {local(el.tag)} {inc} does not exist")
        for text in texts(tree):
            for m in re.finditer(r"\$\(\[([^\]]+)\]::(\w+)", text):
                fn = f"[{m.group(1)}]::{m.group(2)}"
                if fn not in PROPERTY_FUNCTIONS:
                    errors.append(f"{rel}: property function {fn} not in the documented list")
            for m in re.finditer(r"\$\((\w+)((?:\.\w+)?)", text):
                name, method = m.group(1), m.group(2)[1:]
                if name not in defined and name not in KNOWN_PROPERTIES:
                    errors.append(f"{rel}: $({name}) is neither defined nor a documented property")
                if method and method not in STRING_METHODS:
                    errors.append(f"{rel}: $({name}.{method}(...)) is not in the documented list")
            for m in re.finditer(r"%\((\w+)\)", text):
                if m.group(1) not in KNOWN_METADATA:
                    errors.append(f"{rel}: %({m.group(1)}) is not known item metadata")
            for m in re.finditer(r"@\((\w+)", text):
                if m.group(1) not in items:
                    errors.append(f"{rel}: @({m.group(1)}) is not an item defined in the file")
    try:
        inf_build()
    except ValueError as e:
        errors.append(str(e))
    for e in dict.fromkeys(errors):  # each once, in order
        print("error:", e)
    print(f"checked {len(parsed)} files: {', '.join(sorted(parsed))}")
    return 1 if errors else 0


def inf_build():
    text = open(os.path.join(ROOT, INF), encoding="utf-8").read()
    builds = set(re.findall(r"NT\$ARCH\$\.10\.0\.\.\.(\d+)", text))
    if len(builds) != 1:
        raise ValueError(f"{INF}: expected one NT$ARCH$.10.0...<build> decoration, found {sorted(builds)}")
    return int(builds.pop())


# --- a small evaluator for the pair's PropertyGroups -----------------------

class Evaluator:
    def __init__(self, props):
        self.p = dict(props)

    def expand(self, s):
        out, i = [], 0
        while i < len(s):
            if s.startswith("$(", i):
                depth, j = 0, i + 1
                while True:
                    if s[j] == "(":
                        depth += 1
                    elif s[j] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                out.append(self.call(s[i + 2:j]))
                i = j + 1
            else:
                out.append(s[i])
                i += 1
        return "".join(out)

    def arg(self, a):
        a = a.strip()
        if a[0] in "'`" and a[-1] == a[0]:
            return self.expand(a[1:-1])
        raise ValueError(f"unsupported argument {a}")

    def call(self, expr):
        m = re.fullmatch(r"\[MSBuild\]::(\w+)\((.*)\)", expr, re.S)
        if m:
            fn, value = m.group(1), self.arg(m.group(2))
            if fn == "EnsureTrailingSlash":
                return value if value == "" or value[-1] in "\\/" else value + "\\"
            if fn == "NormalizeDirectory":
                path = os.path.abspath(value.replace("\\", "/"))
                return path.rstrip("/") + "/"
            raise ValueError(f"unsupported function {fn}")
        m = re.fullmatch(r"(\w+)(?:\.(\w+)\((.*)\))?", expr, re.S)
        if not m:
            raise ValueError(f"unsupported expression $({expr})")
        value = self.p.get(m.group(1), "")
        method = m.group(2)
        if method is None:
            return value
        if method == "TrimEnd":
            chars = self.arg(m.group(3))
            return value.rstrip(chars + ("/" if "\\" in chars else ""))
        if method == "StartsWith":
            return "True" if value.startswith(self.arg(m.group(3))) else "False"
        if method == "ToUpperInvariant":
            return value.upper()
        raise ValueError(f"unsupported method {method}")

    def condition(self, cond):
        if cond is None:
            return True
        result = True
        for clause in re.split(r"\s+and\s+", cond.strip()):
            m = re.fullmatch(r"'(.*)'\s*(==|!=)\s*'(.*)'", clause.strip(), re.S)
            if not m:
                raise ValueError(f"unsupported condition {clause}")
            left, right = self.expand(m.group(1)).lower(), self.expand(m.group(3)).lower()
            result = result and ((left == right) if m.group(2) == "==" else (left != right))
        return result

    def load(self, path):
        self.p["MSBuildThisFileDirectory"] = os.path.dirname(path) + "/"
        for el in ET.parse(path).getroot():
            if local(el.tag) == "PropertyGroup" and self.condition(el.attrib.get("Condition")):
                for c in el:
                    if self.condition(c.attrib.get("Condition")):
                        self.p[local(c.tag)] = self.expand((c.text or "").strip())


def evaluate(assignments, directory=None):
    """The pair in c-samples/, or safewsk.props + safewsk.targets in DIRECTORY
    (an unpacked package's build/native/)."""
    ev = Evaluator(dict(a.split("=", 1) for a in assignments))
    if directory:
        ev.load(os.path.join(os.path.abspath(directory), "safewsk.props"))
        ev.load(os.path.join(os.path.abspath(directory), "safewsk.targets"))
    else:
        ev.load(os.path.join(ROOT, "c-samples/safewsk.props"))
        ev.load(os.path.join(ROOT, "c-samples/safewsk.targets"))
    return ev


def main(argv):
    if len(argv) < 2 or argv[1] == "check":
        return check()
    if argv[1] == "cargo-command":
        ev = evaluate(argv[2:])
        line = ev.expand("$(SafeWskCargo) $(SafeWskCargoArguments)")
        for a in shlex.split(line.replace("\\", "/")):
            print(a)
        return 0
    if argv[1] == "property":
        args, directory = argv[3:], None
        if args and args[0].startswith("--dir="):
            directory, args = args[0][len("--dir="):], args[1:]
        print(evaluate(args, directory).p.get(argv[2], "").replace("\\", "/"))
        return 0
    if argv[1] == "inf-build":
        print(inf_build())
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
