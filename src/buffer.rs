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

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::nt::*;
use crate::platform::{self, LockOperation};

/// `Flags` bit of SafeWskSend and SafeWskReceive: `Buffer` is non-paged pool
/// (ExAllocatePool2 with POOL_FLAG_NON_PAGED, or memory locked down the same
/// way), so the library describes it with MmBuildMdlForNonPagedPool instead
/// of probing and locking it. Never set it for a stack buffer or paged pool:
/// MmBuildMdlForNonPagedPool on those corrupts memory. The bit is removed
/// before the flags reach WSK.
pub const SAFEWSK_FLAG_NONPAGED_BUFFER: ULONG = 0x8000_0000;

/// An MDL for one buffer, valid until dropped: built for non-paged pool, or
/// with its pages probed and locked. Dropping it unlocks the pages (if they
/// were locked) and frees the MDL, so it must outlive every IRP that uses it.
pub struct BufferMdl {
    mdl: NonNull<MDL>,
    locked: bool,
}

impl BufferMdl {
    /// Describes `len` bytes at `va`: with MmBuildMdlForNonPagedPool if
    /// `nonpaged`, else probed and locked for `operation`.
    ///
    /// Errors: STATUS_INSUFFICIENT_RESOURCES (no MDL), or the code of the
    /// exception MmProbeAndLockPages raised (STATUS_ACCESS_VIOLATION for a
    /// range that is not accessible for `operation`, or another error such
    /// as STATUS_INSUFFICIENT_RESOURCES / STATUS_WORKING_SET_QUOTA when the
    /// pages cannot be made resident). Nothing is left allocated or locked.
    ///
    /// # Safety
    /// `va..va+len` stays valid (and, if `nonpaged`, is non-paged pool)
    /// until the returned value is dropped; IRQL <= APC_LEVEL.
    pub unsafe fn new(va: *mut c_void, len: ULONG, operation: LockOperation, nonpaged: bool) -> Result<Self, NTSTATUS> {
        // SAFETY: IRQL per the caller.
        let mdl = NonNull::new(unsafe { platform::allocate_mdl(va, len) }).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        if nonpaged {
            // SAFETY: a fresh MDL over non-paged pool, per the caller.
            unsafe { platform::build_mdl_for_nonpaged_pool(mdl.as_ptr()) };
            return Ok(BufferMdl { mdl, locked: false });
        }
        // SAFETY: a fresh MDL, neither locked nor built; IRQL <= APC_LEVEL.
        match unsafe { platform::probe_and_lock(mdl.as_ptr(), operation) } {
            Ok(()) => Ok(BufferMdl { mdl, locked: true }),
            Err(status) => {
                // SAFETY: the probe raised, so the MDL is not locked; no IRP
                // has seen it.
                unsafe { platform::free_mdl(mdl.as_ptr()) };
                Err(status)
            }
        }
    }

    /// The MDL, for a WSK_BUF.
    pub fn mdl(&self) -> *mut MDL {
        self.mdl.as_ptr()
    }
}

impl Drop for BufferMdl {
    fn drop(&mut self) {
        // The owner drops the MDL only after every IRP that used it has
        // completed (see the type's docs). MmUnlockPages and IoFreeMdl are
        // legal up to DISPATCH_LEVEL.
        if self.locked {
            // SAFETY: MmProbeAndLockPages succeeded on this MDL (`locked`)
            // and it was not unlocked since.
            unsafe { platform::unlock_pages(self.mdl.as_ptr()) };
        }
        // SAFETY: our MDL, unlocked if it was locked, used by no IRP any more.
        unsafe { platform::free_mdl(self.mdl.as_ptr()) };
    }
}
