//! Reads one callgrind dump (written with `--dump-instr=no --dump-line=yes
//! --compress-strings=no --compress-pos=no --collect-systime=yes`) and
//! attributes its instructions.
//!
//! Attribution is by source file first, so it is robust to inlining in any
//! direction (LTO may inline a host-kernel export into the library, or the
//! library's exports into the bench): every cost line carries the file of
//! the instructions (`fl=`, and `fi=`/`fe=` for inlined code), and
//! - `src/` of this repository is the library (safewsk),
//! - `benches/icount/handwritten.rs` is the hand-written sequence,
//! - `hostkernel/` is the host kernel (the emulated NT/WSK),
//! - any other file of the repository (the bench's loops, the servers) is
//!   the driver.
//!
//! Instructions from files outside the repository (core, alloc, std, libc)
//! belong to the function they were compiled into, classified the same way
//! by its own file or, failing that, by its symbol (`safewsk::`,
//! `hostkernel::`, `handwritten::`, `safewsk_bench::`); what is left is the
//! runtime (std, libc, the dynamic loader). Then a call from a line of the
//! library or of the hand-written code into a runtime function (memcpy, say)
//! charges that call's inclusive cost to the caller, and a call from the
//! host kernel into the runtime (mutexes, thread spawns, socket syscalls) is
//! charged to "host kernel: std/libc below it". System call counts
//! (`sysCount`, deterministic, unlike `sysTime`) follow the same rules.

use std::collections::BTreeMap;

/// Where instructions belong.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Cat {
    /// safewsk's own code.
    Library,
    /// The hand-written WSK sequence.
    Handwritten,
    /// The host kernel's own code (hostkernel/).
    HostKernel,
    /// std/libc called from the host kernel.
    HostRuntime,
    /// The bench's loops and loopback servers.
    Driver,
    /// Everything else: std/libc not called from our code (thread start and
    /// exit, the dynamic loader), valgrind's own redirections.
    Runtime,
}

pub const CATS: [Cat; 6] =
    [Cat::Library, Cat::Handwritten, Cat::HostKernel, Cat::HostRuntime, Cat::Driver, Cat::Runtime];

impl Cat {
    pub fn name(self) -> &'static str {
        match self {
            Cat::Library => "safewsk (library)",
            Cat::Handwritten => "hand-written sequence",
            Cat::HostKernel => "host kernel (emulated NT/WSK)",
            Cat::HostRuntime => "host kernel: std/libc below it",
            Cat::Driver => "bench loop and servers",
            Cat::Runtime => "other std/libc/loader",
        }
    }
}

/// Instructions and system calls.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Cost {
    pub ir: u64,
    pub syscalls: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.ir += o.ir;
        self.syscalls += o.syscalls;
    }
}

impl std::ops::SubAssign for Cost {
    fn sub_assign(&mut self, o: Cost) {
        self.ir = self.ir.saturating_sub(o.ir);
        self.syscalls = self.syscalls.saturating_sub(o.syscalls);
    }
}

/// Calls from one side's code into one host-kernel function.
#[derive(Clone, Copy, Default, Debug)]
pub struct KernelCalls {
    pub calls: u64,
    /// Inclusive cost of those calls (the emulation's, not Windows').
    pub inclusive: Cost,
}

/// One dump, attributed.
#[derive(Default, Debug)]
pub struct Dump {
    /// The label given to CALLGRIND_DUMP_STATS_AT.
    pub label: String,
    /// The dump's total (its `summary:` line).
    pub total: Cost,
    pub by_cat: BTreeMap<Cat, Cost>,
    /// Library and hand-written instructions by source file (inlined code
    /// under its own file; runtime helpers they call under "(runtime helpers)").
    pub by_file: BTreeMap<(Cat, String), u64>,
    /// Library and hand-written instructions by the function (symbol) they
    /// were compiled into.
    pub by_function: BTreeMap<(Cat, String), u64>,
    /// Host-kernel functions called from library / hand-written lines.
    pub kernel_calls: BTreeMap<(Cat, String), KernelCalls>,
}

/// Classifies a file of the repository at `root`; None outside it.
fn file_cat(root: &str, file: &str) -> Option<Cat> {
    let rel = file.strip_prefix(root)?.trim_start_matches('/');
    Some(if rel.starts_with("src/") {
        Cat::Library
    } else if rel.starts_with("hostkernel/") {
        Cat::HostKernel
    } else if rel == "benches/icount/handwritten.rs" {
        Cat::Handwritten
    } else {
        Cat::Driver
    })
}

/// A function's category: by its file, else by its symbol.
fn fn_cat(root: &str, file: &str, name: &str) -> Cat {
    if let Some(c) = file_cat(root, file) {
        return c;
    }
    if name.contains("icount::handwritten::") {
        Cat::Handwritten
    } else if name.contains("hostkernel::") {
        Cat::HostKernel
    } else if name.contains("safewsk::") || name.starts_with("SafeWsk") {
        Cat::Library
    } else if name.contains("safewsk_bench::") {
        Cat::Driver
    } else {
        Cat::Runtime
    }
}

/// The category of a cost line in `file`, inside a function of category `f`.
fn line_cat(root: &str, file: &str, f: Cat) -> Cat {
    match file_cat(root, file) {
        Some(c) => c,
        None => f,
    }
}

/// `fn=name'2` (callgrind's recursion suffix) is the function `name`.
fn base_name(name: &str) -> &str {
    match name.rfind('\'') {
        Some(i) if name[i + 1..].chars().all(|c| c.is_ascii_digit()) => &name[..i],
        _ => name,
    }
}

fn parse_cost(line: &str) -> Option<Cost> {
    let mut it = line.split_whitespace();
    let _position = it.next()?;
    let ir = it.next().map_or(Some(0), |v| v.parse().ok())?;
    let syscalls = it.next().map_or(Some(0), |v| v.parse().ok())?;
    Some(Cost { ir, syscalls })
}

/// Parses and attributes one dump; `root` is the repository's directory.
pub fn parse(text: &str, root: &str) -> Dump {
    let mut d = Dump::default();
    let (mut fl, mut file, mut func) = (String::new(), String::new(), String::new());
    let mut fcat = Cat::Runtime;
    let mut callee_file = String::new();
    let mut callee = String::new();
    let mut pending: Option<u64> = None;
    // Inclusive costs of runtime calls charged to their callers, taken out
    // of the runtime's exclusive total at the end.
    let mut moved = Cost::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("desc: Trigger: Client Request: ") {
            d.label = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("summary: ").or_else(|| line.strip_prefix("totals: ")) {
            d.total = parse_cost(&format!("0 {v}")).unwrap_or_default();
        } else if let Some(v) = line.strip_prefix("fl=") {
            fl = v.to_string();
            file = fl.clone();
        } else if let Some(v) = line.strip_prefix("fi=").or_else(|| line.strip_prefix("fe=")) {
            file = v.to_string();
        } else if let Some(v) = line.strip_prefix("fn=") {
            func = base_name(v).to_string();
            file = fl.clone();
            fcat = fn_cat(root, &fl, &func);
            callee_file = fl.clone();
        } else if let Some(v) = line.strip_prefix("cfi=").or_else(|| line.strip_prefix("cfl=")) {
            callee_file = v.to_string();
        } else if let Some(v) = line.strip_prefix("cfn=") {
            callee = base_name(v).to_string();
        } else if let Some(v) = line.strip_prefix("calls=") {
            pending = v.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*') {
            let Some(cost) = parse_cost(line) else { continue };
            let here = line_cat(root, &file, fcat);
            if let Some(calls) = pending.take() {
                // The inclusive cost of a call from this line.
                let target = fn_cat(root, &callee_file, &callee);
                let own = matches!(here, Cat::Library | Cat::Handwritten);
                if own && target == Cat::HostKernel {
                    let k = d.kernel_calls.entry((here, callee.clone())).or_default();
                    k.calls += calls;
                    k.inclusive += cost;
                } else if target == Cat::Runtime && (own || here == Cat::HostKernel) {
                    let to = if own { here } else { Cat::HostRuntime };
                    *d.by_cat.entry(to).or_default() += cost;
                    moved += cost;
                    if own {
                        *d.by_file.entry((here, "(runtime helpers called)".into())).or_default() += cost.ir;
                        *d.by_function.entry((here, callee.clone())).or_default() += cost.ir;
                    }
                }
                callee_file = fl.clone();
                continue;
            }
            *d.by_cat.entry(here).or_default() += cost;
            if matches!(fcat, Cat::Library | Cat::Handwritten) && here == Cat::HostKernel {
                // Host-kernel code that LTO inlined into the library (or the
                // hand-written code): counted as the host kernel's, and
                // listed with the kernel calls (its call count is lost).
                let rel = file.strip_prefix(root).map_or(file.as_str(), |r| r.trim_start_matches('/'));
                d.kernel_calls.entry((fcat, format!("(inlined by LTO) {rel}"))).or_default().inclusive += cost;
            }
            if matches!(here, Cat::Library | Cat::Handwritten) {
                let rel = file.strip_prefix(root).map_or(file.as_str(), |r| r.trim_start_matches('/'));
                let rel = match rel.find("/library/") {
                    // /rustc/<hash>/library/core/...: core/...
                    Some(i) if rel.starts_with("/rustc/") => &rel[i + 9..],
                    _ => rel,
                };
                *d.by_file.entry((here, rel.to_string())).or_default() += cost.ir;
                *d.by_function.entry((here, func.clone())).or_default() += cost.ir;
            }
        }
    }
    *d.by_cat.entry(Cat::Runtime).or_default() -= moved;
    d
}
