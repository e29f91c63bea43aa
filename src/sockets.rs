//! The open sockets of one client, so that every call taking a socket can
//! check that it is one this client opened and has not closed: a second
//! close, a send after close or another client's socket is answered with
//! STATUS_INVALID_PARAMETER_2 instead of handing the provider a freed
//! WSK_SOCKET (a bugcheck).
//!
//! One tagged non-paged pool node per socket, allocated by the connect
//! *before* the provider is called (so a connected socket is never lost to a
//! failed allocation) together with the socket's IRP, and freed by the
//! close; a hash table of 64 buckets in the client block, under a spin lock
//! (lookups happen at IRQL <= DISPATCH_LEVEL: the asynchronous connect
//! records its socket from the completion routine). Send, receive,
//! disconnect, the address queries and close look the socket up and claim
//! its IRP, which they reuse: they allocate nothing (see [`Node`]). A closed
//! socket's record and IRP are kept (up to [`RECORD_CACHE`]) for the next
//! connect, so connect + close in a steady state allocates nothing either.

use core::cell::{Cell, UnsafeCell};
use core::mem::size_of;
use core::ptr;

use crate::nt::*;
use crate::platform;
use crate::sync::{Event, SpinLock};

const BUCKETS: usize = 64;

/// How many closed sockets' records (each with its IRP) a client keeps for
/// its next connects, so that connect + close in a steady state allocates
/// nothing. Freed by SafeWskCleanup.
pub(crate) const RECORD_CACHE: usize = 16;

/// Bits of [`Node::busy`]: which of the socket's IRPs a call holds.
const MAIN_BUSY: u8 = 1;
const SPARE_BUSY: u8 = 2;

/// One open socket, and the IRPs its calls reuse.
///
/// The connect allocates `irp` (with the node, before the provider is
/// called) and uses it for WskSocketConnect; every later call on the socket
/// reuses it (IoReuseIrp), so a send, receive, disconnect or close allocates
/// no IRP. "Using IRPs with Winsock Kernel Functions" (Microsoft Learn)
/// allows exactly this: the application "can allocate the IRP by calling
/// IoAllocateIrp" or "reuse a previously allocated IRP by calling
/// IoReuseIrp". A second call that overlaps the first on the same socket (a
/// send while a receive waits: full duplex) allocates `spare` once, which the
/// socket then keeps; a third overlapping call gets a temporary IRP.
#[repr(C)]
struct Node {
    socket: *mut WSK_SOCKET,
    next: *mut Node,
    irp: *mut IRP,
    /// Null until two calls first overlapped on the socket.
    spare: *mut IRP,
    /// MAIN_BUSY / SPARE_BUSY: held by a call.
    busy: u8,
    /// Calls in progress that hold neither IRP (they use a temporary one).
    others: u32,
    /// A close is in progress: other calls (and a second close) are refused.
    closing: bool,
    /// Unlinked by the close while other calls on the socket were still in
    /// progress (holding an IRP of the node, or counted in `others`): the
    /// last one's release frees the node.
    orphan: bool,
    /// Calls (claims other than the close's) that may still call one of the
    /// socket's WSK functions: from the claim until that function has
    /// returned. WSK forbids WskCloseSocket while such a call is in progress
    /// ("Closing a Socket", Microsoft Learn: the close frees the
    /// WSK_SOCKET; only IRPs that are already *pending* may remain), so the
    /// close waits until this is 0 ([`Sockets::wait_for_calls`]).
    calling: u32,
    /// The close waiting for `calling` to reach 0: signalled (and cleared)
    /// by whoever brings it there.
    closer: *const Event,
    /// The client dispatch table the socket was created with (NULL: none),
    /// for SafeWskEnableCallbacks; set by [`Reserved::with_dispatch`] before
    /// the connect, kept by [`Sockets::insert`], reset when the record is
    /// cached.
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
}

/// Frees what a node owns and the node.
///
/// # Safety
/// Nothing references the node any more, and none of its IRPs is owned by
/// the provider; IRQL <= DISPATCH_LEVEL.
unsafe fn free_node(node: *mut Node) {
    // SAFETY: the node is live and ours (contract).
    let n = unsafe { &*node };
    let (irp, spare) = (n.irp, n.spare);
    for p in [irp, spare] {
        if !p.is_null() {
            // SAFETY: the node's own IRPs, idle (contract), freed once.
            unsafe { platform::free_irp(p) };
        }
    }
    // SAFETY: the node is a pool block nobody references (contract).
    unsafe { platform::pool_free(node.cast()) }
}

/// Storage for one socket's node and its IRP, reserved before the connect.
///
/// # Invariants
/// `node` is a live pool block of `size_of::<Node>()` owned by this value,
/// with `irp` a live IRP from IoAllocateIrp that is not owned by a provider
/// when the value is dropped.
#[must_use]
pub struct Reserved {
    node: *mut Node,
}

impl Reserved {
    /// Allocates a node with the client's allocator, and its IRP
    /// (IRQL <= DISPATCH_LEVEL).
    pub fn new(allocator: platform::PoolAllocator) -> Result<Reserved, NTSTATUS> {
        // SAFETY: non-paged pool may be allocated at IRQL <= DISPATCH_LEVEL,
        // which every caller (a connect) has checked.
        let node = unsafe { allocator.alloc(size_of::<Node>()) }.cast::<Node>();
        if node.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: IRQL <= DISPATCH_LEVEL, as above.
        let irp = unsafe { platform::allocate_irp() };
        if irp.is_null() {
            // SAFETY: allocated just above, never shared.
            unsafe { platform::pool_free(node.cast()) };
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let fresh = Node {
            socket: ptr::null_mut(),
            next: ptr::null_mut(),
            irp,
            spare: ptr::null_mut(),
            busy: 0,
            others: 0,
            closing: false,
            orphan: false,
            calling: 0,
            closer: ptr::null(),
            dispatch: ptr::null(),
        };
        // SAFETY: a fresh pool block of a Node's size, suitably aligned
        // (pool blocks are 16-byte aligned).
        unsafe { ptr::write(node, fresh) };
        Ok(Reserved { node })
    }

    /// Records the client dispatch table the socket will be created with.
    pub fn with_dispatch(self, dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH) -> Reserved {
        // SAFETY: a live node we own, not linked (type invariant).
        unsafe { (*self.node).dispatch = dispatch };
        self
    }

    /// The IRP the connect uses (and the socket's calls later reuse).
    pub fn irp(&self) -> *mut IRP {
        // SAFETY: a live node (type invariant).
        unsafe { (*self.node).irp }
    }

    /// Gives the node back as a raw pointer (to keep it in an asynchronous
    /// request); [`Reserved::from_raw`] takes it back.
    pub fn into_raw(self) -> *mut core::ffi::c_void {
        let p = self.node;
        core::mem::forget(self);
        p.cast()
    }

    /// # Safety
    /// `p` came from [`Reserved::into_raw`] and is taken back once.
    pub unsafe fn from_raw(p: *mut core::ffi::c_void) -> Reserved {
        Reserved { node: p.cast() }
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // SAFETY: the node and its idle IRP are ours (type invariant) and the
        // node was never linked.
        unsafe { free_node(self.node) }
    }
}

/// The IRP a call on an open socket uses, held until [`Sockets::release`]
/// (or the close's [`Sockets::finish_close`] / [`Sockets::abort_close`]).
///
/// # Invariants
/// `node` is a node of the client's table (linked, or orphaned), kept alive
/// (neither freed nor cached) by this claim: its bit set in `busy`, or, when
/// `bit` is 0 (the claim holds no IRP of the node: `irp` is null or a
/// temporary IRP this claim allocated), its count in `others`.
#[must_use]
pub struct Claim {
    node: *mut Node,
    bit: u8,
    irp: *mut IRP,
    /// Counted in the node's `calling`: this call may still call one of the
    /// socket's WSK functions (see [`Sockets::returned`]).
    calling: Cell<bool>,
    /// A close's claim only: other calls were in progress when the close
    /// began, so [`Sockets::wait_for_calls`] has to wait (the count only
    /// falls once the socket is marked as closing: no call can begin).
    must_wait: bool,
}

impl Claim {
    /// The claimed IRP; allocates a temporary one the first time when the
    /// node's are all in use (STATUS_INSUFFICIENT_RESOURCES if that fails).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn irp(&mut self) -> Result<*mut IRP, NTSTATUS> {
        if self.irp.is_null() {
            // SAFETY: IRQL per the caller.
            self.irp = unsafe { platform::allocate_irp() };
        }
        if self.irp.is_null() {
            Err(STATUS_INSUFFICIENT_RESOURCES)
        } else {
            Ok(self.irp)
        }
    }
}

struct Table {
    buckets: [*mut Node; BUCKETS],
    open: usize,
    /// Records of closed sockets kept for the next connects (linked by
    /// `next`, each with its idle IRP and no spare), at most RECORD_CACHE.
    cache: *mut Node,
    cached: usize,
}

/// The client's open sockets.
///
/// # Invariants
/// `table` is only accessed with `lock` held, and so is every field of a
/// node but `socket`, `irp` and `next` of a linked node, which only change
/// under the lock too. Every node linked in it is a live pool block owned by
/// the table.
pub struct Sockets {
    lock: SpinLock,
    table: UnsafeCell<Table>,
}

// SAFETY: the table is only touched under the spin lock.
unsafe impl Sync for Sockets {}
// SAFETY: as above.
unsafe impl Send for Sockets {}

/// The result of looking a socket up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Open and usable.
    Open,
    /// Not a socket of this client (never opened, or closed).
    Unknown,
    /// Being closed.
    Closing,
}

impl Table {
    /// The head of `socket`'s bucket.
    fn head(&mut self, socket: *mut WSK_SOCKET) -> &mut *mut Node {
        // WSK_SOCKETs are pool blocks (16-byte aligned): drop the low bits.
        let [first, rest @ ..] = &mut self.buckets;
        let i = ((socket as usize) >> 4) % BUCKETS;
        match i.checked_sub(1) {
            None => first,
            Some(j) => rest.get_mut(j).unwrap_or(first),
        }
    }
}

/// Takes an idle IRP of `node` for a call (the lock is held by the caller);
/// `calling`: the call will call one of the socket's WSK functions (every
/// call but the close, which is the one that waits for them).
fn take_irp(node: &mut Node, calling: bool) -> Claim {
    let this: *mut Node = node;
    if calling {
        node.calling += 1;
    }
    let calling = Cell::new(calling);
    if node.busy & MAIN_BUSY == 0 {
        node.busy |= MAIN_BUSY;
        Claim { node: this, bit: MAIN_BUSY, irp: node.irp, calling, must_wait: false }
    } else if !node.spare.is_null() && node.busy & SPARE_BUSY == 0 {
        node.busy |= SPARE_BUSY;
        Claim { node: this, bit: SPARE_BUSY, irp: node.spare, calling, must_wait: false }
    } else {
        node.others += 1;
        Claim { node: this, bit: 0, irp: ptr::null_mut(), calling, must_wait: false }
    }
}

/// Ends `claim`'s count in `calling` if it holds one (the lock is held by
/// the caller); returns the close to signal (after the lock is released) if
/// this was the last call it waited for.
fn stop_calling(node: &mut Node, claim: &Claim) -> *const Event {
    if !claim.calling.replace(false) {
        return ptr::null();
    }
    node.calling = node.calling.saturating_sub(1);
    if node.calling == 0 {
        core::mem::replace(&mut node.closer, ptr::null())
    } else {
        ptr::null()
    }
}

/// Wakes a close that waited for the socket's calls to return from WSK.
///
/// # Safety
/// `closer` is null or the event [`Sockets::wait_for_calls`] registered,
/// taken from the node under the lock (the close waits until this signal,
/// so the event is live); IRQL <= DISPATCH_LEVEL.
unsafe fn wake(closer: *const Event) {
    // SAFETY: per the contract; signalling is the last access to it.
    if let Some(event) = unsafe { closer.as_ref() } {
        // SAFETY: initialized by wait_for_calls and live (contract).
        unsafe { event.set() };
    }
}

impl Sockets {
    /// No socket open.
    pub const fn new() -> Sockets {
        Sockets {
            lock: SpinLock::new(),
            table: UnsafeCell::new(Table {
                buckets: [ptr::null_mut(); BUCKETS],
                open: 0,
                cache: ptr::null_mut(),
                cached: 0,
            }),
        }
    }

    /// Runs `f` on the table with the lock held.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    unsafe fn with<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        // SAFETY: IRQL per the caller; this thread does not hold the lock
        // (no method calls another under it).
        let _guard = unsafe { self.lock.lock() };
        // SAFETY: the lock is held, so this is the only reference (type
        // invariant).
        f(unsafe { &mut *self.table.get() })
    }

    /// A record (with its IRP) for a connect: one a closed socket left in the
    /// cache, or a new one from `allocator` (IRQL <= DISPATCH_LEVEL).
    pub fn reserve(&self, allocator: platform::PoolAllocator) -> Result<Reserved, NTSTATUS> {
        let pop = |t: &mut Table| {
            let n = t.cache;
            // SAFETY: cached nodes are live and owned by the table; lock held.
            if let Some(node) = unsafe { n.as_mut() } {
                t.cache = node.next;
                t.cached -= 1;
                node.next = ptr::null_mut();
            }
            n
        };
        // SAFETY: every caller (a connect) has checked IRQL <= DISPATCH_LEVEL.
        let node = unsafe { self.with(pop) };
        if node.is_null() {
            Reserved::new(allocator)
        } else {
            // A cached node is as Reserved::new leaves one: an idle IRP, no
            // spare, not linked, not busy (see `finish_close`).
            Ok(Reserved { node })
        }
    }

    /// Frees the cached records (SafeWskCleanup, once no socket is open).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn drain_cache(&self) {
        loop {
            let pop = |t: &mut Table| {
                let n = t.cache;
                // SAFETY: cached nodes are live and owned by the table.
                if let Some(node) = unsafe { n.as_ref() } {
                    t.cache = node.next;
                    t.cached -= 1;
                }
                n
            };
            // SAFETY: IRQL per the caller.
            let node = unsafe { self.with(pop) };
            if node.is_null() {
                return;
            }
            // SAFETY: unlinked from the cache; its IRP is idle.
            unsafe { free_node(node) };
        }
    }

    /// Records a socket the provider returned, in a reserved node (whose IRP
    /// has completed).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `socket` is a live socket not yet recorded.
    pub unsafe fn insert(&self, reserved: Reserved, socket: *mut WSK_SOCKET) {
        let node = reserved.into_raw().cast::<Node>();
        let link = |t: &mut Table| {
            let head = t.head(socket);
            // SAFETY: `node` is a live, initialized node that we own (it was
            // Reserved) and nobody else sees yet; the table owns it from now
            // on.
            let n = unsafe { &mut *node };
            n.socket = socket;
            n.next = *head;
            *head = node;
            t.open += 1;
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(link) }
    }

    /// Finds a node of `socket` in `t` (`t` is locked) whose `closing` is as
    /// given. The same address can be in the table twice: WSK frees a
    /// WSK_SOCKET while its close is still in progress, and a new socket may
    /// get the same address before that close has finished. The nodes of
    /// one address are interchangeable as long as their states are kept
    /// apart, which is what matching on `closing` does.
    fn find(t: &mut Table, socket: *mut WSK_SOCKET, closing: bool) -> *mut Node {
        let mut n = *t.head(socket);
        while !n.is_null() {
            // SAFETY: linked nodes are live (type invariant) and the lock is
            // held by our caller.
            let node = unsafe { &*n };
            if node.socket == socket && node.closing == closing {
                return n;
            }
            n = node.next;
        }
        ptr::null_mut()
    }

    /// The client dispatch table an open socket was created with: None if
    /// the socket is not open on this client, Some(NULL) if it has none.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn dispatch_of(&self, socket: *mut WSK_SOCKET) -> Option<*const WSK_CLIENT_CONNECTION_DISPATCH> {
        let find = |t: &mut Table| {
            let n = Self::find(t, socket, false);
            // SAFETY: linked nodes are live and the lock is held.
            (!n.is_null()).then(|| unsafe { (*n).dispatch })
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(find) }
    }

    /// Whether `socket` is open on this client.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn lookup(&self, socket: *mut WSK_SOCKET) -> Lookup {
        // SAFETY: IRQL per the caller.
        unsafe {
            self.with(|t| {
                if !Self::find(t, socket, false).is_null() {
                    Lookup::Open
                } else if !Self::find(t, socket, true).is_null() {
                    Lookup::Closing
                } else {
                    Lookup::Unknown
                }
            })
        }
    }

    /// For a call on an open socket: its IRP, claimed. None if the socket is
    /// not open (unknown, or being closed).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn claim(&self, socket: *mut WSK_SOCKET) -> Option<Claim> {
        let claim = |t: &mut Table| {
            let n = Self::find(t, socket, false);
            // SAFETY: a linked node is live and the lock is held.
            unsafe { n.as_mut() }.map(|node| take_irp(node, true))
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(claim) }
    }

    /// For a call on an open socket that takes no IRP of the socket's (the
    /// event callback controls: WskControlSocket without an IRP, or with one
    /// of their own): the record kept alive and the call counted as in
    /// progress (see [`Sockets::returned`]), like [`Sockets::claim`] but
    /// without taking an IRP. None if the socket is not open.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn claim_without_irp(&self, socket: *mut WSK_SOCKET) -> Option<Claim> {
        let claim = |t: &mut Table| {
            let n = Self::find(t, socket, false);
            // SAFETY: a linked node is live and the lock is held.
            let node = unsafe { n.as_mut() }?;
            node.others += 1;
            node.calling += 1;
            Some(Claim { node: n, bit: 0, irp: ptr::null_mut(), calling: Cell::new(true), must_wait: false })
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(claim) }
    }

    /// Marks an open socket as being closed and claims an IRP for the close.
    /// None if it is not open (or already being closed): the close must be
    /// refused.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn begin_close(&self, socket: *mut WSK_SOCKET) -> Option<Claim> {
        let mark = |t: &mut Table| {
            let n = Self::find(t, socket, false);
            // SAFETY: a linked node is live and the lock is held.
            let node = unsafe { n.as_mut() }?;
            node.closing = true;
            let mut claim = take_irp(node, false);
            claim.must_wait = node.calling != 0;
            Some(claim)
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(mark) }
    }

    /// Gives back a call's IRP. A temporary IRP becomes the socket's spare if
    /// it has none yet, otherwise it is freed; an orphaned node whose last
    /// IRP comes back is freed.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; the claim's IRP is not owned by the provider
    /// (its completion was waited for, or it was never issued).
    pub unsafe fn release(&self, claim: Claim) {
        let mut closer = ptr::null();
        let give_back = |_: &mut Table| -> (*mut IRP, *mut Node) {
            // SAFETY: the claim keeps the node alive (Claim invariant) and the
            // lock is held.
            let n = unsafe { &mut *claim.node };
            // A call that ends without having called WSK (or without having
            // said so) no longer holds the close back.
            closer = stop_calling(n, &claim);
            let Claim { node, bit, irp, .. } = claim;
            n.busy &= !bit;
            let mut stray = ptr::null_mut();
            if bit == 0 {
                n.others = n.others.saturating_sub(1);
                if irp.is_null() {
                    // No temporary IRP was allocated.
                } else if n.spare.is_null() && !n.orphan && !n.closing {
                    n.spare = irp;
                } else {
                    stray = irp;
                }
            }
            let dead = if n.orphan && n.busy == 0 && n.others == 0 { node } else { ptr::null_mut() };
            (stray, dead)
        };
        // SAFETY: IRQL per the caller.
        let (stray, dead) = unsafe { self.with(give_back) };
        // SAFETY: taken from the node under the lock; IRQL per the caller.
        unsafe { wake(closer) };
        if !stray.is_null() {
            // SAFETY: a temporary IRP of this claim, idle per the contract.
            unsafe { platform::free_irp(stray) };
        }
        if !dead.is_null() {
            // SAFETY: unlinked and no IRP held: nobody references the node.
            unsafe { free_node(dead) };
        }
    }

    /// The call of `claim` has returned from its WSK function (the IRP may
    /// still be pending: WSK allows the close then): a close waiting for it
    /// may go on.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `claim` is live (not yet released).
    pub unsafe fn returned(&self, claim: &Claim) {
        if !claim.calling.get() {
            return;
        }
        let stop = |_: &mut Table| {
            // SAFETY: the claim keeps the node alive and the lock is held.
            stop_calling(unsafe { &mut *claim.node }, claim)
        };
        // SAFETY: IRQL per the caller.
        let closer = unsafe { self.with(stop) };
        // SAFETY: taken from the node under the lock; IRQL per the caller.
        unsafe { wake(closer) };
    }

    /// Before the call of `claim` calls another function of the socket (the
    /// abortive disconnect at a graceful one's deadline, the next flag of
    /// SafeWskDisableCallbacks): counts it again if it had returned, unless
    /// the socket is being closed (false: the call must not be made). True
    /// at once if the call is still counted. End it with
    /// [`Sockets::returned`].
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `claim` is live (not yet released).
    pub unsafe fn call_again(&self, claim: &Claim) -> bool {
        let again = |_: &mut Table| {
            // SAFETY: the claim keeps the node alive and the lock is held.
            let n = unsafe { &mut *claim.node };
            if claim.calling.get() {
                return true;
            }
            if n.closing {
                return false;
            }
            n.calling += 1;
            claim.calling.set(true);
            true
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(again) }
    }

    /// For the close of `claim` (from [`Sockets::begin_close`]): waits until
    /// no other call on the socket can still be calling one of its WSK
    /// functions (new calls are refused since `begin_close`). Their IRPs may
    /// still be pending: the close completes those.
    ///
    /// # Safety
    /// IRQL <= APC_LEVEL; `claim` came from `begin_close` and is live.
    pub unsafe fn wait_for_calls(&self, claim: &Claim) {
        // The usual case: no other call was in progress when the close began
        // (and none can begin since): no lock, no event to set up.
        if !claim.must_wait {
            return;
        }
        let event = Event::new();
        // SAFETY: on this stack, which stays resident while this thread waits
        // on it in KernelMode; nobody knows it yet.
        unsafe { event.init() };
        let register = |_: &mut Table| {
            // SAFETY: the claim keeps the node alive and the lock is held.
            let n = unsafe { &mut *claim.node };
            if n.calling == 0 {
                return false;
            }
            n.closer = &event;
            true
        };
        // SAFETY: IRQL per the caller.
        if unsafe { self.with(register) } {
            let mut waited: ULONG = 0;
            // SAFETY: initialized and live until signalled: the last call to
            // return takes it from the node and signals it, its last access
            // (this loop ends only then).
            while unsafe { event.wait(Some(platform::REPORT_INTERVAL_MS)) } == STATUS_TIMEOUT {
                waited = waited.saturating_add(platform::REPORT_INTERVAL_MS);
                platform::report_close_waiting(waited);
            }
        }
    }

    /// Undoes [`Sockets::begin_close`]: the close was never issued, or not
    /// consumed. The close's IRP is given back.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `claim` came from `begin_close(socket)` and
    /// its IRP is idle.
    pub unsafe fn abort_close(&self, claim: Claim) {
        let unmark = |_: &mut Table| {
            // SAFETY: the claim keeps the node (still linked) alive, and the
            // lock is held.
            unsafe { (*claim.node).closing = false };
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(unmark) };
        // SAFETY: as the caller guarantees.
        unsafe { self.release(claim) }
    }

    /// Forgets a closed socket and frees its node, or leaves the node to the
    /// last call still holding one of its IRPs (WSK completes such a call's
    /// IRP when the socket is closed).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `claim` came from `begin_close(socket)` and
    /// its IRP is idle (the close's completion was waited for).
    pub unsafe fn finish_close(&self, claim: Claim) {
        let Claim { node, bit, irp, .. } = claim;
        let unlink = |t: &mut Table| -> (bool, *mut IRP) {
            // SAFETY: the claim keeps the node alive and the lock is held.
            let socket = unsafe { (*node).socket };
            let mut link: &mut *mut Node = t.head(socket);
            while !link.is_null() && *link != node {
                // SAFETY: linked nodes are live (type invariant), lock held.
                link = unsafe { &mut (**link).next };
            }
            if !link.is_null() {
                // SAFETY: `*link` is the node, live; lock held.
                *link = unsafe { (*node).next };
                t.open = t.open.saturating_sub(1);
            }
            // SAFETY: as above.
            let n = unsafe { &mut *node };
            n.busy &= !bit;
            if bit == 0 {
                n.others = n.others.saturating_sub(1);
            }
            n.orphan = n.busy != 0 || n.others != 0;
            if n.orphan {
                return (false, ptr::null_mut());
            }
            if t.cached < RECORD_CACHE {
                // Kept for the next connect, as Reserved::new makes one: the
                // IRP idle (the close's completion was waited for), no spare.
                let spare = core::mem::replace(&mut n.spare, ptr::null_mut());
                n.socket = ptr::null_mut();
                n.closing = false;
                n.dispatch = ptr::null();
                n.next = t.cache;
                t.cache = node;
                t.cached += 1;
                return (false, spare);
            }
            (true, ptr::null_mut())
        };
        // SAFETY: IRQL per the caller; unlinking under the lock transfers the
        // node's ownership back to us (or to the cache, or to the last call
        // holding an IRP).
        let (free, spare) = unsafe { self.with(unlink) };
        if !spare.is_null() {
            // SAFETY: the cached node's spare IRP, idle (no call holds it).
            unsafe { platform::free_irp(spare) };
        }
        if bit == 0 && !irp.is_null() {
            // SAFETY: the close's temporary IRP, completed and idle.
            unsafe { platform::free_irp(irp) };
        }
        if free {
            // SAFETY: unlinked, and no call holds one of its IRPs.
            unsafe { free_node(node) };
        }
    }

    /// How many sockets are open.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn open(&self) -> usize {
        // SAFETY: IRQL per the caller.
        unsafe { self.with(|t| t.open) }
    }
}

/// The table against the host kernel (its pool and spin lock).
#[cfg(all(test, not(loom)))]
mod tests {
    extern crate hostkernel;
    use super::*;

    /// WSK frees a WSK_SOCKET while its close is in progress, so a new socket
    /// can get the same address before the old close has finished. Found by
    /// tests/stress.rs (a close of a fresh asynchronous socket refused with
    /// STATUS_INVALID_PARAMETER_2): the old close's `finish_close` had
    /// unlinked the new socket's node.
    // Every call below has the same precondition (IRQL <= DISPATCH_LEVEL,
    // true on a test thread) and the pointers are only compared: one block.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    #[test]
    fn an_address_reused_while_its_old_socket_is_closing() {
        let k = hostkernel::Session::begin();
        // SAFETY: PASSIVE_LEVEL on a test thread.
        let allocator = unsafe { platform::PoolAllocator::resolve() };
        let table = Sockets::new();
        let s = 0x1000 as *mut WSK_SOCKET;
        let reserve = || {
            let r = Reserved::new(allocator);
            assert!(r.is_ok(), "pool or IRP allocation failed");
            r.unwrap_or_else(|_| unreachable!())
        };
        let open = |c: Option<Claim>| {
            assert!(c.is_some(), "the socket must be open");
            c.unwrap_or_else(|| unreachable!())
        };
        // SAFETY: PASSIVE_LEVEL; the socket pointers are only compared, never
        // read, and no IRP is handed to a provider.
        unsafe {
            table.insert(reserve(), s);
            let old = open(table.begin_close(s));
            assert_eq!(table.lookup(s), Lookup::Closing);
            table.insert(reserve(), s); // the same address, a new socket
            assert_eq!(table.lookup(s), Lookup::Open);
            table.finish_close(old); // the old close ends
            assert_eq!(table.lookup(s), Lookup::Open, "the new socket must stay open");
            assert_eq!(table.open(), 1);
            let close = open(table.begin_close(s));
            assert!(table.begin_close(s).is_none(), "a second close of the same socket is refused");
            table.abort_close(close);
            let close = open(table.begin_close(s));
            table.finish_close(close);
            assert_eq!(table.lookup(s), Lookup::Unknown);
            assert_eq!(table.open(), 0);
            // Both records are cached (with their IRPs) until the drain.
            let again = table.reserve(allocator);
            assert!(again.is_ok());
            drop(again);
            table.drain_cache();
        }
        k.finish();
    }

    /// A call that holds no IRP of the record (it overlapped two others and
    /// got a temporary IRP) keeps the record alive too: a close that ends
    /// meanwhile must neither free it nor cache it for the next connect.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    #[test]
    fn a_call_with_a_temporary_irp_keeps_the_record_alive() {
        let k = hostkernel::Session::begin();
        // SAFETY: PASSIVE_LEVEL on a test thread.
        let allocator = unsafe { platform::PoolAllocator::resolve() };
        let table = Sockets::new();
        let s = 0x2000 as *mut WSK_SOCKET;
        let open = |c: Option<Claim>| {
            assert!(c.is_some(), "the socket must be open");
            c.unwrap_or_else(|| unreachable!())
        };
        // SAFETY: PASSIVE_LEVEL; the socket pointer is only compared, and no
        // IRP is handed to a provider.
        unsafe {
            let r = table.reserve(allocator);
            assert!(r.is_ok());
            let r = r.unwrap_or_else(|_| unreachable!());
            let record_irp = r.irp();
            table.insert(r, s);
            let a = open(table.claim(s)); // the record's IRP
            let mut b = open(table.claim(s)); // no spare yet: a temporary one
            assert_eq!(b.bit, 0);
            assert!(b.irp().is_ok());
            table.release(a);
            let close = open(table.begin_close(s)); // the record's IRP again
            table.finish_close(close);
            let next = table.reserve(allocator);
            assert!(next.is_ok());
            let next = next.unwrap_or_else(|_| unreachable!());
            assert_ne!(next.irp(), record_irp, "a record still in use by a call was cached");
            drop(next);
            table.release(b); // the last user: frees the record
            table.drain_cache();
        }
        k.finish();
    }
}
