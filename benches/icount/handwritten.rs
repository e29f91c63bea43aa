//! The hand-written WSK sequence a careful C driver writes without safewsk,
//! the reference of the instruction count. Everything in this file is
//! counted as "hand-written" (by source file, inlined code included), so it
//! holds exactly the driver's own code and nothing of the bench around it.
//!
//! Per call, as "Using IRPs with Winsock Kernel Functions" (Microsoft Learn)
//! describes it, with the deadline a careful driver adds:
//!
//! ```c
//! irp = IoAllocateIrp(1, FALSE);
//! if (!irp) return STATUS_INSUFFICIENT_RESOURCES;
//! KeInitializeEvent(&ev, NotificationEvent, FALSE);
//! st = IoSetCompletionRoutineEx(dev, irp, Signal, &ev, TRUE, TRUE, TRUE);
//! if (!NT_SUCCESS(st)) { IoFreeIrp(irp); return STATUS_INSUFFICIENT_RESOURCES; }
//! if (Dispatch->WskXxx(..., irp) == STATUS_PENDING) {
//!     t.QuadPart = -10000LL * TimeoutMs;
//!     if (KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, &t) == STATUS_TIMEOUT) {
//!         IoCancelIrp(irp);
//!         KeWaitForSingleObject(&ev, Executive, KernelMode, FALSE, NULL);
//!     }
//! }
//! st = irp->IoStatus.Status; info = irp->IoStatus.Information;
//! IoFreeIrp(irp);
//! ```
//!
//! `connect`, `transfer` (and `transfer_with_flags`, which the
//! multi-threaded echo rows use for WSK_FLAG_WAITALL) and `close` are not
//! inlined into the bench's loops: they are the driver's functions, called
//! as safewsk's exports are (the bench is built without cross-crate LTO, so
//! those are never inlined either); inlined, their instructions would carry
//! the loop's line numbers and be counted as the bench's. `call` is inlined
//! into them as the compiler sees fit.
//!
//! Sends and receives describe a non-paged pool buffer with IoAllocateMdl +
//! MmBuildMdlForNonPagedPool and free the MDL after the IRP (what safewsk
//! does with SAFEWSK_FLAG_NONPAGED_BUFFER). Closes wait without a deadline,
//! as safewsk's close does.

use std::ptr;

use safewsk::nt::*;

extern "system" {
    fn IoAllocateIrp(stack: i8, quota: u8) -> *mut IRP;
    fn IoFreeIrp(irp: *mut IRP);
    fn IoCancelIrp(irp: *mut IRP) -> u8;
    fn IoSetCompletionRoutineEx(
        device: PDEVICE_OBJECT,
        irp: *mut IRP,
        routine: PIO_COMPLETION_ROUTINE,
        context: PVOID,
        success: u8,
        error: u8,
        cancel: u8,
    ) -> NTSTATUS;
    fn IoAllocateMdl(va: PVOID, len: u32, secondary: u8, quota: u8, irp: *mut IRP) -> *mut MDL;
    fn MmBuildMdlForNonPagedPool(mdl: *mut MDL);
    fn IoFreeMdl(mdl: *mut MDL);
    fn KeInitializeEvent(e: *mut KEVENT, ty: u32, state: u8);
    fn KeSetEvent(e: *mut KEVENT, inc: i32, wait: u8) -> i32;
    fn KeWaitForSingleObject(o: *mut KEVENT, r: u32, m: i8, a: u8, t: *mut i64) -> NTSTATUS;
    fn WskRegister(npi: *mut WSK_CLIENT_NPI, reg: *mut WSK_REGISTRATION) -> NTSTATUS;
    fn WskCaptureProviderNPI(reg: *mut WSK_REGISTRATION, wait: u32, npi: *mut WSK_PROVIDER_NPI) -> NTSTATUS;
    fn WskReleaseProviderNPI(reg: *mut WSK_REGISTRATION);
    fn WskDeregister(reg: *mut WSK_REGISTRATION);
}

/// [`Handwritten::io`]'s instance for [`Handwritten::transfer`].
const TRANSFER: u8 = 0;
/// [`Handwritten::io`]'s instance for [`Handwritten::transfer_with_flags`].
const TRANSFER_WITH_FLAGS: u8 = 1;

/// The completion routine: signal the waiter's event, keep the IRP.
unsafe extern "system" fn signal(_: PVOID, _: *mut IRP, ctx: PVOID) -> NTSTATUS {
    // SAFETY: ctx is the waiter's KEVENT, live until the waiter returns.
    unsafe { KeSetEvent(ctx.cast(), 0, 0) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// A WSK client registered by hand, with the device object its completion
/// routines keep referenced.
pub struct Handwritten {
    device: PDEVICE_OBJECT,
    reg: Box<WSK_REGISTRATION>,
    npi: WSK_PROVIDER_NPI,
    _cnpi: Box<WSK_CLIENT_NPI>,
    _disp: Box<WSK_CLIENT_DISPATCH>,
}

impl Handwritten {
    pub fn new(device: PDEVICE_OBJECT) -> Handwritten {
        let mut disp = Box::new(WSK_CLIENT_DISPATCH { Version: 0x0100, Reserved: 0, WskClientEvent: ptr::null_mut() });
        let mut cnpi = Box::new(WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: &mut *disp });
        let mut reg = Box::new(WSK_REGISTRATION::zeroed());
        let mut npi = WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() };
        // SAFETY: the NPI, its dispatch and the registration are boxed and
        // kept in the Handwritten, so they outlive the registration (Drop).
        assert_eq!(unsafe { WskRegister(&mut *cnpi, &mut *reg) }, STATUS_SUCCESS);
        // SAFETY: the registration just made; `npi` is a writable out parameter.
        assert_eq!(unsafe { WskCaptureProviderNPI(&mut *reg, 0, &mut npi) }, STATUS_SUCCESS);
        Handwritten { device, reg, npi, _cnpi: cnpi, _disp: disp }
    }

    /// One synchronous WSK call: the sequence of the module documentation.
    /// `timeout_ms` None waits without a deadline.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `issue` hands the IRP to exactly one WSK function.
    unsafe fn call(&self, timeout_ms: Option<u32>, issue: impl FnOnce(*mut IRP) -> NTSTATUS) -> (NTSTATUS, usize) {
        // SAFETY: no precondition at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, 0) };
        if irp.is_null() {
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        let mut ev = KEVENT::zeroed();
        // SAFETY: `ev` is a writable KEVENT on this stack (resident: the
        // waits below are KernelMode waits), nobody waits on it yet.
        unsafe { KeInitializeEvent(&mut ev, 0, 0) };
        let ctx: PVOID = (&mut ev as *mut KEVENT).cast();
        // SAFETY: a fresh IRP with one stack location; the device is live;
        // the context outlives the completion (we wait for it).
        let st = unsafe { IoSetCompletionRoutineEx(self.device, irp, Some(signal), ctx, 1, 1, 1) };
        if st < 0 {
            // SAFETY: never issued: ours to free.
            unsafe { IoFreeIrp(irp) };
            return (STATUS_INSUFFICIENT_RESOURCES, 0);
        }
        if issue(irp) == STATUS_PENDING {
            let mut relative = timeout_ms.map_or(0, |ms| -10_000 * i64::from(ms));
            let t: *mut i64 = if timeout_ms.is_some() { &mut relative } else { ptr::null_mut() };
            // SAFETY: `ev` initialized above; `t` null or a live local.
            if unsafe { KeWaitForSingleObject(&mut ev, 0, 0, 0, t) } == STATUS_TIMEOUT {
                // SAFETY: the IRP is still the provider's, live until completed.
                unsafe { IoCancelIrp(irp) };
                // SAFETY: as above, no deadline.
                unsafe { KeWaitForSingleObject(&mut ev, 0, 0, 0, ptr::null_mut()) };
            }
        }
        // SAFETY: completed (the routine returned
        // STATUS_MORE_PROCESSING_REQUIRED): the IRP is ours again.
        let io = unsafe { &(*irp).IoStatus };
        let r = (io.Status, io.Information);
        // SAFETY: ours, freed once.
        unsafe { IoFreeIrp(irp) };
        r
    }

    /// WskSocketConnect (TCP) and wait: the new socket, or the status.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; the addresses are valid SOCKADDRs for the call.
    #[inline(never)]
    pub unsafe fn connect(
        &self,
        local: *const SOCKADDR,
        remote: *const SOCKADDR,
        timeout_ms: u32,
    ) -> Result<*mut WSK_SOCKET, NTSTATUS> {
        // SAFETY: the provider dispatch captured in new(), static.
        let Some(f) = (unsafe { (*self.npi.Dispatch).WskSocketConnect }) else {
            return Err(STATUS_NOT_SUPPORTED);
        };
        let issue = |irp| {
            // SAFETY: the provider's WskSocketConnect with its client, the
            // caller's addresses (alive until completion) and our IRP.
            unsafe {
                f(
                    self.npi.Client,
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    local.cast_mut(),
                    remote.cast_mut(),
                    0,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            }
        };
        // SAFETY: PASSIVE_LEVEL per the caller; one WSK call.
        let (st, info) = unsafe { self.call(Some(timeout_ms), issue) };
        if st < 0 {
            return Err(st);
        }
        Ok(info as *mut WSK_SOCKET)
    }

    /// WskSend (`receive` false) or WskReceive of `len` bytes of non-paged
    /// pool at `buf`: the bytes transferred, or the status.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; an open connection socket; `buf` is `len` bytes of
    /// non-paged pool, live for the call.
    #[inline(never)]
    pub unsafe fn transfer(
        &self,
        receive: bool,
        socket: *mut WSK_SOCKET,
        buf: *mut u8,
        len: u32,
        timeout_ms: u32,
    ) -> Result<usize, NTSTATUS> {
        // SAFETY: the caller's contract, passed on. Flags 0, the instruction
        // count's sends and receives: `io` inlined with the constant is the
        // same machine code `transfer` was before `io` took flags.
        unsafe { self.io::<TRANSFER>(receive, socket, buf, len, 0, timeout_ms) }
    }

    /// [`Handwritten::transfer`] with WSK flags (WSK_FLAG_WAITALL for a
    /// receive of exactly `len` bytes): the multi-threaded echo rows.
    ///
    /// # Safety
    /// As [`Handwritten::transfer`].
    #[inline(never)]
    pub unsafe fn transfer_with_flags(
        &self,
        receive: bool,
        socket: *mut WSK_SOCKET,
        buf: *mut u8,
        len: u32,
        flags: u32,
        timeout_ms: u32,
    ) -> Result<usize, NTSTATUS> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.io::<TRANSFER_WITH_FLAGS>(receive, socket, buf, len, flags, timeout_ms) }
    }

    /// The body of both: IoAllocateMdl, MmBuildMdlForNonPagedPool, the WSK
    /// call with `flags` and an IRP ([`Handwritten::call`]), IoFreeMdl.
    ///
    /// `CALLER` ([`TRANSFER`], [`TRANSFER_WITH_FLAGS`]) makes one instance
    /// per caller, each with its own closure type and so its own instance of
    /// the generic `call`, with one caller each: the compiler inlines `call`
    /// into `transfer` as before. Shared by both callers, `call` is not
    /// inlined (seen in the disassembly), and the instruction count's
    /// `transfer` would change.
    ///
    /// # Safety
    /// As [`Handwritten::transfer`].
    #[inline(always)]
    unsafe fn io<const CALLER: u8>(
        &self,
        receive: bool,
        socket: *mut WSK_SOCKET,
        buf: *mut u8,
        len: u32,
        flags: u32,
        timeout_ms: u32,
    ) -> Result<usize, NTSTATUS> {
        // SAFETY: an open connection socket, live until its close.
        let d = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        // SAFETY: a connection socket's Dispatch is the provider's static
        // connection dispatch.
        let d = unsafe { &*d };
        let Some(f) = (if receive { d.WskReceive } else { d.WskSend }) else {
            return Err(STATUS_NOT_SUPPORTED);
        };
        // SAFETY: `buf` is `len` bytes per the caller.
        let mdl = unsafe { IoAllocateMdl(buf.cast(), len, 0, 0, ptr::null_mut()) };
        if mdl.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: a fresh MDL over non-paged pool.
        unsafe { MmBuildMdlForNonPagedPool(mdl) };
        let mut wsk_buf = WSK_BUF { Mdl: mdl, Offset: 0, Length: len as usize };
        let wb: *mut WSK_BUF = &mut wsk_buf;
        // SAFETY: the provider's send/receive of an open socket; the WSK_BUF
        // and MDL outlive the IRP.
        let issue = |irp| unsafe { f(socket, wb, flags, irp) };
        // SAFETY: PASSIVE_LEVEL per the caller; one WSK call.
        let (st, info) = unsafe { self.call(Some(timeout_ms), issue) };
        // SAFETY: the IRP that used it has completed and been freed.
        unsafe { IoFreeMdl(mdl) };
        if st < 0 {
            return Err(st);
        }
        Ok(info)
    }

    /// WskCloseSocket and wait (no deadline).
    ///
    /// # Safety
    /// PASSIVE_LEVEL; an open socket, closed once.
    #[inline(never)]
    pub unsafe fn close(&self, socket: *mut WSK_SOCKET) -> NTSTATUS {
        // SAFETY: as in transfer.
        let d = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        // SAFETY: as in transfer.
        let d = unsafe { &*d };
        let Some(f) = d.Basic.WskCloseSocket else {
            return STATUS_NOT_SUPPORTED;
        };
        // SAFETY: the provider's WskCloseSocket of the socket it opened.
        let issue = |irp| unsafe { f(socket, irp) };
        // SAFETY: PASSIVE_LEVEL per the caller; one WSK call.
        unsafe { self.call(None, issue) }.0
    }
}

// SAFETY: every method takes `&self` and only reads the device object and
// the provider NPI captured in new() (never written afterwards); the WSK
// provider's dispatch functions, like the I/O manager routines `call` uses,
// may be called on any number of threads at once (a WSK client is not
// bound to a thread). Each call's IRP, event and MDL are its own. The
// multi-threaded echo rows call it from several threads, each on its own
// socket.
unsafe impl Sync for Handwritten {}

/// The hand-written server and datagram calls (issue 20): the same
/// sequence per call, on the provider's listening and datagram tables.
impl Handwritten {
    /// WskSocket of `flags` (WSK_FLAG_LISTEN_SOCKET or
    /// WSK_FLAG_DATAGRAM_SOCKET) for `local`'s family, then WskBind: the
    /// bound socket, or the status (the socket closed again on a failed
    /// bind).
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `local` is a valid SOCKADDR_IN for the call.
    #[inline(never)]
    pub unsafe fn bound(&self, flags: u32, local: *const SOCKADDR) -> Result<*mut WSK_SOCKET, NTSTATUS> {
        // SAFETY: the provider dispatch captured in new(), static.
        let entry = unsafe { (*self.npi.Dispatch).WskSocket };
        if entry.is_null() {
            return Err(STATUS_NOT_SUPPORTED);
        }
        // SAFETY: the WskSocket entry is a PFN_WSK_SOCKET.
        let f = unsafe { std::mem::transmute::<PVOID, PFN_WSK_SOCKET>(entry) };
        let (ty, proto) =
            if flags == WSK_FLAG_DATAGRAM_SOCKET { (SOCK_DGRAM, IPPROTO_UDP) } else { (SOCK_STREAM, IPPROTO_TCP) };
        let issue = |irp| {
            // SAFETY: the provider's WskSocket with its client and our IRP.
            unsafe {
                f(
                    self.npi.Client,
                    AF_INET,
                    ty,
                    proto,
                    flags,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            }
        };
        // SAFETY: PASSIVE_LEVEL per the caller; one WSK call.
        let (st, info) = unsafe { self.call(Some(5000), issue) };
        if st < 0 {
            return Err(st);
        }
        let socket = info as *mut WSK_SOCKET;
        // SAFETY: a socket just made: its Dispatch begins with the basic
        // functions and WskBind.
        let d = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_BIND_PREFIX>();
        // SAFETY: as above: the provider's static table, of this kind.
        let d = unsafe { &*d };
        // SAFETY: WskBind is a PFN_WSK_BIND.
        let bind = unsafe { std::mem::transmute::<PVOID, PFN_WSK_BIND>(d.WskBind) };
        // SAFETY: the provider's WskBind of the socket it made, the caller's
        // address (alive until completion).
        let issue = |irp| unsafe { bind(socket, local.cast_mut(), 0, irp) };
        // SAFETY: as above.
        let (st, _) = unsafe { self.call(Some(5000), issue) };
        if st < 0 {
            // SAFETY: the socket just made, closed once.
            unsafe { self.close(socket) };
            return Err(st);
        }
        Ok(socket)
    }

    /// WskAccept on a listening socket and wait: the accepted socket, with
    /// the addresses written to non-paged buffers on this stack.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; an open, bound listening socket.
    #[inline(never)]
    pub unsafe fn accept(&self, listen: *mut WSK_SOCKET, timeout_ms: u32) -> Result<*mut WSK_SOCKET, NTSTATUS> {
        // SAFETY: a listening socket's Dispatch is the provider's static
        // listening table.
        let d = unsafe { (*listen).Dispatch }.cast::<WSK_PROVIDER_LISTEN_DISPATCH>();
        // SAFETY: as above: the provider's static table, of this kind.
        let d = unsafe { &*d };
        // SAFETY: WskAccept is a PFN_WSK_ACCEPT.
        let f = unsafe { std::mem::transmute::<PVOID, PFN_WSK_ACCEPT>(d.WskAccept) };
        let mut local = [0u32; 7];
        let mut remote = [0u32; 7];
        let (l, r): (*mut SOCKADDR, *mut SOCKADDR) = (local.as_mut_ptr().cast(), remote.as_mut_ptr().cast());
        // SAFETY: the provider's WskAccept; the address buffers are on this
        // resident stack until completion.
        let issue = |irp| unsafe { f(listen, 0, ptr::null_mut(), ptr::null(), l, r, irp) };
        // SAFETY: PASSIVE_LEVEL per the caller; one WSK call.
        let (st, info) = unsafe { self.call(Some(timeout_ms), issue) };
        if st < 0 {
            return Err(st);
        }
        Ok(info as *mut WSK_SOCKET)
    }

    /// WskSendTo (`remote` Some) or WskReceiveFrom of `len` bytes of
    /// non-paged pool at `buf` on a datagram socket: the bytes transferred.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; an open datagram socket; `buf` is `len` bytes of
    /// non-paged pool; `remote` a valid SOCKADDR; all live for the call.
    #[inline(never)]
    pub unsafe fn datagram(
        &self,
        socket: *mut WSK_SOCKET,
        remote: Option<*const SOCKADDR>,
        buf: *mut u8,
        len: u32,
        timeout_ms: u32,
    ) -> Result<usize, NTSTATUS> {
        // SAFETY: a datagram socket's Dispatch is the provider's static
        // datagram table.
        let d = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>();
        // SAFETY: as above: the provider's static table, of this kind.
        let d = unsafe { &*d };
        // SAFETY: `buf` is `len` bytes per the caller.
        let mdl = unsafe { IoAllocateMdl(buf.cast(), len, 0, 0, ptr::null_mut()) };
        if mdl.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: a fresh MDL over non-paged pool.
        unsafe { MmBuildMdlForNonPagedPool(mdl) };
        let mut wsk_buf = WSK_BUF { Mdl: mdl, Offset: 0, Length: len as usize };
        let wb: *mut WSK_BUF = &mut wsk_buf;
        let mut from = [0u32; 7];
        let from_ptr: *mut SOCKADDR = from.as_mut_ptr().cast();
        let (st, info) = match remote {
            Some(to) => {
                // SAFETY: WskSendTo is a PFN_WSK_SEND_TO.
                let f = unsafe { std::mem::transmute::<PVOID, PFN_WSK_SEND_TO>(d.WskSendTo) };
                // SAFETY: the provider's WskSendTo; the WSK_BUF, MDL and
                // address outlive the IRP.
                let issue = |irp| unsafe { f(socket, wb, 0, to.cast_mut(), 0, ptr::null_mut(), irp) };
                // SAFETY: PASSIVE_LEVEL per the caller; one WSK call.
                unsafe { self.call(Some(timeout_ms), issue) }
            }
            None => {
                // SAFETY: WskReceiveFrom is a PFN_WSK_RECEIVE_FROM.
                let f = unsafe { std::mem::transmute::<PVOID, PFN_WSK_RECEIVE_FROM>(d.WskReceiveFrom) };
                // SAFETY: the provider's WskReceiveFrom; the WSK_BUF, MDL and
                // the address buffer (resident stack) outlive the IRP.
                let issue =
                    |irp| unsafe { f(socket, wb, 0, from_ptr, ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), irp) };
                // SAFETY: as above.
                unsafe { self.call(Some(timeout_ms), issue) }
            }
        };
        // SAFETY: the IRP that used it has completed and been freed.
        unsafe { IoFreeMdl(mdl) };
        if st < 0 {
            return Err(st);
        }
        Ok(info)
    }
}

impl Drop for Handwritten {
    fn drop(&mut self) {
        // SAFETY: the provider NPI captured in new(), released once.
        unsafe { WskReleaseProviderNPI(&mut *self.reg) };
        // SAFETY: the registration made in new(), its NPI released and every
        // socket closed by the workload.
        unsafe { WskDeregister(&mut *self.reg) };
    }
}
