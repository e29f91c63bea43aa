//! Driver Verifier-style bookkeeping: live objects, contract violations,
//! fault injection, and the per-test [`Session`] that checks them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What kind of kernel object a live-object record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Irp,
    Pool,
    Mdl,
    Socket,
    Registration,
    Device,
    Thread,
    /// A page locked by MmProbeAndLockPages and not yet unlocked (counted
    /// once per MDL that locks it).
    LockedPage,
    /// A cached security descriptor (WSK_CACHE_SD) not yet released
    /// (WSK_RELEASE_SD), counted per successful WSK_CACHE_SD.
    CachedSd,
}

/// Counts of live objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub irps: usize,
    pub pool_blocks: usize,
    pub mdls: usize,
    pub sockets: usize,
    pub registrations: usize,
    pub devices: usize,
    pub threads: usize,
    /// Pages locked by MmProbeAndLockPages and not unlocked by MmUnlockPages
    /// (one count per page per locking MDL). Non-zero at the end of a test is
    /// a leak: on Windows those physical pages stay locked until reboot.
    pub locked_pages: usize,
    /// Cached security descriptors (WSK_CACHE_SD) not released: on Windows
    /// the provider's copy stays allocated for ever.
    pub cached_sds: usize,
}

/// Allocation sites where a failure can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    Irp,
    Pool,
    Mdl,
    /// IoSetCompletionRoutineEx's context (the I/O manager's allocation).
    CompletionContext,
    /// MmProbeAndLockPages: the nth probe raises the exception set with
    /// [`Session::fail_probe`] (STATUS_ACCESS_VIOLATION with `fail_nth`).
    Probe,
}

/// Allocations made since the process started: (count, bytes) per site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocations {
    pub irps: (u64, u64),
    pub pool: (u64, u64),
    pub mdls: (u64, u64),
    pub completion_contexts: (u64, u64),
}

pub(crate) struct State {
    pub live: HashMap<Kind, usize>,
    pub allocations: Allocations,
    pub violations: Vec<String>,
    /// Site -> (allocations seen, fail the one with this 1-based number).
    pub faults: HashMap<Site, (u32, u32)>,
    /// Blocks freed during the session: (address, length). Filled with
    /// POISON, checked at the end for writes after free, then released.
    pub quarantine: Vec<(usize, std::alloc::Layout)>,
}

pub(crate) static STATE: Mutex<Option<State>> = Mutex::new(None);
static SESSION: Mutex<()> = Mutex::new(());
pub(crate) static PROVIDER_CALLS: AtomicU64 = AtomicU64::new(0);
pub(crate) const POISON: u8 = 0xDD;

pub(crate) fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let s = g.get_or_insert_with(|| State {
        live: HashMap::new(),
        allocations: Allocations::default(),
        violations: Vec::new(),
        faults: HashMap::new(),
        quarantine: Vec::new(),
    });
    f(s)
}

/// Records a contract violation (what Driver Verifier would bugcheck on).
pub(crate) fn violation(msg: impl Into<String>) {
    let msg = msg.into();
    eprintln!("*** hostkernel: CONTRACT VIOLATION: {msg}");
    if std::env::var_os("HOSTKERNEL_BUGCHECK").is_some() {
        eprintln!("*** hostkernel: HOSTKERNEL_BUGCHECK is set: stopping like a bugcheck");
        std::process::abort();
    }
    with_state(|s| s.violations.push(msg));
}

pub(crate) fn add_live(kind: Kind, delta: isize) {
    with_state(|s| {
        let n = s.live.entry(kind).or_insert(0);
        *n = n.saturating_add_signed(delta);
    });
}

/// Counts a successful allocation of `bytes` at `site`.
pub(crate) fn count_allocation(site: Site, bytes: usize) {
    with_state(|s| {
        let slot = match site {
            Site::Irp => &mut s.allocations.irps,
            Site::Pool => &mut s.allocations.pool,
            Site::Mdl => &mut s.allocations.mdls,
            Site::CompletionContext => &mut s.allocations.completion_contexts,
            Site::Probe => return,
        };
        slot.0 += 1;
        slot.1 += bytes as u64;
    });
}

/// Allocations made so far (cumulative, never reset).
pub fn allocations() -> Allocations {
    with_state(|s| s.allocations)
}

/// Whether the allocation now being made at `site` is the one to fail.
pub(crate) fn inject_failure(site: Site) -> bool {
    with_state(|s| match s.faults.get_mut(&site) {
        Some((seen, nth)) if *nth > 0 => {
            *seen += 1;
            *seen == *nth
        }
        _ => false,
    })
}

/// How many freed blocks stay poisoned before the oldest are checked and
/// released (bounds memory in runs without sessions, such as fuzzing).
const QUARANTINE_MAX: usize = 1 << 16;

pub(crate) fn quarantine(addr: *mut u8, layout: std::alloc::Layout) {
    // SAFETY: the block is live, `layout.size()` bytes long, and ours to poison.
    unsafe { std::ptr::write_bytes(addr, POISON, layout.size()) };
    let old = with_state(|s| {
        s.quarantine.push((addr as usize, layout));
        if s.quarantine.len() > QUARANTINE_MAX {
            s.quarantine.drain(..QUARANTINE_MAX / 2).collect::<Vec<_>>()
        } else {
            Vec::new()
        }
    });
    for problem in release_quarantined(old) {
        violation(problem);
    }
}

/// Checks that released blocks were not written after free, then frees them.
fn release_quarantined(blocks: Vec<(usize, std::alloc::Layout)>) -> Vec<String> {
    let mut problems = Vec::new();
    for (addr, layout) in blocks {
        // SAFETY: quarantined blocks are ours, `layout` long, never handed out again.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, layout.size()) };
        if let Some(at) = bytes.iter().position(|b| *b != POISON) {
            problems.push(format!("block at {addr:#x} was written after it was freed (offset {at:#x})"));
        }
        // SAFETY: allocated with this layout by the host kernel.
        unsafe { std::alloc::dealloc(addr as *mut u8, layout) };
    }
    problems
}

/// Current live-object counts.
pub fn live() -> Live {
    with_state(|s| Live {
        irps: *s.live.get(&Kind::Irp).unwrap_or(&0),
        pool_blocks: *s.live.get(&Kind::Pool).unwrap_or(&0),
        mdls: *s.live.get(&Kind::Mdl).unwrap_or(&0),
        sockets: *s.live.get(&Kind::Socket).unwrap_or(&0),
        registrations: *s.live.get(&Kind::Registration).unwrap_or(&0),
        devices: *s.live.get(&Kind::Device).unwrap_or(&0),
        threads: *s.live.get(&Kind::Thread).unwrap_or(&0),
        locked_pages: *s.live.get(&Kind::LockedPage).unwrap_or(&0),
        cached_sds: *s.live.get(&Kind::CachedSd).unwrap_or(&0),
    })
}

/// Violations recorded so far in this session.
pub fn violations() -> Vec<String> {
    with_state(|s| s.violations.clone())
}

/// How many times the WSK provider's WskSocketConnect was called.
pub fn provider_connect_calls() -> u64 {
    PROVIDER_CALLS.load(Ordering::SeqCst)
}

/// One test's exclusive use of the host kernel. Tests in one process are
/// serialized by it, so the global accounting belongs to one test at a time.
pub struct Session {
    _guard: MutexGuard<'static, ()>,
}

impl Session {
    /// Starts a clean session: no faults, provider ready and asynchronous,
    /// zero counts. Panics if objects leaked by an earlier test are still live.
    pub fn begin() -> Session {
        let guard = SESSION.lock().unwrap_or_else(|e| e.into_inner());
        with_state(|s| {
            s.violations.clear();
            s.faults.clear();
        });
        PROVIDER_CALLS.store(0, Ordering::SeqCst);
        crate::io::reset_memory();
        crate::wsk::reset_provider();
        crate::wsk_client_control::reset();
        crate::image::reset();
        crate::timer::reset();
        crate::spin_lock::reset();
        crate::hard_fault::reset();
        crate::hold::reset();
        crate::sysroutine::reset();
        crate::event::reset_longest_finite_wait();
        crate::rtl::reset_dbgprint_masks();
        crate::irql::set(crate::nt::PASSIVE_LEVEL);
        Session { _guard: guard }
    }

    /// Fails the `nth` (1-based) allocation at `site` from now on; 0 disables.
    pub fn fail_nth(&self, site: Site, nth: u32) {
        with_state(|s| {
            s.faults.insert(site, (0, nth));
        });
    }

    /// Makes the `nth` (1-based) MmProbeAndLockPages from now on raise
    /// `code` instead of locking (what Windows does when the pages cannot be
    /// made resident or do not allow the access: STATUS_ACCESS_VIOLATION,
    /// STATUS_INSUFFICIENT_RESOURCES, STATUS_WORKING_SET_QUOTA, ...).
    pub fn fail_probe(&self, nth: u32, code: crate::nt::NTSTATUS) {
        crate::io::set_probe_exception(code);
        self.fail_nth(Site::Probe, nth);
    }

    /// Whether the failure set with [`Session::fail_nth`] at `site` has been
    /// injected (the operation made at least `nth` allocations there).
    pub fn fault_hit(&self, site: Site) -> bool {
        with_state(|s| s.faults.get(&site).is_some_and(|(seen, nth)| *nth > 0 && seen >= nth))
    }

    /// Ends the session and asserts that nothing leaked, nothing was written
    /// after being freed, and no contract was violated. Completions still
    /// running on provider threads get up to two seconds to settle.
    pub fn finish(self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while live() != Live::default() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        while crate::timer::queued_timers() != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let leaked = live();
        let mut problems = violations();
        let timers = crate::timer::queued_timers();
        if timers != 0 {
            problems.push(format!("{timers} timer(s) still queued at the end of the test"));
        }
        let unhandled = crate::io::unhandled_exceptions();
        if unhandled != 0 {
            problems.push(format!(
                "{unhandled} exception(s) raised by MmProbeAndLockPages were never handled \
                 (KMODE_EXCEPTION_NOT_HANDLED on Windows: the call needs __try/__except)"
            ));
        }
        crate::io::reset_memory();
        let quarantined = with_state(|s| {
            s.live.clear();
            s.violations.clear();
            s.faults.clear();
            std::mem::take(&mut s.quarantine)
        });
        problems.extend(release_quarantined(quarantined));
        problems.extend(crate::wsk_reuse::release());
        if leaked != Live::default() {
            problems.insert(0, format!("objects leaked at the end of the test: {leaked:?}"));
        }
        assert!(problems.is_empty(), "hostkernel: {problems:#?}");
    }
}
