//! Socket handles: one table per driver (not per client) of socket slots
//! that a stale handle cannot fool.
//!
//! A `SAFEWSK_SOCKET*` is not a pointer but an encoded handle: the slot's
//! index, the slot's generation when the socket was made, and the table's
//! epoch, under a tag byte that makes it a non-canonical address (a driver
//! that dereferences one faults at once). The `WSK_SOCKET*`, whose block
//! WSK frees at close and may give to the next socket, is never an identity
//! and never handed out.
//!
//! - **Lookup**: a bounds check and two loads (the directory entry, then the
//!   slot), no lock, and never freed memory: the directory is static, and a
//!   chunk of slots, once installed, is neither moved nor freed until the
//!   last client's cleanup ([`teardown`]).
//! - **Acquire**: one compare-exchange of the slot's state word against the
//!   handle's generation ([`state`]), which also claims the slot's cached IRP
//!   and counts the call; a call then costs three atomics on its own
//!   socket's word and no lock.
//! - **Slots** are reserved when a connect starts and handed out first in,
//!   first out (a slot just freed is the last to be reused), under the
//!   table's spin lock (connect and close only). A slot whose 24-bit
//!   generation is exhausted is retired, never reused.
//! - **IRPs**: each reserved slot gets one IRP, which its socket's calls
//!   reuse; a freed slot's IRP goes to a small cache ([`IRP_CACHE`]) for the
//!   next connect, so connect + close in a steady state allocate nothing.
//!
//! Each slot holds one reference on its client (the client's `sockets`
//! count) from reservation until it is freed, so a client is never freed
//! while one of its sockets' calls is still running.

/// cbindgen:ignore
pub(crate) mod state;

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::client;
use crate::kernel::nt::*;
use crate::kernel::platform;
use crate::kernel::sync::{Event, SpinLock};
use state::SlotState;
pub(crate) use state::{Acquired, Refused, Released, Take};

/// Slots per chunk (one 4 KiB page of 64-byte slots).
const CHUNK_SLOTS: usize = 64;
/// Chunks in the directory: at most `CHUNKS * CHUNK_SLOTS` sockets at once.
const CHUNKS: usize = 1024;
/// The most sockets open at once, all clients of the driver together.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_MAX_SOCKETS: u32 = 65536 as u32;
static_assertions::const_assert_eq!(SAFEWSK_MAX_SOCKETS as usize, CHUNKS * CHUNK_SLOTS);
/// How many idle IRPs the table keeps for the next connects; freed by the
/// last client's cleanup.
pub(crate) const IRP_CACHE: usize = 64;

/// The tag byte of a socket handle (bits 56..64): non-canonical on x64 and
/// outside both halves of the ARM64 address space.
const SOCKET_TAG: u64 = 0xA5;
const NONE: u32 = u32::MAX;

/// An opaque socket handle: a `SAFEWSK_SOCKET*` in C, never dereferenced.
#[allow(non_camel_case_types)]
pub struct SAFEWSK_SOCKET {
    _private: [u8; 0],
}

/// One socket slot: 64 bytes, one cache line (a chunk is 4096 bytes, which
/// pool hands out page-aligned: "ExAllocatePoolWithTag", Microsoft Learn);
/// the type itself only needs 8-byte alignment.
///
/// # Invariants
/// The fields other than `state` and `next` are written only by the slot's
/// owner while the slot is not OPEN (the connect that reserved it, or whoever
/// freed it), before [`SlotState::publish`] (a release store); a call reads
/// them after its acquire. `next` is the free list's link, under the table's
/// lock.
#[repr(C)]
pub(crate) struct Slot {
    state: SlotState,
    /// The provider's socket (null until the connect has one).
    socket: AtomicPtr<WSK_SOCKET>,
    /// The slot's IRP, which the socket's calls reuse (claimed through the
    /// state word's IRP bit).
    irp: AtomicPtr<IRP>,
    /// The client's device object, for IoSetCompletionRoutineEx.
    device: AtomicPtr<DEVICE_OBJECT>,
    /// The client dispatch table the socket was made with (or null).
    dispatch: AtomicPtr<WSK_CLIENT_CONNECTION_DISPATCH>,
    /// The close waiting for the calls inside (see `state`).
    closer: AtomicPtr<Event>,
    /// The owning client's slot index.
    owner: AtomicU32,
    next: AtomicU32,
    /// What kind of WSK socket the slot holds ([`Kind`], set at
    /// reservation): which of the provider's dispatch tables its
    /// `Dispatch` is, and so which calls it takes.
    kind: AtomicU32,
    /// The socket's address family (AF_INET, AF_INET6; 0 until the socket
    /// that made it records it): a datagram socket's send-to checks the
    /// remote address against it.
    family: AtomicU32,
}

/// The kind of socket a slot holds. Every socket call checks the kind, so
/// that a handle of another kind is refused as parameter 1 instead of
/// reaching a dispatch table of another shape; SafeWskCloseSocket and
/// cleanup take every kind (all tables begin with the basic functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    /// WSK_FLAG_CONNECTION_SOCKET: WSK_PROVIDER_CONNECTION_DISPATCH.
    Connection = 1,
    /// WSK_FLAG_LISTEN_SOCKET: WSK_PROVIDER_LISTEN_DISPATCH.
    Listen = 2,
    /// WSK_FLAG_DATAGRAM_SOCKET: WSK_PROVIDER_DATAGRAM_DISPATCH.
    Datagram = 3,
}

static_assertions::const_assert_eq!(core::mem::size_of::<Slot>(), 64);

struct Chunk {
    slots: [Slot; CHUNK_SLOTS],
}

/// What the table's lock guards.
struct Shared {
    /// The free list, first in first out (indices; NONE: empty).
    head: u32,
    tail: u32,
    /// Chunks installed in the directory.
    chunks: usize,
    /// Idle IRPs for the next connects.
    irps: [*mut IRP; IRP_CACHE],
    cached: usize,
    /// Live clients; the last one's cleanup frees the table.
    clients: usize,
    /// The epoch cannot advance any more: no client can start.
    exhausted: bool,
}

/// # Invariants
/// `shared` is only accessed with `lock` held. A non-null `directory` entry
/// is a live chunk that stays at its address until [`teardown`]; entries are
/// installed in order.
struct Table {
    directory: [AtomicPtr<Chunk>; CHUNKS],
    /// Bumped by every teardown, and carried by every handle: a handle from
    /// before a teardown is refused by a table rebuilt since.
    epoch: AtomicU32,
    lock: SpinLock,
    shared: UnsafeCell<Shared>,
}

// SAFETY: `shared` is only touched under the spin lock; everything else is
// atomic.
unsafe impl Sync for Table {}

static TABLE: Table = Table {
    directory: [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS],
    epoch: AtomicU32::new(1),
    lock: SpinLock::new(),
    shared: UnsafeCell::new(Shared {
        head: NONE,
        tail: NONE,
        chunks: 0,
        irps: [ptr::null_mut(); IRP_CACHE],
        cached: 0,
        clients: 0,
        exhausted: false,
    }),
};

/// Runs `f` with the table's lock held.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; the caller does not hold the lock.
unsafe fn locked<R>(f: impl FnOnce(&mut Shared) -> R) -> R {
    // SAFETY: per the caller.
    let _guard = unsafe { TABLE.lock.lock() };
    // SAFETY: the lock is held: the only reference (Table invariant).
    f(unsafe { &mut *TABLE.shared.get() })
}

/// The slot at `index`, if its chunk is installed.
fn slot(index: u32) -> Option<&'static Slot> {
    let chunk = TABLE.directory.get(index as usize / CHUNK_SLOTS)?.load(Ordering::Acquire);
    // SAFETY: an installed chunk stays live until teardown (Table
    // invariant), which no caller with a handle of the current epoch can
    // race (the API contract: no call during or after the last cleanup).
    let chunk = unsafe { chunk.as_ref() }?;
    chunk.slots.get(index as usize % CHUNK_SLOTS)
}

/// The handle of the socket in slot `index` at generation `generation`.
fn encode(index: u32, generation: u32) -> *mut SAFEWSK_SOCKET {
    let epoch = u64::from(TABLE.epoch.load(Ordering::Relaxed) & 0xFFFF);
    let h = (SOCKET_TAG << 56) | (epoch << 40) | (u64::from(generation) << 16) | u64::from(index);
    h as usize as *mut SAFEWSK_SOCKET
}

/// A decoded handle: its slot and the generation it names.
#[derive(Clone, Copy)]
pub(crate) struct Handle {
    pub(crate) slot: &'static Slot,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Whether `h` has the form of a socket handle (tag, epoch); no memory is
/// read. Used above DISPATCH_LEVEL, where nothing more is checked.
pub(crate) fn well_formed(h: *mut SAFEWSK_SOCKET) -> bool {
    let h = h as usize as u64;
    h >> 56 == SOCKET_TAG && (h >> 40) & 0xFFFF == u64::from(TABLE.epoch.load(Ordering::Relaxed) & 0xFFFF)
}

/// The slot a handle names, or None for anything that is not a handle of
/// this table (NULL, a pointer, a forged value, another epoch, a chunk
/// never installed). Whether the socket is still open is the acquire's
/// business.
pub(crate) fn decode(h: *mut SAFEWSK_SOCKET) -> Option<Handle> {
    if !well_formed(h) {
        return None;
    }
    let h = h as usize as u64;
    let index = (h & 0xFFFF) as u32;
    let generation = ((h >> 16) & 0xFF_FFFF) as u32;
    Some(Handle { slot: slot(index)?, index, generation })
}

impl Slot {
    pub(crate) fn state(&self) -> &SlotState {
        &self.state
    }

    /// The provider's socket. Only while the slot is held.
    pub(crate) fn socket(&self) -> *mut WSK_SOCKET {
        self.socket.load(Ordering::Relaxed)
    }

    /// The slot's IRP. Only by the call that claimed it.
    pub(crate) fn irp(&self) -> *mut IRP {
        self.irp.load(Ordering::Relaxed)
    }

    pub(crate) fn device(&self) -> PDEVICE_OBJECT {
        self.device.load(Ordering::Relaxed)
    }

    pub(crate) fn dispatch(&self) -> *const WSK_CLIENT_CONNECTION_DISPATCH {
        self.dispatch.load(Ordering::Relaxed)
    }

    pub(crate) fn owner(&self) -> u32 {
        self.owner.load(Ordering::Relaxed)
    }

    /// Whether the slot holds a socket of `kind` (read after the handle's
    /// check, which synchronizes with the publication).
    pub(crate) fn is(&self, kind: Kind) -> bool {
        self.kind.load(Ordering::Relaxed) == kind as u32
    }

    /// The kind of socket the slot holds (None for a slot never reserved).
    pub(crate) fn kind(&self) -> Option<Kind> {
        match self.kind.load(Ordering::Relaxed) {
            1 => Some(Kind::Connection),
            2 => Some(Kind::Listen),
            3 => Some(Kind::Datagram),
            _ => None,
        }
    }

    /// The socket's address family (see the field).
    pub(crate) fn family(&self) -> ADDRESS_FAMILY {
        self.family.load(Ordering::Relaxed) as ADDRESS_FAMILY
    }

    /// Where a waiting close sleeps (see [`state::SlotState::wait_for_calls`]).
    pub(crate) fn set_closer(&self, event: *const Event) {
        self.closer.store(event.cast_mut(), Ordering::Relaxed);
    }

    /// Wakes the close that waits for the calls inside (the caller's
    /// `returned` said so).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL. The close registered its event before setting
    /// WAITING and sleeps until this wake, so the event is live.
    pub(crate) unsafe fn wake_closer(&self) {
        let event = self.closer.load(Ordering::Acquire);
        // SAFETY: per the contract: initialized, live until signalled.
        if let Some(event) = unsafe { event.as_ref() } {
            // SAFETY: as above; signalling is the last access.
            unsafe { event.set() };
        }
    }
}

/// A reserved slot, owned by a connect until it is published or given up
/// (dropped: freed again, counted back off the client).
#[must_use]
pub(crate) struct Reserved {
    slot: &'static Slot,
    index: u32,
    generation: u32,
}

impl Reserved {
    /// The IRP the connect uses (and the socket's calls later reuse).
    pub(crate) fn irp(&self) -> *mut IRP {
        self.slot.irp()
    }

    /// Records the provider's socket (before publishing it).
    pub(crate) fn set_socket(&self, socket: *mut WSK_SOCKET) {
        self.slot.socket.store(socket, Ordering::Relaxed);
    }

    /// The socket recorded with [`Reserved::set_socket`].
    pub(crate) fn socket(&self) -> *mut WSK_SOCKET {
        self.slot.socket()
    }

    /// Records the socket's address family (before publishing it).
    pub(crate) fn set_family(&self, family: ADDRESS_FAMILY) {
        self.slot.family.store(u32::from(family), Ordering::Relaxed);
    }

    /// The client device object the slot was reserved with.
    pub(crate) fn device(&self) -> PDEVICE_OBJECT {
        self.slot.device()
    }

    /// Hands the socket out: its handle.
    pub(crate) fn publish(self) -> *mut SAFEWSK_SOCKET {
        let h = encode(self.index, self.generation);
        self.slot.state.publish();
        core::mem::forget(self);
        h
    }

    /// The recorded socket could not be closed: it becomes an orphan that
    /// cleanup closes.
    pub(crate) fn orphan(self) {
        self.slot.state.publish_orphan();
        core::mem::forget(self);
    }

    /// Gives up the reservation as a raw value (an asynchronous request
    /// keeps it); [`Reserved::from_raw`] takes it back.
    pub(crate) fn into_raw(self) -> RawReserved {
        let raw = RawReserved { slot: self.slot, index: self.index, generation: self.generation };
        core::mem::forget(self);
        raw
    }

    /// # Safety
    /// `raw` came from [`Reserved::into_raw`] and is taken back once.
    pub(crate) unsafe fn from_raw(raw: RawReserved) -> Reserved {
        Reserved { slot: raw.slot, index: raw.index, generation: raw.generation }
    }
}

/// A [`Reserved`] kept as plain data (see [`Reserved::into_raw`]).
#[derive(Clone, Copy)]
pub(crate) struct RawReserved {
    slot: &'static Slot,
    index: u32,
    generation: u32,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // The connect failed: nobody else saw the slot.
        let released = self.slot.state.abandon();
        // SAFETY: the slot is free now and ours to recycle; a connect runs
        // at IRQL <= DISPATCH_LEVEL.
        unsafe { recycle(self.slot, self.index, released) };
    }
}

/// Reserves a slot for a connect of the client in client slot `owner`
/// (which the caller has entered), with an IRP: from the free list and the
/// IRP cache, or allocated. STATUS_INSUFFICIENT_RESOURCES if a chunk or an
/// IRP cannot be allocated, or every slot is in use.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; the caller is inside client `owner`.
pub(crate) unsafe fn reserve(
    allocator: platform::PoolAllocator,
    owner: u32,
    device: PDEVICE_OBJECT,
    kind: Kind,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> Result<Reserved, NTSTATUS> {
    let pop = |s: &mut Shared| {
        let index = s.head;
        if let Some(free) = slot(index) {
            s.head = free.next.load(Ordering::Relaxed);
            if s.head == NONE {
                s.tail = NONE;
            }
        }
        let irp = match s.cached.checked_sub(1) {
            Some(n) => {
                s.cached = n;
                s.irps.get(n).copied().unwrap_or(ptr::null_mut())
            }
            None => ptr::null_mut(),
        };
        (index, irp)
    };
    // SAFETY: IRQL per the caller; not holding the lock.
    let (mut index, mut irp) = unsafe { locked(pop) };
    if index == NONE {
        // SAFETY: IRQL per the caller.
        index = unsafe { grow(allocator) }.inspect_err(|_| {
            if !irp.is_null() {
                // SAFETY: an idle cached IRP, ours.
                unsafe { give_back_irp(irp) };
            }
        })?;
    }
    let Some(free) = slot(index) else {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    };
    if irp.is_null() {
        // SAFETY: IRQL per the caller.
        irp = unsafe { platform::allocate_irp() };
        if irp.is_null() {
            // SAFETY: IRQL per the caller; the slot was never handed out.
            unsafe { push_free(index) };
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
    }
    if !client::rundown(owner).is_some_and(|r| r.add_socket()) {
        // SAFETY: an idle IRP of ours; the slot was never handed out.
        unsafe { give_back_irp(irp) };
        // SAFETY: as above.
        unsafe { push_free(index) };
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    free.socket.store(ptr::null_mut(), Ordering::Relaxed);
    free.irp.store(irp, Ordering::Relaxed);
    free.device.store(device, Ordering::Relaxed);
    free.dispatch.store(dispatch.cast_mut(), Ordering::Relaxed);
    free.closer.store(ptr::null_mut(), Ordering::Relaxed);
    free.owner.store(owner, Ordering::Relaxed);
    free.kind.store(kind as u32, Ordering::Relaxed);
    free.family.store(0, Ordering::Relaxed);
    let generation = free.state.reserve();
    Ok(Reserved { slot: free, index, generation })
}

/// Installs a new chunk, keeps its first slot for the caller and puts the
/// rest on the free list.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
unsafe fn grow(allocator: platform::PoolAllocator) -> Result<u32, NTSTATUS> {
    // SAFETY: IRQL per the caller.
    let chunk = unsafe { allocator.alloc(core::mem::size_of::<Chunk>()) }.cast::<Chunk>();
    if chunk.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: address computation inside the fresh block.
    let first = unsafe { ptr::addr_of_mut!((*chunk).slots) }.cast::<Slot>();
    for i in 0..CHUNK_SLOTS {
        // SAFETY: slot `i` of the fresh block (CHUNK_SLOTS slots).
        let place = unsafe { first.add(i) };
        // SAFETY: inside the fresh block, which the pool aligns for a Slot
        // (16 bytes at least; a Slot needs 8) and zeroed; each slot is
        // written once before the chunk is shared.
        unsafe {
            ptr::write(
                place,
                Slot {
                    state: SlotState::new(),
                    socket: AtomicPtr::new(ptr::null_mut()),
                    irp: AtomicPtr::new(ptr::null_mut()),
                    device: AtomicPtr::new(ptr::null_mut()),
                    dispatch: AtomicPtr::new(ptr::null_mut()),
                    closer: AtomicPtr::new(ptr::null_mut()),
                    owner: AtomicU32::new(0),
                    next: AtomicU32::new(NONE),
                    kind: AtomicU32::new(0),
                    family: AtomicU32::new(0),
                },
            )
        };
    }
    // (index, installed): a connect that found the free list empty at the
    // same time may have installed a chunk meanwhile; then one of its slots
    // is taken and this chunk is not installed, so that a burst of first
    // connects installs one chunk per 64 sockets, not one each.
    let install = |s: &mut Shared| {
        if let Some(free) = slot(s.head) {
            let index = s.head;
            s.head = free.next.load(Ordering::Relaxed);
            if s.head == NONE {
                s.tail = NONE;
            }
            return Some((index, false));
        }
        let n = s.chunks;
        let entry = TABLE.directory.get(n)?;
        entry.store(chunk, Ordering::Release);
        s.chunks = n + 1;
        let first = (n * CHUNK_SLOTS) as u32;
        for i in 1..CHUNK_SLOTS as u32 {
            append(s, first + i);
        }
        Some((first, true))
    };
    // SAFETY: IRQL per the caller.
    let done = unsafe { locked(install) };
    if !matches!(done, Some((_, true))) {
        // SAFETY: never installed: nobody else knows the block.
        unsafe { platform::pool_free(chunk.cast()) };
    }
    done.map(|(index, _)| index).ok_or(STATUS_INSUFFICIENT_RESOURCES)
}

/// Appends slot `index` to the free list (the lock is held).
fn append(s: &mut Shared, index: u32) {
    if let Some(free) = slot(index) {
        free.next.store(NONE, Ordering::Relaxed);
    }
    match slot(s.tail) {
        Some(tail) => tail.next.store(index, Ordering::Relaxed),
        None => s.head = index,
    }
    s.tail = index;
}

/// # Safety
/// IRQL <= DISPATCH_LEVEL; slot `index` is free and on no list.
unsafe fn push_free(index: u32) {
    // SAFETY: per the caller.
    unsafe { locked(|s| append(s, index)) };
}

/// Puts an idle IRP in the cache, or frees it if the cache is full.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; `irp` is an idle IRP of ours, not used again.
unsafe fn give_back_irp(irp: *mut IRP) {
    let keep = |s: &mut Shared| match s.irps.get_mut(s.cached) {
        Some(place) => {
            *place = irp;
            s.cached += 1;
            true
        }
        None => false,
    };
    // SAFETY: per the caller.
    if !unsafe { locked(keep) } {
        // SAFETY: idle and ours (contract).
        unsafe { platform::free_irp(irp) };
    }
}

/// Recycles a slot the state word freed (or retired): its IRP goes to the
/// cache, the slot to the free list's tail, and its client's count of
/// socket slots falls (the last one wakes a waiting cleanup).
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; `released` is what the release or abandon that
/// freed this slot returned, and the caller is the one that freed it.
#[inline]
pub(crate) unsafe fn recycle(slot: &Slot, index: u32, released: Released) {
    if released != Released::Kept {
        // SAFETY: forwarded caller guarantees.
        unsafe { recycle_freed(slot, index, released) }
    }
}

/// [`recycle`] of a slot that was freed or retired.
///
/// # Safety
/// As [`recycle`].
#[inline(never)]
unsafe fn recycle_freed(slot: &Slot, index: u32, released: Released) {
    let irp = slot.irp.swap(ptr::null_mut(), Ordering::Relaxed);
    slot.socket.store(ptr::null_mut(), Ordering::Relaxed);
    let owner = slot.owner();
    let put = |s: &mut Shared| {
        if released == Released::Free {
            append(s, index);
        }
        if irp.is_null() {
            return true;
        }
        match s.irps.get_mut(s.cached) {
            Some(place) => {
                *place = irp;
                s.cached += 1;
                true
            }
            None => false,
        }
    };
    // SAFETY: IRQL per the caller.
    if !unsafe { locked(put) } {
        // SAFETY: the slot's idle IRP (every holder is gone), not cached.
        unsafe { platform::free_irp(irp) };
    }
    // Last: the slot's reference on its client.
    client::socket_gone(owner);
}

/// A client starts: counted, so that the last cleanup frees the table.
/// STATUS_INSUFFICIENT_RESOURCES once the epoch is exhausted (65,535 times
/// every client of the driver was cleaned up and one started again).
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub(crate) unsafe fn client_started() -> Result<(), NTSTATUS> {
    // SAFETY: per the caller.
    let ok = unsafe {
        locked(|s| {
            if s.exhausted {
                return false;
            }
            s.clients += 1;
            true
        })
    };
    if ok {
        Ok(())
    } else {
        Err(STATUS_INSUFFICIENT_RESOURCES)
    }
}

/// A client is gone (its slots all freed). The last one frees the table:
/// the chunks and cached IRPs, and moves to the next epoch so that no
/// handle from before matches a rebuilt table.
///
/// # Safety
/// PASSIVE_LEVEL; no socket slot of any client is in use (every client's
/// cleanup drained its own, and this is the last client).
pub(crate) unsafe fn client_stopped() {
    let last = |s: &mut Shared| {
        s.clients = s.clients.saturating_sub(1);
        if s.clients != 0 {
            return;
        }
        // Under the lock, so that a client starting meanwhile finds an empty
        // table (freeing pool and IRPs is allowed at DISPATCH_LEVEL).
        for entry in TABLE.directory.iter().take(s.chunks) {
            let chunk = entry.swap(ptr::null_mut(), Ordering::AcqRel);
            if !chunk.is_null() {
                // SAFETY: uninstalled; no slot is in use (contract), and no
                // handle of this epoch can be used any more.
                unsafe { platform::pool_free(chunk.cast()) };
            }
        }
        s.chunks = 0;
        s.head = NONE;
        s.tail = NONE;
        for irp in s.irps.iter_mut().take(s.cached) {
            // SAFETY: an idle cached IRP, freed once (the entry is cleared).
            unsafe { platform::free_irp(core::mem::replace(irp, ptr::null_mut())) };
        }
        s.cached = 0;
        let epoch = TABLE.epoch.load(Ordering::Relaxed);
        if epoch >= 0xFFFF {
            s.exhausted = true;
        } else {
            TABLE.epoch.store(epoch + 1, Ordering::Relaxed);
        }
    };
    // SAFETY: PASSIVE_LEVEL per the caller.
    unsafe { locked(last) };
}

/// Calls `f` on every slot of the table with its index (cleanup's walk).
pub(crate) fn for_each_slot(mut f: impl FnMut(&'static Slot, u32)) {
    for (c, entry) in TABLE.directory.iter().enumerate() {
        let chunk = entry.load(Ordering::Acquire);
        // SAFETY: installed chunks stay live until teardown, which the
        // caller (a cleanup, not the last one's teardown) does not race.
        let Some(chunk) = (unsafe { chunk.as_ref() }) else { break };
        for (i, s) in chunk.slots.iter().enumerate() {
            f(s, (c * CHUNK_SLOTS + i) as u32);
        }
    }
}

/// Runs `f` if no client exists (under the table's lock, so that no client
/// starts meanwhile); false if one does.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub(crate) unsafe fn without_clients(f: impl FnOnce()) -> bool {
    // SAFETY: per the caller.
    unsafe {
        locked(|s| {
            if s.clients != 0 {
                return false;
            }
            f();
            true
        })
    }
}

/// (chunks installed, IRPs cached), for tests.
#[doc(hidden)]
pub fn table_usage() -> (usize, usize) {
    // SAFETY: a test thread at PASSIVE_LEVEL.
    unsafe { locked(|s| (s.chunks, s.cached)) }
}
