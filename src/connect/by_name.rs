//! The connect behind SafeWskConnectByName: resolve a host name and service
//! with the provider's WskGetAddressInfo, copy the addresses out of the
//! provider's list and free the list (WskFreeAddressInfo) on every path, then
//! connect to the addresses one after the other under one deadline.
//!
//! Decisions, and why:
//! - **The resolver's order, one attempt at a time, not Happy Eyeballs**
//!   (RFC 8305's staggered parallel attempts). Windows' resolver already
//!   sorts its answer by the RFC 6724 destination-address rules (IPv6 first
//!   where IPv6 works), so its order is the preferred one; parallel attempts
//!   would need an IRP, a completion context and a socket record per
//!   attempt in flight, a socket to close for each loser, and a race between
//!   completions to arbitrate, for a gain that shows only where the first
//!   address black-holes SYNs. The price is that such an address can use up
//!   the whole deadline: a caller that expects that passes a short
//!   `TimeoutMs` and retries, or resolves and connects itself with
//!   SafeWskSocketConnect per address.
//! - **One deadline** for the resolution and all attempts: each step gets
//!   what is left of `TimeoutMs` (KeQueryPerformanceCounter, a monotonic
//!   clock). Once it has passed no further attempt
//!   is started, and the call returns STATUS_IO_TIMEOUT (never
//!   STATUS_TIMEOUT, a success code: libwsk's bug).
//! - **The list is copied, then freed, before any connect**: the addresses
//!   (at most [`SAFEWSK_BY_NAME_MAX_ADDRESSES`]) are copied into an array of
//!   this call's own and WskFreeAddressInfo is called at once, on success,
//!   failure, timeout or an empty answer alike; nothing keeps a pointer into
//!   the list (KSOCKET's getaddrinfo returns `ai_addr` pointers into a list
//!   it has already freed).
//! - **The names are copied too**, NUL-terminated, into buffers of this
//!   call's own: a UNICODE_STRING need not be terminated, and a provider that
//!   reads its Buffer as a C string (Wine 8's netio.sys passes it straight
//!   to GetAddrInfoExW) would otherwise read past its end; and the caller's
//!   string (which may be paged) is read twice: checked as parameter 2 or 3,
//!   then copied (and checked again: a string changed in between is
//!   refused).
//!
//! Stack use: the two name buffers and the address array (about 800 bytes)
//! are one non-paged pool block per call ([`Scratch`]), not locals: on the
//! stack they made this the deepest export (a 1.8 KiB frame, 2.2 KiB with
//! what it calls, x64 release), above the library's stack budget (1.5 KiB
//! per export, docs/stack.md). The block is allocated after the parameter
//! and IRQL checks (PASSIVE_LEVEL), and the names are copied into it;
//! STATUS_INSUFFICIENT_RESOURCES if it cannot be allocated. It is freed on
//! every path before the call returns.

use core::mem::size_of;
use core::ptr;

use super::connect_entered;
use super::validate::{context_and_dispatch, Bad, ConnectArgs, Context};
use crate::client::{self, ClientBlock, Inside, SAFEWSK_CLIENT};
use crate::handles::SAFEWSK_SOCKET;
use crate::kernel::deadline::Deadline;
use crate::kernel::irp::call_and_wait;
use crate::kernel::nt::*;
use crate::kernel::platform;
use crate::kernel::status::{require_irql, Status};

/// The longest `NodeName` SafeWskConnectByName accepts, in characters (a DNS
/// name has at most 255 octets).
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_BY_NAME_MAX_NODE_CHARS: u32 = 255 as u32;
/// The longest `ServiceName` SafeWskConnectByName accepts, in characters
/// (NI_MAXSERV is 32).
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_BY_NAME_MAX_SERVICE_CHARS: u32 = 32 as u32;
/// How many of the resolver's addresses SafeWskConnectByName keeps and tries,
/// in the resolver's order; the rest are ignored.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_BY_NAME_MAX_ADDRESSES: u32 = 8 as u32;

pub(crate) const MAX_NODE: usize = SAFEWSK_BY_NAME_MAX_NODE_CHARS as usize;
pub(crate) const MAX_SERVICE: usize = SAFEWSK_BY_NAME_MAX_SERVICE_CHARS as usize;
const MAX_ADDRESSES: usize = SAFEWSK_BY_NAME_MAX_ADDRESSES as usize;
/// At most this many list entries are looked at (a provider's list that
/// loops would otherwise never end).
pub(crate) const MAX_ENTRIES: usize = 64;
/// sizeof(SOCKADDR_IN6): the smallest `RemoteAddressLength` accepted, since
/// which family is reached is known only at the end.
const SOCKADDR_IN6_LEN: ULONG = size_of::<SOCKADDR_IN6>() as ULONG;

/// The arguments of SafeWskConnectByName, as the export received them.
#[derive(Clone, Copy)]
pub struct ByNameArgs {
    pub node: *const UNICODE_STRING,
    pub service: *const UNICODE_STRING,
    pub socket_context: PVOID,
    pub dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    pub socket_out: *mut *mut SAFEWSK_SOCKET,
    pub remote_out: *mut SOCKADDR,
    pub remote_out_len: ULONG,
    pub timeout_ms: ULONG,
}

/// A NUL-terminated copy of a caller's UNICODE_STRING, and a UNICODE_STRING
/// describing it (built by [`Wide::unicode`] once the copy no longer moves).
pub(crate) struct Wide<const N: usize> {
    chars: [u16; N],
    len: usize,
}

impl<const N: usize> Wide<N> {
    /// Checks `*us` as [`Wide::copy_from`] would copy it, without keeping
    /// it: the parameter check, made before the IRQL check and before this
    /// call's block exists (the copy checks again: a string changed in
    /// between is refused then).
    ///
    /// # Safety
    /// As [`Wide::copy_from`].
    unsafe fn check(us: *const UNICODE_STRING) -> Result<(), ()> {
        if us.is_null() {
            return Err(());
        }
        // SAFETY: non-null and readable, per the caller.
        let us = unsafe { ptr::read_unaligned(us) };
        let (bytes, max, buffer) = (usize::from(us.Length), usize::from(us.MaximumLength), us.Buffer);
        let chars = bytes / 2;
        if bytes == 0 || bytes % 2 != 0 || bytes > max || buffer.is_null() || chars >= N {
            return Err(());
        }
        // `buffer` holds `bytes` = 2 * `chars` readable bytes (caller), not
        // necessarily aligned: the characters are read one by one, unaligned.
        let first = buffer.cast::<u8>();
        for i in 0..chars {
            let at = first.wrapping_add(2 * i).cast::<u16>();
            // SAFETY: inside the `bytes` readable bytes (2 * i + 2 <= bytes);
            // read_unaligned makes no alignment assumption.
            if unsafe { ptr::read_unaligned(at) } == 0 {
                return Err(());
            }
        }
        Ok(())
    }

    /// Copies `*us` (at most N - 1 characters, none of them NUL, at least
    /// one) and terminates it; Err(()) if it is not such a string.
    ///
    /// # Safety
    /// `us` is null or a readable UNICODE_STRING whose Buffer, when not
    /// null, holds Length readable bytes; IRQL <= APC_LEVEL (it may be
    /// pageable).
    unsafe fn copy_from(&mut self, us: *const UNICODE_STRING) -> Result<(), ()> {
        if us.is_null() {
            return Err(());
        }
        // SAFETY: non-null and readable, per the caller; read_unaligned makes
        // no alignment assumption.
        let us = unsafe { ptr::read_unaligned(us) };
        let (bytes, max, buffer) = (usize::from(us.Length), usize::from(us.MaximumLength), us.Buffer);
        let chars = bytes / 2;
        if bytes == 0 || bytes % 2 != 0 || bytes > max || buffer.is_null() || chars >= N {
            return Err(());
        }
        let dst = self.chars.get_mut(..chars).ok_or(())?;
        // SAFETY: `buffer` holds `bytes` readable bytes (caller), `dst` is
        // `bytes` writable bytes of ours; a byte copy needs no alignment.
        unsafe { ptr::copy_nonoverlapping(buffer.cast::<u8>(), dst.as_mut_ptr().cast::<u8>(), bytes) };
        // An embedded NUL would silently shorten the name the provider sees.
        if dst.contains(&0) {
            return Err(());
        }
        if let Some(end) = self.chars.get_mut(chars) {
            *end = 0;
        }
        self.len = chars;
        Ok(())
    }

    /// A UNICODE_STRING for the copy: Length without the terminator,
    /// MaximumLength with it. Valid while `self` stays where it is.
    fn unicode(&mut self) -> UNICODE_STRING {
        let bytes = (self.len * 2) as USHORT;
        UNICODE_STRING { Length: bytes, MaximumLength: bytes + 2, Buffer: self.chars.as_mut_ptr() }
    }
}

/// Storage for one resolved SOCKADDR_IN or SOCKADDR_IN6.
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct Sockaddr([u8; 28]);

impl Sockaddr {
    const ZERO: Sockaddr = Sockaddr([0; 28]);

    fn family(&self) -> ADDRESS_FAMILY {
        let [a, b, ..] = self.0;
        ADDRESS_FAMILY::from_ne_bytes([a, b])
    }

    /// How many bytes of the storage the address uses.
    fn len(&self) -> usize {
        if self.family() == AF_INET6 {
            size_of::<SOCKADDR_IN6>()
        } else {
            size_of::<SOCKADDR_IN>()
        }
    }

    /// The wildcard address, port 0, of this address's family.
    fn wildcard(&self) -> Sockaddr {
        let mut w = Sockaddr::ZERO;
        let [a, b, ..] = &mut w.0;
        [*a, *b] = self.family().to_ne_bytes();
        w
    }

    fn as_ptr(&self) -> *const SOCKADDR {
        self.0.as_ptr().cast()
    }
}

/// The addresses copied out of the provider's list.
struct Resolved {
    addrs: [Sockaddr; MAX_ADDRESSES],
    count: usize,
}

/// The names and the addresses of one call: one zeroed non-paged pool block
/// (all-zero is a valid value: empty names, no address), not locals, to keep
/// the stack small (see the module's *Stack use*).
pub(crate) struct Scratch {
    pub(crate) node: Wide<{ MAX_NODE + 1 }>,
    pub(crate) service: Wide<{ MAX_SERVICE + 1 }>,
    resolved: Resolved,
}

/// The pool block of a [`Scratch`], freed when dropped.
pub(crate) struct ScratchBlock(ptr::NonNull<Scratch>);

impl ScratchBlock {
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL (non-paged pool).
    unsafe fn new(client: &ClientBlock) -> Result<ScratchBlock, NTSTATUS> {
        // SAFETY: IRQL <= DISPATCH_LEVEL per the caller; the block is zeroed,
        // a valid Scratch, and pool blocks are aligned for it (16 bytes).
        let p = unsafe { client.allocator().alloc(size_of::<Scratch>()) }.cast::<Scratch>();
        ptr::NonNull::new(p).map(ScratchBlock).ok_or(STATUS_INSUFFICIENT_RESOURCES)
    }

    pub(crate) fn get(&mut self) -> &mut Scratch {
        // SAFETY: our own live, initialised block, borrowed through `self`.
        unsafe { self.0.as_mut() }
    }
}

impl Drop for ScratchBlock {
    fn drop(&mut self) {
        // SAFETY: the block came from PoolAllocator::alloc and nothing uses it
        // after this (the provider's calls on the names have completed).
        unsafe { platform::pool_free(self.0.as_ptr().cast()) }
    }
}

/// Parameters 1 to 9 in order, then the IRQL, then the [`Scratch`] block
/// (into `scratch`) with both names copied into it, then refusing a client
/// whose cleanup has begun.
///
/// # Safety
/// The API contract of SafeWskConnectByName.
unsafe fn begin(
    client: *mut SAFEWSK_CLIENT,
    a: &ByNameArgs,
    scratch: &mut Option<ScratchBlock>,
) -> Result<Inside, NTSTATUS> {
    let pinned = client::pin(client)?;
    // SAFETY: forwarded API contract.
    unsafe { check_names(a.node, a.service) }?;
    // SAFETY: the dispatch table is null or readable per the contract.
    match unsafe { context_and_dispatch(a.socket_context, a.dispatch) } {
        Err(Bad::Context) => return Err(STATUS_INVALID_PARAMETER_4),
        Err(Bad::Dispatch) => return Err(STATUS_INVALID_PARAMETER_5),
        Ok(()) => {}
    }
    if a.socket_out.is_null() {
        return Err(STATUS_INVALID_PARAMETER_6);
    }
    // Parameter 7 (RemoteAddress) is optional; its length decides.
    let length_ok = if a.remote_out.is_null() { a.remote_out_len == 0 } else { a.remote_out_len >= SOCKADDR_IN6_LEN };
    if !length_ok {
        return Err(STATUS_INVALID_PARAMETER_8);
    }
    // Parameter 9 (TimeoutMs): every value means something.
    // "PFN_WSK_GET_ADDRESS_INFO" and "PFN_WSK_FREE_ADDRESS_INFO" (Microsoft
    // Learn): IRQL PASSIVE_LEVEL.
    require_irql(PASSIVE_LEVEL)?;
    let inside = pinned.ok_or(STATUS_INVALID_LEVEL)?;
    // SAFETY: PASSIVE_LEVEL (checked); forwarded API contract.
    *scratch = Some(unsafe { copy_names(&inside, a.node, a.service) }?);
    inside.connecting()?;
    Ok(inside)
}

/// Parameters 2 (`node`) and 3 (`service`) of SafeWskConnectByName and
/// SafeWskResolveName, checked in place: non-NULL, and, at IRQL <=
/// APC_LEVEL (the strings and their descriptors may be pageable; above it
/// only the pointers are checked, then the IRQL check fails), names
/// [`copy_names`] will copy.
///
/// # Safety
/// Each pointer is null or a readable UNICODE_STRING whose Buffer, when
/// not null, holds Length readable bytes.
pub(crate) unsafe fn check_names(node: *const UNICODE_STRING, service: *const UNICODE_STRING) -> Result<(), NTSTATUS> {
    let may_read_pageable = platform::current_irql() <= APC_LEVEL;
    let node_ok = !node.is_null()
        && (!may_read_pageable || {
            // SAFETY: non-null and readable per the caller; IRQL <= APC_LEVEL.
            unsafe { Wide::<{ MAX_NODE + 1 }>::check(node) }.is_ok()
        });
    if !node_ok {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    let service_ok = !service.is_null()
        && (!may_read_pageable || {
            // SAFETY: as for the node name.
            unsafe { Wide::<{ MAX_SERVICE + 1 }>::check(service) }.is_ok()
        });
    if !service_ok {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    Ok(())
}

/// This call's [`Scratch`] block with both names copied into it (checked
/// again: a name changed since [`check_names`] is refused as parameter 2
/// or 3); STATUS_INSUFFICIENT_RESOURCES if the block cannot be allocated.
///
/// # Safety
/// PASSIVE_LEVEL; the pointers as for [`check_names`].
pub(crate) unsafe fn copy_names(
    inside: &Inside,
    node: *const UNICODE_STRING,
    service: *const UNICODE_STRING,
) -> Result<ScratchBlock, NTSTATUS> {
    // SAFETY: PASSIVE_LEVEL per the caller.
    let mut block = unsafe { ScratchBlock::new(inside.block()) }?;
    // SAFETY: readable per the caller; PASSIVE_LEVEL.
    if unsafe { block.get().node.copy_from(node) }.is_err() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    // SAFETY: as for the node name.
    if unsafe { block.get().service.copy_from(service) }.is_err() {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    Ok(block)
}

/// The provider's WskGetAddressInfo and WskFreeAddressInfo, or
/// STATUS_NOT_SUPPORTED if its dispatch table lacks one.
fn resolver(entered: &Inside) -> Result<(PFN_WSK_GET_ADDRESS_INFO, PFN_WSK_FREE_ADDRESS_INFO), NTSTATUS> {
    // SAFETY: the provider dispatch captured at startup stays valid until the
    // NPI is released at cleanup, which waits for the entered call.
    let (get, free) = unsafe {
        let d = &*entered.block().provider().Dispatch;
        (d.WskGetAddressInfo, d.WskFreeAddressInfo)
    };
    if get.is_null() || free.is_null() {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: a non-null WskGetAddressInfo entry of a WSK_PROVIDER_DISPATCH is
    // a PFN_WSK_GET_ADDRESS_INFO (wsk.h); src/nt.rs keeps the entry untyped.
    let get = unsafe { core::mem::transmute::<PVOID, PFN_WSK_GET_ADDRESS_INFO>(get) };
    // SAFETY: likewise, a PFN_WSK_FREE_ADDRESS_INFO.
    let free = unsafe { core::mem::transmute::<PVOID, PFN_WSK_FREE_ADDRESS_INFO>(free) };
    Ok((get, free))
}

/// Copies the usable addresses of a provider's list into `out`, in its
/// order: AF_INET entries of at least sizeof(SOCKADDR_IN), AF_INET6 entries
/// of at least sizeof(SOCKADDR_IN6); others are skipped.
///
/// # Safety
/// `list` is null or a live list from WskGetAddressInfo.
unsafe fn copy_list(list: *const ADDRINFOEXW, out: &mut Resolved) {
    *out = Resolved { addrs: [Sockaddr::ZERO; MAX_ADDRESSES], count: 0 };
    let mut entry = list;
    let mut seen = 0;
    while !entry.is_null() && seen < MAX_ENTRIES && out.count < MAX_ADDRESSES {
        seen += 1;
        // SAFETY: an entry of the live list (caller).
        let e = unsafe { ptr::read_unaligned(entry) };
        entry = e.ai_next;
        let want = match u16::try_from(e.ai_family) {
            Ok(AF_INET) => size_of::<SOCKADDR_IN>(),
            Ok(AF_INET6) => size_of::<SOCKADDR_IN6>(),
            _ => continue,
        };
        if e.ai_addr.is_null() || e.ai_addrlen < want {
            continue;
        }
        let Some(slot) = out.addrs.get_mut(out.count) else { break };
        // SAFETY: `ai_addr` holds `ai_addrlen` >= `want` readable bytes (the
        // provider's list); `slot` is 28 >= `want` bytes of ours.
        unsafe { ptr::copy_nonoverlapping(e.ai_addr.cast::<u8>(), slot.0.as_mut_ptr(), want) };
        if slot.family() != u16::try_from(e.ai_family).unwrap_or(0) {
            // The address itself says another family than the entry.
            *slot = Sockaddr::ZERO;
            continue;
        }
        out.count += 1;
    }
}

/// WskGetAddressInfo through `call_and_wait`, with `timeout_ms`; the list is
/// copied (into `scratch.resolved`) and then freed on every path where the
/// provider returned one.
///
/// # Safety
/// IRQL PASSIVE_LEVEL; the names are NUL-terminated copies.
unsafe fn resolve(entered: &Inside, scratch: &mut Scratch, timeout_ms: ULONG) -> Result<(), NTSTATUS> {
    let resolved = &mut scratch.resolved;
    let copy = |list| {
        // SAFETY: the list the provider returned, not yet freed.
        unsafe { copy_list(list, resolved) };
        if resolved.count == 0 {
            Err(STATUS_NOT_FOUND)
        } else {
            Ok(())
        }
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { resolve_with(entered, &mut scratch.node, &mut scratch.service, AF_UNSPEC, timeout_ms, copy) }
}

/// WskGetAddressInfo (hints: `family`, SOCK_STREAM, IPPROTO_TCP; NS_ALL)
/// through `call_and_wait`, with `timeout_ms`; on success `copy` reads the
/// provider's list (its only reader), which is then freed with
/// WskFreeAddressInfo on every path where the provider returned one, before
/// this returns. Shared by SafeWskConnectByName and SafeWskResolveName.
///
/// # Safety
/// IRQL PASSIVE_LEVEL; the names are NUL-terminated copies; `family` is
/// AF_UNSPEC, AF_INET or AF_INET6; `copy` only reads the list it is given.
pub(crate) unsafe fn resolve_with<R>(
    entered: &Inside,
    node: &mut Wide<{ MAX_NODE + 1 }>,
    service: &mut Wide<{ MAX_SERVICE + 1 }>,
    family: ADDRESS_FAMILY,
    timeout_ms: ULONG,
    copy: impl FnOnce(*const ADDRINFOEXW) -> Result<R, NTSTATUS>,
) -> Result<R, NTSTATUS> {
    let (get, free) = resolver(entered)?;
    let client = entered.block().provider().Client;
    let mut node_us = node.unicode();
    let mut service_us = service.unicode();
    let mut hints = ADDRINFOEXW {
        ai_flags: 0,
        ai_family: i32::from(family),
        ai_socktype: i32::from(SOCK_STREAM),
        ai_protocol: IPPROTO_TCP as i32,
        ai_addrlen: 0,
        ai_canonname: ptr::null_mut(),
        ai_addr: ptr::null_mut(),
        ai_blob: ptr::null_mut(),
        ai_bloblen: 0,
        ai_provider: ptr::null_mut(),
        ai_next: ptr::null_mut(),
    };
    let mut list: *mut ADDRINFOEXW = ptr::null_mut();
    let result = ptr::addr_of_mut!(list);
    let issue = |irp| {
        // SAFETY: the provider's WskGetAddressInfo of the entered client; the
        // strings (the caller's copies), hints and result pointer
        // live until this function returns, after the IRP has completed.
        unsafe {
            get(
                client,
                &mut node_us,
                &mut service_us,
                NS_ALL,
                ptr::null_mut(),
                &mut hints,
                result,
                ptr::null_mut(),
                ptr::null_mut(),
                irp,
            )
        }
    };
    // SAFETY: IRQL PASSIVE_LEVEL; `issue` hands the IRP to exactly one WSK
    // function.
    let done = unsafe { call_and_wait(entered.block().device(), b"WskGetAddressInfo\0", Some(timeout_ms), issue) }?;
    // The IRP has completed: the provider wrote `list`, or never will.
    // SAFETY: a local written (if at all) before the completion.
    let list = unsafe { ptr::read_volatile(result) };
    let outcome = if done.timed_out {
        Err(STATUS_IO_TIMEOUT)
    } else if !nt_success(done.status) {
        Err(done.status)
    } else {
        copy(list)
    };
    if !list.is_null() {
        // Freed on every path, before any connect, and never read again.
        // SAFETY: the provider's list, freed once, at PASSIVE_LEVEL.
        unsafe { free(client, list) };
    }
    outcome
}

/// SafeWskConnectByName.
///
/// # Safety
/// The API contract of SafeWskConnectByName.
pub unsafe fn connect_by_name(client: *mut SAFEWSK_CLIENT, a: ByNameArgs) -> Status {
    let deadline = Deadline::start(a.timeout_ms);
    let mut scratch = None;
    // SAFETY: forwarded API contract.
    let entered = unsafe { begin(client, &a, &mut scratch) }?;
    // Entered: begin allocated the block.
    let Some(scratch) = scratch.as_mut() else { return Err(STATUS_INVALID_LEVEL) };
    let scratch = scratch.get();
    // SAFETY: PASSIVE_LEVEL (checked); copies of the names.
    unsafe { resolve(&entered, scratch, deadline.remaining()) }?;
    let resolved = &scratch.resolved;
    let mut last = STATUS_NOT_FOUND;
    let mut tried = false;
    for addr in resolved.addrs.iter().take(resolved.count) {
        if tried && deadline.passed() {
            return Err(STATUS_IO_TIMEOUT);
        }
        let local = addr.wildcard();
        let args = ConnectArgs {
            socket_type: SOCK_STREAM,
            protocol: IPPROTO_TCP,
            local: local.as_ptr(),
            remote: addr.as_ptr(),
            flags: 0,
            socket_context: a.socket_context,
            dispatch: a.dispatch,
            owning_process: ptr::null_mut(),
            owning_thread: ptr::null_mut(),
            security_descriptor: ptr::null_mut(),
        };
        // The provider's transport list too: an address of a family the
        // provider does not list is skipped like any other refused one.
        let cx = Context {
            client_present: true,
            twelfth_ok: true,
            transports: Some(entered.block().transports()),
            sds: None,
        };
        // An address no connect accepts (port 0, unspecified, multicast,
        // broadcast) is skipped, as SafeWskSocketConnect would refuse it.
        // SAFETY: our own addresses; the dispatch table was read above.
        if unsafe { args.validate(cx) }.is_err() {
            continue;
        }
        tried = true;
        // SAFETY: PASSIVE_LEVEL; validated arguments whose addresses live on
        // this stack for the call.
        match unsafe { connect_entered(&entered, &args, deadline.remaining()) } {
            Ok(socket) => {
                // SAFETY: checked non-null as parameter 6; writable (contract).
                unsafe { *a.socket_out = socket };
                if !a.remote_out.is_null() {
                    // SAFETY: `remote_out` is `remote_out_len` >= 28 writable
                    // bytes (parameter 8); the address is at most 28.
                    unsafe { ptr::copy_nonoverlapping(addr.0.as_ptr(), a.remote_out.cast::<u8>(), addr.len()) };
                }
                return Ok(STATUS_SUCCESS);
            }
            // Our own allocation failed, or the provider cannot connect at
            // all: another address would not help.
            Err(st @ (STATUS_INSUFFICIENT_RESOURCES | STATUS_NOT_SUPPORTED)) => return Err(st),
            Err(st) => last = st,
        }
    }
    if !tried {
        // The resolver answered only with addresses nobody can connect to.
        return Err(STATUS_NOT_FOUND);
    }
    Err(last)
}
