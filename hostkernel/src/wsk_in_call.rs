//! Which sockets have a call *in progress* in one of their WSK functions
//! (review of issue 12).
//!
//! "Before calling the WskCloseSocket function, a WSK application must
//! ensure that there are no other function calls in progress to any of the
//! socket's functions [...] However, a WSK application can call
//! WskCloseSocket if there are pending IRPs from prior calls" ("Closing a
//! Socket" and PFN_WSK_CLOSE_SOCKET, Microsoft Learn): the close frees the
//! WSK_SOCKET, which a function still running may be using. The host kernel
//! counts, per socket, the calls between the entry into WskSend,
//! WskReceive, WskDisconnect, WskGetLocalAddress, WskGetRemoteAddress,
//! WskControlSocket or WskRelease and
//! their return (not their IRPs' completion), and reports a WskCloseSocket
//! made while that count is not zero. A call that comes after the close is
//! reported separately ("not an open WSK socket").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::check::violation;
use crate::nt::PVOID;

static IN_CALL: Mutex<Option<HashMap<usize, (usize, &'static str)>>> = Mutex::new(None);

fn in_call<R>(f: impl FnOnce(&mut HashMap<usize, (usize, &'static str)>) -> R) -> R {
    let mut g = IN_CALL.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// A call in one of a socket's functions, from its entry until this is
/// dropped (when the function returns).
pub(crate) struct InCall(usize);

/// Counts a call to `who` on `socket` until the returned guard is dropped.
pub(crate) fn enter(socket: PVOID, who: &'static str) -> InCall {
    in_call(|m| {
        let e = m.entry(socket as usize).or_insert((0, who));
        e.0 += 1;
        e.1 = who;
    });
    InCall(socket as usize)
}

impl Drop for InCall {
    fn drop(&mut self) {
        in_call(|m| {
            if let Some(e) = m.get_mut(&self.0) {
                e.0 -= 1;
                if e.0 == 0 {
                    m.remove(&self.0);
                }
            }
        });
    }
}

/// How many calls are inside one of `socket`'s functions now (entered and
/// not yet returned), for tests that must know a call is in progress.
pub fn calls_in_progress(socket: PVOID) -> usize {
    in_call(|m| m.get(&(socket as usize)).map_or(0, |e| e.0))
}

/// WskCloseSocket(`socket`) is being called: a violation if another thread
/// is still inside one of the socket's functions.
pub(crate) fn check_close(socket: PVOID) {
    if let Some((n, who)) = in_call(|m| m.get(&(socket as usize)).copied()) {
        violation(format!(
            "WskCloseSocket({socket:p}) while {n} call(s) are still in progress in the socket's functions ({who}): \
             \"Closing a Socket\" forbids it (the close frees the WSK_SOCKET)"
        ));
    }
}

/// How long WskControlSocket takes before it does anything (0: no time).
static CONTROL_DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// From now on each WskControlSocket spends `delay` inside the function, on
/// the caller's thread, before it looks at its arguments (None: no time). A
/// function call may take that long on Windows (the caller is preempted, or
/// the provider takes a lock); meanwhile the call is in progress and the
/// socket must not be closed. Reset by `Session::begin`.
pub fn set_control_delay(delay: Option<Duration>) {
    let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    CONTROL_DELAY_MS.store(ms, Ordering::SeqCst);
}

/// Run at the entry of WskControlSocket, inside its in-progress count.
pub(crate) fn control_delay() {
    crate::hold::pass(crate::hold::HoldPoint::ControlSocket);
    let ms = CONTROL_DELAY_MS.load(Ordering::SeqCst);
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// How long WskRelease takes before it does anything (0: no time).
static RELEASE_DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// From now on each WskRelease (PFN_WSK_RELEASE_DATA_INDICATION_LIST)
/// spends `delay` inside the function, on the caller's thread, before it
/// looks for the list (None: no time), as [`set_control_delay`] does for
/// WskControlSocket: meanwhile the call is in progress and the socket must
/// not be closed ("Closing a Socket"). Reset by `Session::begin`.
pub fn set_release_delay(delay: Option<Duration>) {
    let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    RELEASE_DELAY_MS.store(ms, Ordering::SeqCst);
}

/// Run at the entry of WskRelease, inside its in-progress count.
pub(crate) fn release_delay() {
    let ms = RELEASE_DELAY_MS.load(Ordering::SeqCst);
    if ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Per-session reset.
pub(crate) fn reset() {
    in_call(|m| m.clear());
    CONTROL_DELAY_MS.store(0, Ordering::SeqCst);
    RELEASE_DELAY_MS.store(0, Ordering::SeqCst);
}
