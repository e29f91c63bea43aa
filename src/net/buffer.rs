//! The buffers of a send or receive: any `[u8]` (probed and locked for the
//! call, the default path), or memory proved to be non-paged pool by its
//! type ([`NonPagedBuf`], [`NonPagedSlice`]), which skips the probe and lock
//! (`SAFEWSK_FLAG_NONPAGED_BUFFER`).

use core::ops::{Bound, Deref, DerefMut, RangeBounds};
use core::ptr::NonNull;

use super::irql::Passive;
use super::{Error, Result};
use crate::kernel::platform;

mod sealed {
    pub trait Sealed {}
}

/// Bytes a send reads. Implemented by `[u8]`, `[u8; N]`, [`NonPagedBuf`]
/// and [`NonPagedSlice`]; sealed. The type decides the path: a `[u8]` is
/// probed and locked (MmProbeAndLockPages) for the call, the non-paged
/// types are described with MmBuildMdlForNonPagedPool.
///
/// ```
/// use safewsk::net::SendBuf;
/// fn len_of<B: SendBuf + ?Sized>(b: &B) -> usize { b.bytes().len() }
/// assert_eq!(len_of(b"PING"), 4);         // [u8; 4]
/// assert_eq!(len_of(&b"PING"[..2]), 2);   // [u8]
/// ```
pub trait SendBuf: sealed::Sealed {
    /// The bytes.
    fn bytes(&self) -> &[u8];
    /// Whether the bytes are non-paged pool (MmBuildMdlForNonPagedPool
    /// instead of MmProbeAndLockPages).
    #[doc(hidden)]
    fn nonpaged(&self) -> bool {
        false
    }
}

/// Bytes a receive writes. Implemented by `[u8]`, `[u8; N]`,
/// [`NonPagedBuf`] and [`NonPagedSlice`]; sealed.
///
/// ```
/// use safewsk::net::ReceiveBuf;
/// fn clear<B: ReceiveBuf + ?Sized>(b: &mut B) { b.bytes_mut().fill(0) }
/// let mut buf = [1u8; 8];
/// clear(&mut buf);
/// assert_eq!(buf, [0; 8]);
/// ```
pub trait ReceiveBuf: SendBuf {
    /// The bytes.
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl sealed::Sealed for [u8] {}
impl SendBuf for [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
}
impl ReceiveBuf for [u8] {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}
impl<const N: usize> sealed::Sealed for [u8; N] {}
impl<const N: usize> SendBuf for [u8; N] {
    fn bytes(&self) -> &[u8] {
        self
    }
}
impl<const N: usize> ReceiveBuf for [u8; N] {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// A buffer of zeroed non-paged pool (tag 'kwSS', NX), freed on drop. Sends
/// and receives on it skip the probe and lock: the type proves the memory is
/// non-paged, so no `unsafe` is needed to take the fast path.
///
/// ```no_run
/// use safewsk::net::{NonPagedBuf, Passive};
/// # fn f(p: Passive) -> safewsk::net::Result {
/// let mut buf = NonPagedBuf::new(p, 256)?;
/// buf[..4].copy_from_slice(b"PING");
/// # Ok(()) }
/// ```
pub struct NonPagedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer owns its pool block; pool is not tied to a thread.
unsafe impl Send for NonPagedBuf {}
// SAFETY: shared access is read-only through `&[u8]`.
unsafe impl Sync for NonPagedBuf {}

impl NonPagedBuf {
    /// Allocates `len` zeroed bytes of non-paged pool (ExAllocatePool2 with
    /// POOL_FLAG_NON_PAGED where the kernel has it, else
    /// ExAllocatePoolWithTag(NonPagedPoolNx)). PASSIVE_LEVEL: the allocator
    /// is looked up with MmGetSystemRoutineAddress.
    ///
    /// Errors: [`Error::INVALID_PARAMETER`] for `len` 0,
    /// [`Error::INSUFFICIENT_RESOURCES`] if the pool is exhausted,
    /// [`Error::INVALID_LEVEL`] above PASSIVE_LEVEL.
    pub fn new(_irql: Passive, len: usize) -> Result<NonPagedBuf> {
        if len == 0 {
            return Err(Error::INVALID_PARAMETER);
        }
        if platform::current_irql() != crate::kernel::nt::PASSIVE_LEVEL {
            return Err(Error::INVALID_LEVEL);
        }
        // SAFETY: PASSIVE_LEVEL, checked above.
        let allocator = unsafe { platform::PoolAllocator::resolve() };
        // SAFETY: PASSIVE_LEVEL (<= DISPATCH_LEVEL).
        let p = unsafe { allocator.alloc(len) }.cast::<u8>();
        let ptr = NonNull::new(p).ok_or(Error::INSUFFICIENT_RESOURCES)?;
        Ok(NonPagedBuf { ptr, len })
    }
}

impl NonPagedBuf {
    /// A part of the buffer, still known to be non-paged (`&buf[..n]` is a
    /// plain `[u8]`, which takes the probe-and-lock path); `None` if the
    /// range is out of bounds.
    ///
    /// ```no_run
    /// # use safewsk::net::{NonPagedBuf, Passive, TcpSocket};
    /// # fn f(p: Passive, socket: &TcpSocket<'_>, mut buf: NonPagedBuf) -> safewsk::net::Result {
    /// let request = b"PING\r\n";
    /// let mut head = buf.sub(..request.len()).ok_or(safewsk::net::Error::BUFFER_TOO_SMALL)?;
    /// head.copy_from_slice(request);
    /// socket.send(p, &head, core::time::Duration::from_secs(5))?;
    /// # Ok(()) }
    /// ```
    pub fn sub(&mut self, range: impl RangeBounds<usize>) -> Option<NonPagedSlice<'_>> {
        sub(self, range)
    }
}

/// `bytes[range]` as a NonPagedSlice, if in bounds.
fn sub(bytes: &mut [u8], range: impl RangeBounds<usize>) -> Option<NonPagedSlice<'_>> {
    let bounds: (Bound<usize>, Bound<usize>) = (range.start_bound().cloned(), range.end_bound().cloned());
    bytes.get_mut(bounds).map(NonPagedSlice)
}

impl Deref for NonPagedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` zeroed (initialized) bytes of pool this value owns.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for NonPagedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; `&mut self` is the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for NonPagedBuf {
    fn drop(&mut self) {
        // SAFETY: the block came from PoolAllocator::alloc and is freed once
        // (ExFreePoolWithTag: IRQL <= DISPATCH_LEVEL for non-paged pool).
        unsafe { platform::pool_free(self.ptr.as_ptr().cast()) };
    }
}

impl sealed::Sealed for NonPagedBuf {}
impl SendBuf for NonPagedBuf {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn nonpaged(&self) -> bool {
        true
    }
}
impl ReceiveBuf for NonPagedBuf {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// A borrowed slice of memory that the caller states is non-paged pool
/// (its own ExAllocatePool2(POOL_FLAG_NON_PAGED) block, a device extension,
/// or memory locked down the same way). The one constructor is `unsafe`:
/// MmBuildMdlForNonPagedPool on a stack or paged buffer corrupts memory.
///
/// ```
/// use safewsk::net::NonPagedSlice;
/// static mut BUF: [u8; 64] = [0; 64];
/// // SAFETY: a driver's global data is non-paged (it is not in a PAGE
/// // section), and this is the only reference to it.
/// let slice = unsafe { NonPagedSlice::new(&mut *core::ptr::addr_of_mut!(BUF)) };
/// assert_eq!(slice.len(), 64);
/// ```
pub struct NonPagedSlice<'a>(&'a mut [u8]);

impl<'a> NonPagedSlice<'a> {
    /// Marks `bytes` as non-paged.
    ///
    /// # Safety
    /// `bytes` is non-paged system memory (non-paged pool, or a non-paged
    /// section of the driver image) for all of `'a`: not a kernel stack, not
    /// paged pool, not user memory.
    pub unsafe fn new(bytes: &'a mut [u8]) -> NonPagedSlice<'a> {
        NonPagedSlice(bytes)
    }
}

impl NonPagedSlice<'_> {
    /// A part of the slice, still known to be non-paged; `None` if the
    /// range is out of bounds.
    pub fn sub(&mut self, range: impl RangeBounds<usize>) -> Option<NonPagedSlice<'_>> {
        sub(self.0, range)
    }
}

impl Deref for NonPagedSlice<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

impl DerefMut for NonPagedSlice<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0
    }
}

impl sealed::Sealed for NonPagedSlice<'_> {}
impl SendBuf for NonPagedSlice<'_> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn nonpaged(&self) -> bool {
        true
    }
}
impl ReceiveBuf for NonPagedSlice<'_> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}
