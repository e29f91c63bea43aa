//! Hold points (issue 17): places where the host kernel stops a thread, or
//! a request, until the test lets it go.
//!
//! A test of an overlap ("the close begins while the receive is still
//! paging its buffer in") used to open the window with a delay and hope the
//! other thread got there in time, which a loaded machine defeats. With a
//! hold point the window stays open until the test closes it:
//! [`hold_calls`] at the point, start the call, [`wait_calls_held`] until it
//! is there, do what must overlap, then [`release_calls`]. Windows allows
//! each of these waits (a hard page fault, a provider function that takes
//! its time, a close that pends) to last any length of time.
//!
//! Every point is released at `Session::begin`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::wsk::Op;

/// Where the host kernel can hold a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldPoint {
    /// MmProbeAndLockPages that has to page something in (a hard fault, as
    /// with `set_page_in_delay`): the calling thread blocks there, after the
    /// page-in and before the lock.
    PageIn,
    /// WskControlSocket, at its entry (inside the socket's calls-in-progress
    /// count, as with `set_control_delay`): the calling thread blocks there.
    ControlSocket,
    /// WskCloseSocket: the close pends (STATUS_PENDING) before it ends the
    /// socket's requests, as with `set_close_delay` (the WSK_SOCKET is gone
    /// for the caller already); no thread blocks.
    CloseSocket,
}

#[derive(Default)]
struct Point {
    holding: bool,
    /// Incremented by every release: a held thread goes when it changes.
    generation: u64,
    /// Threads blocked at the point.
    threads: usize,
    /// Requests parked at the point (CloseSocket).
    parked: Vec<Arc<Op>>,
}

static POINTS: Mutex<Option<HashMap<HoldPoint, Point>>> = Mutex::new(None);
static CHANGED: Condvar = Condvar::new();

fn points<R>(f: impl FnOnce(&mut HashMap<HoldPoint, Point>) -> R) -> R {
    let mut g = POINTS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// From now on, calls reaching `point` stop there until [`release_calls`].
pub fn hold_calls(point: HoldPoint) {
    points(|p| p.entry(point).or_default().holding = true);
}

/// How many calls are stopped at `point` now.
pub fn calls_held(point: HoldPoint) -> usize {
    points(|p| p.get(&point).map_or(0, |s| s.threads + s.parked.len()))
}

/// Waits until at least `n` calls are stopped at `point`; false if they are
/// not within `within`.
pub fn wait_calls_held(point: HoldPoint, n: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut g = POINTS.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = g.get_or_insert_with(HashMap::new).get(&point).map_or(0, |s| s.threads + s.parked.len());
        if now >= n {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        g = CHANGED.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
    }
}

/// Stops holding `point` and lets every call stopped there go on. Returns
/// how many there were.
pub fn release_calls(point: HoldPoint) -> usize {
    let (n, parked) = points(|p| {
        let s = p.entry(point).or_default();
        s.holding = false;
        s.generation += 1;
        (s.threads + s.parked.len(), std::mem::take(&mut s.parked))
    });
    CHANGED.notify_all();
    for op in parked {
        op.wake();
    }
    n
}

/// Per-session reset: every point released.
pub(crate) fn reset() {
    for point in [HoldPoint::PageIn, HoldPoint::ControlSocket, HoldPoint::CloseSocket] {
        release_calls(point);
    }
}

/// A thread reaches a blocking point: it waits there while it is held.
pub(crate) fn pass(point: HoldPoint) {
    let mut g = POINTS.lock().unwrap_or_else(|e| e.into_inner());
    let s = g.get_or_insert_with(HashMap::new).entry(point).or_default();
    if !s.holding {
        return;
    }
    let generation = s.generation;
    s.threads += 1;
    CHANGED.notify_all();
    loop {
        g = CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
        let s = g.get_or_insert_with(HashMap::new).entry(point).or_default();
        if s.generation != generation {
            s.threads -= 1;
            CHANGED.notify_all();
            return;
        }
    }
}

/// A request's step reaches a non-blocking point: true if it is held (it
/// must then park; [`release_calls`] wakes it), false to go on.
pub(crate) fn park(point: HoldPoint, op: &Arc<Op>) -> bool {
    let held = points(|p| {
        let s = p.entry(point).or_default();
        if s.holding && !s.parked.iter().any(|o| Arc::ptr_eq(o, op)) {
            s.parked.push(op.clone());
        }
        s.holding
    });
    CHANGED.notify_all();
    held
}
