//! Instruction counts (issue 12, goal 2): what safewsk costs per call over
//! the hand-written WSK sequence, counted by callgrind rather than timed.
//!
//!     cargo bench --bench safewsk_bench -- --instructions [--n N] [--rounds R] [--runs K]
//!
//! (`bash .ci/icount` does the same, installing valgrind first if needed.)
//! The bench runs itself under `valgrind --tool=callgrind` K times
//! (default 3); each run does R rounds (default 3, after a warm-up round)
//! of N (default 200) synchronous connects, sends, receives (64 bytes of
//! non-paged pool) and closes through safewsk and through the hand-written
//! sequence (`handwritten.rs`), every phase in its own callgrind dump (see
//! `workload.rs`). `callgrind.rs` attributes each dump's instructions by
//! source file: safewsk's own code, the hand-written code, the host kernel
//! (reported separately: the emulated NT/WSK is not what Windows costs),
//! the std/libc work under it, the bench's loops and servers. Figures are
//! medians per operation over all rounds of all runs, with their spread.
//!
//! Why client requests and not `--toggle-collect`: toggling is per thread,
//! and the provider completes IRPs (and runs the completion routines) on
//! its own threads; CALLGRIND_ZERO_STATS / CALLGRIND_DUMP_STATS_AT cover
//! every thread, so a dump holds the whole phase and nothing else. Why by
//! source file and not by symbol: LTO inlines across crates, and the line
//! tables (`[profile.bench] debug = "line-tables-only"`) still name each
//! inlined instruction's file.

pub mod callgrind;
pub mod handwritten;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use callgrind::{Cat, Dump, CATS};

/// Bytes per send and receive.
pub const PAYLOAD: u32 = 64;
/// The deadline of every call with one (not reached).
pub const TIMEOUT_MS: u32 = 5000;
/// The flag that runs the workload (in the child under valgrind).
pub const WORKLOAD_FLAG: &str = "--icount-workload";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Side {
    Safewsk,
    Handwritten,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Safewsk => "safewsk",
            Side::Handwritten => "hand-written",
        }
    }

    fn own(self) -> Cat {
        match self {
            Side::Safewsk => Cat::Library,
            Side::Handwritten => Cat::Handwritten,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Phase {
    Connect,
    Send,
    Receive,
    Close,
    /// SafeWskAccept / WskAccept of a connection already waiting (issue 20).
    Accept,
    /// SafeWskSendTo / WskSendTo of 64 bytes.
    SendTo,
    /// SafeWskReceiveFrom / WskReceiveFrom of a 64-byte datagram waiting.
    ReceiveFrom,
}

/// The connection socket's calls (the first rows of the table).
pub const PHASES: [Phase; 4] = [Phase::Connect, Phase::Send, Phase::Receive, Phase::Close];
/// The server and datagram calls (issue 20: their own rows).
pub const SERVER_PHASES: [Phase; 3] = [Phase::Accept, Phase::SendTo, Phase::ReceiveFrom];
/// Every phase the workload dumps.
pub const ALL_PHASES: [Phase; 7] =
    [Phase::Connect, Phase::Send, Phase::Receive, Phase::Close, Phase::Accept, Phase::SendTo, Phase::ReceiveFrom];

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Send => "send",
            Phase::Receive => "receive",
            Phase::Close => "close",
            Phase::Accept => "accept",
            Phase::SendTo => "sendto",
            Phase::ReceiveFrom => "recvfrom",
        }
    }
}

/// Settings from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub n: usize,
    pub rounds: usize,
    pub runs: usize,
}

impl Settings {
    pub fn from_args(args: &[String], runs: usize) -> Settings {
        let get = |flag: &str, default: usize| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse().ok())
                .filter(|&v: &usize| v > 0)
                .unwrap_or(default)
        };
        Settings { n: get("--n", 200), rounds: get("--rounds", 3), runs: get("--runs", runs) }
    }
}

/// The child: the workload itself (`<exe> --icount-workload --n N --rounds R`).
pub fn workload_main(args: &[String]) {
    let s = Settings::from_args(args, 1);
    if !workload::running_on_valgrind() {
        eprintln!("note: not under valgrind; the workload runs, but nothing is counted");
    }
    workload::run(s.n, s.rounds);
}

/// One measured phase of one round of one run, per operation.
struct Sample {
    run: usize,
    dump: Dump,
    n: f64,
}

impl Sample {
    fn cat(&self, c: Cat) -> f64 {
        self.dump.by_cat.get(&c).map_or(0.0, |x| x.ir as f64) / self.n
    }
    fn total(&self) -> f64 {
        self.dump.total.ir as f64 / self.n
    }
    fn syscalls(&self) -> f64 {
        self.dump.total.syscalls as f64 / self.n
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> f64 {
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    let min = v.iter().cloned().fold(f64::MAX, f64::min);
    if v.is_empty() {
        0.0
    } else {
        max - min
    }
}

/// The repository root, as the line tables name it.
fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

fn valgrind_version() -> Option<String> {
    let out = Command::new("valgrind").arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs the workload under callgrind once; the dumps, attributed.
fn run_once(s: Settings, dir: &Path) -> Result<Vec<Dump>, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = dir.join("callgrind.out");
    let o = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        // One cost line per source line, file names and positions spelled
        // out (no compression), system call counts as a second event.
        .args(["--dump-instr=no", "--dump-line=yes", "--compress-strings=no", "--compress-pos=no"])
        .arg("--collect-systime=yes")
        .arg(exe)
        .args([WORKLOAD_FLAG, "--n", &s.n.to_string(), "--rounds", &s.rounds.to_string()])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !o.status.success() {
        return Err(format!("the workload under callgrind failed:\n{}", String::from_utf8_lossy(&o.stderr)));
    }
    let mut dumps = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // callgrind.out.<part> are the client-request dumps; callgrind.out
        // itself is the rest of the run (start-up, teardown): ignored.
        if name.starts_with("callgrind.out.") {
            let text = std::fs::read_to_string(e.path()).map_err(|e| e.to_string())?;
            dumps.push(callgrind::parse(&text, root()));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(dumps)
}

/// The measurement: every sample by side and phase.
pub struct Report {
    settings: Settings,
    valgrind: String,
    samples: BTreeMap<(Side, Phase), Vec<Sample>>,
}

/// Runs the workload K times under callgrind.
pub fn measure(s: Settings) -> Result<Report, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("needs x86-64 (the callgrind client requests are x86-64 assembly)".into());
    }
    let valgrind =
        valgrind_version().ok_or("valgrind is not installed (apt-get install valgrind, or run `bash .ci/icount`)")?;
    let mut samples: BTreeMap<(Side, Phase), Vec<Sample>> = BTreeMap::new();
    for run in 0..s.runs {
        let dir: PathBuf = std::env::temp_dir().join(format!("safewsk-icount-{}-{run}", std::process::id()));
        for dump in run_once(s, &dir)? {
            // "<side> <phase> <round>"; round 0 is the warm-up.
            let mut parts = dump.label.rsplitn(3, ' ');
            let round: usize = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
            let phase = parts.next().and_then(|p| ALL_PHASES.into_iter().find(|x| x.name() == p));
            let side =
                parts.next().and_then(|x| [Side::Safewsk, Side::Handwritten].into_iter().find(|y| y.name() == x));
            if let (Some(side), Some(phase), true) = (side, phase, round > 0) {
                samples.entry((side, phase)).or_default().push(Sample { run, dump, n: s.n as f64 });
            }
        }
    }
    for side in [Side::Safewsk, Side::Handwritten] {
        for phase in ALL_PHASES {
            let got = samples.get(&(side, phase)).map_or(0, |v| v.len());
            if got != s.rounds * s.runs {
                return Err(format!("{} {}: {got} dumps, expected {}", side.name(), phase.name(), s.rounds * s.runs));
            }
        }
    }
    Ok(Report { settings: s, valgrind, samples })
}

impl Report {
    fn get(&self, side: Side, phase: Phase) -> &[Sample] {
        self.samples.get(&(side, phase)).map_or(&[], |v| v.as_slice())
    }

    /// Median per operation of `f` over the samples.
    fn med(&self, side: Side, phase: Phase, f: impl Fn(&Sample) -> f64) -> f64 {
        median(self.get(side, phase).iter().map(f).collect())
    }

    fn own(&self, side: Side, phase: Phase) -> f64 {
        self.med(side, phase, |x| x.cat(side.own()))
    }

    /// The sample whose own count is the median (for the breakdowns).
    fn median_sample(&self, side: Side, phase: Phase) -> Option<&Sample> {
        let m = self.own(side, phase);
        self.get(side, phase).iter().find(|x| x.cat(side.own()) == m)
    }

    /// Spread (max - min) per operation of a side's own count, over all
    /// rounds of all runs, and over the runs' medians.
    fn own_spread(&self, side: Side, phase: Phase) -> (f64, f64) {
        let all: Vec<f64> = self.get(side, phase).iter().map(|x| x.cat(side.own())).collect();
        let per_run: Vec<f64> = (0..self.settings.runs)
            .map(|r| median(self.get(side, phase).iter().filter(|x| x.run == r).map(|x| x.cat(side.own())).collect()))
            .collect();
        (spread(&all), spread(&per_run))
    }

    /// The full report.
    pub fn text(&self) -> String {
        let s = self.settings;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Instruction counts ({}, callgrind): {} runs x {} rounds x {} operations per phase \
             (64-byte sends/receives from non-paged pool), medians per operation",
            self.valgrind, s.runs, s.rounds, s.n
        );
        let _ = writeln!(o);
        let _ = write!(o, "| operation | side | own code |");
        for c in &CATS[2..] {
            let _ = write!(o, " {} |", c.name());
        }
        let _ = writeln!(o, " total | system calls |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
        for phase in ALL_PHASES {
            for side in [Side::Safewsk, Side::Handwritten] {
                let _ = write!(o, "| {} | {} | {:.1} |", phase.name(), side.name(), self.own(side, phase));
                for &c in &CATS[2..] {
                    let _ = write!(o, " {:.1} |", self.med(side, phase, |x| x.cat(c)));
                }
                let _ = writeln!(
                    o,
                    " {:.1} | {:.2} |",
                    self.med(side, phase, Sample::total),
                    self.med(side, phase, Sample::syscalls)
                );
            }
        }
        let _ = writeln!(o);
        for phase in ALL_PHASES {
            let _ = writeln!(o, "{}: own instructions per operation by source file, and kernel calls", phase.name());
            for side in [Side::Safewsk, Side::Handwritten] {
                let Some(m) = self.median_sample(side, phase) else { continue };
                let mut files: Vec<(&String, &u64)> =
                    m.dump.by_file.iter().filter(|((c, _), _)| *c == side.own()).map(|((_, f), v)| (f, v)).collect();
                files.sort_by(|a, b| b.1.cmp(a.1));
                let files: Vec<String> = files.iter().map(|(f, v)| format!("{f} {:.1}", **v as f64 / m.n)).collect();
                let _ = writeln!(o, "  {:<12} by file: {}", side.name(), files.join(", "));
                let mut funcs: Vec<(&String, &u64)> = m
                    .dump
                    .by_function
                    .iter()
                    .filter(|((c, _), _)| *c == side.own())
                    .map(|((_, f), v)| (f, v))
                    .collect();
                funcs.sort_by(|a, b| b.1.cmp(a.1));
                let funcs: Vec<String> = funcs.iter().map(|(f, v)| format!("{f} {:.1}", **v as f64 / m.n)).collect();
                let _ = writeln!(o, "  {:<12} by function: {}", side.name(), funcs.join(", "));
                let calls: Vec<String> = m
                    .dump
                    .kernel_calls
                    .iter()
                    .filter(|((c, _), _)| *c == side.own())
                    .map(|((_, f), k)| {
                        if k.calls == 0 {
                            format!("{f} ({:.0} emulated)", k.inclusive.ir as f64 / m.n)
                        } else {
                            format!("{f} x{:.2} ({:.0} emulated)", k.calls as f64 / m.n, k.inclusive.ir as f64 / m.n)
                        }
                    })
                    .collect();
                let _ = writeln!(o, "  {:<12} kernel calls: {}", side.name(), calls.join(", "));
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "Repeatability (max - min of the own count per operation):");
        for phase in ALL_PHASES {
            for side in [Side::Safewsk, Side::Handwritten] {
                let (all, runs) = self.own_spread(side, phase);
                let _ = writeln!(
                    o,
                    "  {} {}: {:.2} over all {} rounds, {:.2} between the {} runs' medians",
                    side.name(),
                    phase.name(),
                    all,
                    s.rounds * s.runs,
                    runs,
                    s.runs
                );
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "{}", self.headline());
        o
    }

    /// "safewsk adds X instructions per connect, ..." with the hand-written
    /// counts and the ratios.
    pub fn headline(&self) -> String {
        let mut o = String::new();
        let extra: Vec<String> = ALL_PHASES
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let unit = if i == 0 { " instructions" } else { "" };
                format!("{:.0}{unit} per {}", self.own(Side::Safewsk, p) - self.own(Side::Handwritten, p), p.name())
            })
            .collect();
        let _ = writeln!(o, "safewsk adds {} over the hand-written code.", extra.join(", "));
        let (worst, phase) = ALL_PHASES
            .iter()
            .map(|&p| (self.own(Side::Safewsk, p) - self.own(Side::Handwritten, p), p))
            .fold((f64::MIN, Phase::Connect), |a, b| if b.0 > a.0 { b } else { a });
        let _ = writeln!(
            o,
            "Bound: safewsk's own code adds at most {worst:.0} instructions per call ({}); where they go: \
             the source files and functions above, and the kernel calls it makes that the hand-written code does not.",
            phase.name()
        );
        for p in ALL_PHASES {
            let (w, h) = (self.own(Side::Safewsk, p), self.own(Side::Handwritten, p));
            let (tw, th) = (self.med(Side::Safewsk, p, Sample::total), self.med(Side::Handwritten, p, Sample::total));
            let _ = writeln!(
                o,
                "  {}: safewsk's own code {:.0} vs the hand-written code's {:.0} instructions (ratio {:.2}); \
                 the whole call with the emulated kernel and std/libc {:.0} vs {:.0} (ratio {:.3})",
                p.name(),
                w,
                h,
                w / h,
                tw,
                th,
                tw / th
            );
        }
        o
    }

    /// Rows for the bench's one table: the connection socket's calls, then
    /// the server and datagram calls (issue 20).
    pub fn table_rows(&self) -> Vec<String> {
        let mut rows = self.rows_for(&PHASES);
        rows.extend(self.rows_for(&SERVER_PHASES));
        rows
    }

    /// Two rows (own code, whole call) for `phases`.
    fn rows_for(&self, phases: &[Phase]) -> Vec<String> {
        let s = self.settings;
        let names = phases.iter().map(|p| p.name()).collect::<Vec<_>>().join(" / ");
        let join = |f: &dyn Fn(Phase) -> String| phases.iter().map(|&p| f(p)).collect::<Vec<_>>().join(" / ");
        let per = |side| join(&|p| format!("{:.0}", self.own(side, p)));
        let ratio = join(&|p| format!("{:.2}", self.own(Side::Safewsk, p) / self.own(Side::Handwritten, p)));
        let total = |side| join(&|p| format!("{:.0}", self.med(side, p, Sample::total)));
        let total_ratio = join(&|p| {
            format!("{:.3}", self.med(Side::Safewsk, p, Sample::total) / self.med(Side::Handwritten, p, Sample::total))
        });
        let extra = join(&|p| format!("{:+.0}", self.own(Side::Safewsk, p) - self.own(Side::Handwritten, p)));
        let spread = phases
            .iter()
            .flat_map(|&p| [Side::Safewsk, Side::Handwritten].map(|side| self.own_spread(side, p).0))
            .fold(0.0, f64::max);
        vec![
            format!(
                "| instructions per {names}, own code (callgrind, median of {} runs x {} rounds x {}; spread {spread:.1}) | {} | {} (hand-written IRP sequence) | {} ({extra}) |",
                s.runs, s.rounds, s.n, per(Side::Safewsk), per(Side::Handwritten), ratio
            ),
            format!(
                "| instructions per {names}, whole call incl. the emulated kernel | {} | {} | {} |",
                total(Side::Safewsk),
                total(Side::Handwritten),
                total_ratio
            ),
        ]
    }
}

/// `cargo bench --bench safewsk_bench -- --instructions`: the full report.
pub fn instructions_main(args: &[String]) {
    let s = Settings::from_args(args, 3);
    match measure(s) {
        Ok(r) => print!("{}", r.text()),
        Err(e) => {
            eprintln!("instruction count: {e}");
            std::process::exit(1);
        }
    }
}

/// Rows for the default bench table: one run, or a row saying why not.
pub fn table_rows() -> Vec<String> {
    let s = Settings { n: 200, rounds: 3, runs: 1 };
    match measure(s) {
        Ok(r) => r.table_rows(),
        Err(e) => vec![format!(
            "| instructions per call (callgrind) | not measured: {} | - | - |",
            e.lines().next().unwrap_or("")
        )],
    }
}
