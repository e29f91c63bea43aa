//! The open sockets of one client, so that every call taking a socket can
//! check that it is one this client opened and has not closed: a second
//! close, a send after close or another client's socket is answered with
//! STATUS_INVALID_PARAMETER_2 instead of handing the provider a freed
//! WSK_SOCKET (a bugcheck).
//!
//! One tagged non-paged pool node per socket, allocated by the connect
//! *before* the provider is called (so a connected socket is never lost to a
//! failed allocation) and freed by the close; a hash table of 64 buckets in
//! the client block, under a spin lock (lookups happen at IRQL <=
//! DISPATCH_LEVEL: the asynchronous connect records its socket from the
//! completion routine). Send, receive and disconnect only look up: they
//! allocate nothing.

use core::cell::UnsafeCell;
use core::mem::size_of;
use core::ptr;

use crate::nt::*;
use crate::platform;
use crate::sync::SpinLock;

const BUCKETS: usize = 64;

/// One open socket.
#[repr(C)]
struct Node {
    socket: *mut WSK_SOCKET,
    next: *mut Node,
    /// A close is in progress: other calls (and a second close) are refused.
    closing: bool,
    /// The client dispatch table the socket was created with (NULL: none),
    /// for SafeWskEnableCallbacks. Written by [`Reserved::with_dispatch`]
    /// before the connect and kept by [`Sockets::insert`].
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
}

/// Storage for one socket's node, reserved before the connect.
///
/// # Invariants
/// `node` is a live pool block of `size_of::<Node>()` owned by this value.
#[must_use]
pub struct Reserved {
    node: *mut Node,
}

impl Reserved {
    /// Allocates a node with the client's allocator (IRQL <= DISPATCH_LEVEL).
    pub fn new(allocator: platform::PoolAllocator) -> Result<Reserved, NTSTATUS> {
        // SAFETY: non-paged pool may be allocated at IRQL <= DISPATCH_LEVEL,
        // which every caller (a connect) has checked.
        let node = unsafe { allocator.alloc(size_of::<Node>()) }.cast::<Node>();
        if node.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: a fresh pool block of a Node's size, ours: the field's
        // address is inside it.
        let field = unsafe { ptr::addr_of_mut!((*node).dispatch) };
        // SAFETY: as above; only this field is given a value until `insert`
        // writes the rest.
        unsafe { field.write(ptr::null()) };
        Ok(Reserved { node })
    }

    /// Records the client dispatch table the socket will be created with.
    pub fn with_dispatch(self, dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH) -> Reserved {
        // SAFETY: the node is ours (type invariant): the field's address is
        // inside it.
        let field = unsafe { ptr::addr_of_mut!((*self.node).dispatch) };
        // SAFETY: as above; the field was initialized by `new`.
        unsafe { field.write(dispatch) };
        self
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
        // SAFETY: the node is ours (type invariant) and was never linked.
        unsafe { platform::pool_free(self.node.cast()) }
    }
}

struct Table {
    buckets: [*mut Node; BUCKETS],
    open: usize,
}

/// The client's open sockets.
///
/// # Invariants
/// `table` is only accessed with `lock` held. Every node linked in it is a
/// live pool block owned by the table.
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

impl Sockets {
    /// No socket open.
    pub const fn new() -> Sockets {
        Sockets {
            lock: SpinLock::new(),
            table: UnsafeCell::new(Table { buckets: [ptr::null_mut(); BUCKETS], open: 0 }),
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

    /// Records a socket the provider returned, in a reserved node.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `socket` is a live socket not yet recorded.
    pub unsafe fn insert(&self, reserved: Reserved, socket: *mut WSK_SOCKET) {
        let node = reserved.into_raw().cast::<Node>();
        // SAFETY: the reserved node is a live block of a Node's size.
        let field = unsafe { ptr::addr_of!((*node).dispatch) };
        // SAFETY: initialized by Reserved::new / with_dispatch.
        let dispatch = unsafe { field.read() };
        let link = |t: &mut Table| {
            let head = t.head(socket);
            // SAFETY: `node` is a live pool block of a Node's size that we
            // own (it was Reserved), written before it is linked; the table
            // owns it from now on.
            unsafe { ptr::write(node, Node { socket, next: *head, closing: false, dispatch }) };
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

    /// Marks an open socket as being closed. False if it is not open (or
    /// already being closed): the close must be refused.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn begin_close(&self, socket: *mut WSK_SOCKET) -> bool {
        let mark = |t: &mut Table| {
            let n = Self::find(t, socket, false);
            if n.is_null() {
                return false;
            }
            // SAFETY: linked nodes are live and the lock is held.
            unsafe { (*n).closing = true };
            true
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(mark) }
    }

    /// Undoes [`Sockets::begin_close`]: the close was never issued.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `begin_close(socket)` returned true.
    pub unsafe fn abort_close(&self, socket: *mut WSK_SOCKET) {
        let unmark = |t: &mut Table| {
            let n = Self::find(t, socket, true);
            if !n.is_null() {
                // SAFETY: linked nodes are live and the lock is held.
                unsafe { (*n).closing = false };
            }
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(unmark) }
    }

    /// Forgets a closed socket and frees its node.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `begin_close(socket)` returned true.
    pub unsafe fn finish_close(&self, socket: *mut WSK_SOCKET) {
        let unlink = |t: &mut Table| -> *mut Node {
            let mut link: &mut *mut Node = t.head(socket);
            let found = loop {
                let n = *link;
                if n.is_null() {
                    break n;
                }
                // SAFETY: linked nodes are live (type invariant) and the lock
                // is held.
                let node = unsafe { &mut *n };
                if node.socket == socket && node.closing {
                    *link = node.next;
                    break n;
                }
                link = &mut node.next;
            };
            if !found.is_null() {
                t.open = t.open.saturating_sub(1);
            }
            found
        };
        // SAFETY: IRQL per the caller; unlinking under the lock transfers the
        // node's ownership back to us.
        let node = unsafe { self.with(unlink) };
        if !node.is_null() {
            // SAFETY: unlinked above; nothing else references it.
            unsafe { platform::pool_free(node.cast()) };
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
            assert!(r.is_ok(), "pool allocation failed");
            r.unwrap_or_else(|_| unreachable!())
        };
        // SAFETY: PASSIVE_LEVEL; the pointers are only compared, never read.
        unsafe {
            table.insert(reserve(), s);
            assert!(table.begin_close(s));
            assert_eq!(table.lookup(s), Lookup::Closing);
            table.insert(reserve(), s); // the same address, a new socket
            assert_eq!(table.lookup(s), Lookup::Open);
            table.finish_close(s); // the old close ends
            assert_eq!(table.lookup(s), Lookup::Open, "the new socket must stay open");
            assert_eq!(table.open(), 1);
            assert!(table.begin_close(s));
            assert!(!table.begin_close(s), "a second close of the same socket is refused");
            table.abort_close(s);
            assert!(table.begin_close(s));
            table.finish_close(s);
            assert_eq!(table.lookup(s), Lookup::Unknown);
            assert_eq!(table.open(), 0);
        }
        k.finish();
    }
}
