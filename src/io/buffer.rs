//! The MDL that describes a caller's send or receive buffer to WSK.
//!
//! WSK_BUF requires every MDL to describe "memory that is either locked or
//! from non-paged pool" (WSK_BUF, Microsoft Learn). A caller's buffer may be
//! non-paged pool, paged pool or its kernel stack, and
//! MmBuildMdlForNonPagedPool is legal only for the first ("may not be used
//! with MDLs describing buffers allocated on a kernel stack",
//! MmBuildMdlForNonPagedPool, Microsoft Learn). So by default the buffer is
//! probed and locked (MmProbeAndLockPages, KernelMode, IoReadAccess for a
//! send and IoWriteAccess for a receive, its exception turned into a status)
//! and unlocked when the MDL is dropped; a caller whose buffer is non-paged
//! pool says so with [`SAFEWSK_FLAG_NONPAGED_BUFFER`] and gets the cheap
//! MmBuildMdlForNonPagedPool path (no page-table walk, no lock, no unlock).
//!
//! The MDL itself lives on the calling thread's stack ([`MdlStorage`],
//! initialized as wdm.h's MmInitializeMdl macro does) when the buffer spans
//! at most [`STACK_MDL_PAGES`] pages — any buffer of up to 64 KiB — so a
//! send or receive allocates no MDL. MmInitializeMdl's storage "must be
//! allocated in nonpaged memory" (Microsoft Learn); a kernel stack is
//! resident while its thread waits in KernelMode (KeWaitForSingleObject,
//! Microsoft Learn: only a UserMode wait lets the kernel stack be paged
//! out), and every safewsk call waits in KernelMode until the IRP that uses
//! the MDL has completed. Larger buffers get an MDL from IoAllocateMdl.

use core::ffi::c_void;
use core::mem::size_of;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use static_assertions::const_assert_eq;

use crate::nt::*;
use crate::platform::{self, LockOperation};

/// The most pages a buffer may span for its MDL to live on the stack: 17
/// covers 64 KiB at any alignment.
pub(crate) const STACK_MDL_PAGES: usize = 17;

const PAGE_SIZE: usize = 4096;

/// The MDL header (wdm.h `struct _MDL`, 64-bit), followed in memory by the
/// PFN array.
#[repr(C)]
struct MdlHeader {
    next: *mut MDL,
    size: i16,
    mdl_flags: i16,
    allocation_processor_number: u16,
    reserved: u16,
    process: PVOID,
    mapped_system_va: PVOID,
    start_va: PVOID,
    byte_count: ULONG,
    byte_offset: ULONG,
}

const_assert_eq!(size_of::<MdlHeader>(), 0x30);

/// Stack storage for one MDL of up to [`STACK_MDL_PAGES`] pages: the header
/// and one PFN_NUMBER (8 bytes) per page, 184 bytes.
#[repr(C, align(16))]
pub struct MdlStorage {
    header: MaybeUninit<MdlHeader>,
    /// Written by the kernel (MmBuildMdlForNonPagedPool,
    /// MmProbeAndLockPages), never read by the library: left uninitialized,
    /// as the caller storage of wdm.h's MmInitializeMdl is.
    pfns: MaybeUninit<[u64; STACK_MDL_PAGES]>,
}

impl MdlStorage {
    /// Unused storage (nothing written: the send and receive path pays only
    /// for the header it initializes).
    pub const fn new() -> MdlStorage {
        MdlStorage { header: MaybeUninit::uninit(), pfns: MaybeUninit::uninit() }
    }

    /// MmInitializeMdl(this, va, len) (wdm.h's macro), if the range spans at
    /// most [`STACK_MDL_PAGES`] pages; None otherwise.
    fn initialize(&mut self, va: *mut c_void, len: ULONG) -> Option<NonNull<MDL>> {
        let offset = (va as usize) & (PAGE_SIZE - 1);
        // ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, len).
        let pages = (offset + len as usize).div_ceil(PAGE_SIZE);
        if pages > STACK_MDL_PAGES {
            return None;
        }
        let size = size_of::<MdlHeader>() + pages * size_of::<u64>();
        let header = self.header.write(MdlHeader {
            next: ptr::null_mut(),
            size: i16::try_from(size).ok()?,
            mdl_flags: 0,
            allocation_processor_number: 0,
            reserved: 0,
            process: ptr::null_mut(),
            mapped_system_va: ptr::null_mut(),
            // PAGE_ALIGN(va): an address computation, never dereferenced.
            start_va: va.cast::<u8>().wrapping_sub(offset).cast(),
            byte_count: len,
            byte_offset: offset as ULONG,
        });
        NonNull::new(ptr::from_mut(header).cast::<MDL>())
    }
}

impl Default for MdlStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// `Flags` bit of SafeWskSend and SafeWskReceive: `Buffer` is non-paged pool
/// (ExAllocatePool2 with POOL_FLAG_NON_PAGED, or memory locked down the same
/// way), so the library describes it with MmBuildMdlForNonPagedPool instead
/// of probing and locking it. Never set it for a stack buffer or paged pool:
/// MmBuildMdlForNonPagedPool on those corrupts memory. The bit is removed
/// before the flags reach WSK.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_FLAG_NONPAGED_BUFFER: ULONG = 0x8000_0000 as ULONG;

/// An MDL for one buffer, valid until dropped: built for non-paged pool, or
/// with its pages probed and locked. Dropping it unlocks the pages (if they
/// were locked) and frees the MDL if it was allocated, so it must outlive
/// every IRP that uses it.
pub struct BufferMdl<'s> {
    mdl: NonNull<MDL>,
    locked: bool,
    /// From IoAllocateMdl (else in the borrowed stack storage).
    allocated: bool,
    _storage: core::marker::PhantomData<&'s mut MdlStorage>,
}

impl<'s> BufferMdl<'s> {
    /// Describes `len` bytes at `va`, in `storage` when the range fits (see
    /// the module docs), else in an MDL from IoAllocateMdl: with
    /// MmBuildMdlForNonPagedPool if `nonpaged`, else probed and locked for
    /// `operation`.
    ///
    /// Errors: STATUS_INSUFFICIENT_RESOURCES (no MDL could be allocated for a
    /// range too large for `storage`), or the code of the
    /// exception MmProbeAndLockPages raised (STATUS_ACCESS_VIOLATION for a
    /// range that is not accessible for `operation`, or another error such
    /// as STATUS_INSUFFICIENT_RESOURCES / STATUS_WORKING_SET_QUOTA when the
    /// pages cannot be made resident). Nothing is left allocated or locked.
    ///
    /// # Safety
    /// `va..va+len` stays valid (and, if `nonpaged`, is non-paged pool)
    /// until the returned value is dropped; `storage` is on the stack of a
    /// thread that waits in KernelMode for every IRP using the MDL (or in
    /// non-paged memory); IRQL <= APC_LEVEL.
    pub unsafe fn new(
        storage: &'s mut MdlStorage,
        va: *mut c_void,
        len: ULONG,
        operation: LockOperation,
        nonpaged: bool,
    ) -> Result<Self, NTSTATUS> {
        let (mdl, allocated) = match storage.initialize(va, len) {
            Some(mdl) => (mdl, false),
            None => {
                // SAFETY: IRQL per the caller.
                let mdl = unsafe { platform::allocate_mdl(va, len) };
                (NonNull::new(mdl).ok_or(STATUS_INSUFFICIENT_RESOURCES)?, true)
            }
        };
        let mut this = BufferMdl { mdl, locked: false, allocated, _storage: core::marker::PhantomData };
        if nonpaged {
            // SAFETY: a fresh MDL over non-paged pool, per the caller.
            unsafe { platform::build_mdl_for_nonpaged_pool(mdl.as_ptr()) };
            return Ok(this);
        }
        // SAFETY: a fresh MDL, neither locked nor built; IRQL <= APC_LEVEL.
        // On failure `this` (not locked, seen by no IRP) is dropped: an
        // allocated MDL is freed.
        unsafe { platform::probe_and_lock(mdl.as_ptr(), operation) }?;
        this.locked = true;
        Ok(this)
    }

    /// The MDL, for a WSK_BUF.
    pub fn mdl(&self) -> *mut MDL {
        self.mdl.as_ptr()
    }
}

impl Drop for BufferMdl<'_> {
    fn drop(&mut self) {
        // The owner drops the MDL only after every IRP that used it has
        // completed (see the type's docs). MmUnlockPages and IoFreeMdl are
        // legal up to DISPATCH_LEVEL.
        if self.locked {
            // SAFETY: MmProbeAndLockPages succeeded on this MDL (`locked`)
            // and it was not unlocked since.
            unsafe { platform::unlock_pages(self.mdl.as_ptr()) };
        }
        if self.allocated {
            // SAFETY: our MDL from IoAllocateMdl, unlocked if it was locked,
            // used by no IRP any more.
            unsafe { platform::free_mdl(self.mdl.as_ptr()) };
        }
    }
}
