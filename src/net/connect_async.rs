//! [`ConnectRequest`]: an asynchronous connect whose callback, a closure
//! stored in the caller's pinned storage, runs exactly once.

use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::net::SocketAddr;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};

use super::addr::Sockaddr;
use super::client::Client;
use super::error::from_internal;
use super::socket::TcpSocket;
use super::time::Timeout;
use super::{Error, Result};
use crate::connect::{self, asynchronous::SAFEWSK_CONNECT_REQUEST, validate::ConnectArgs};
use crate::handles::SAFEWSK_SOCKET;
use crate::kernel::nt::*;
use crate::kernel::platform;
use crate::kernel::sync::Event;

const IDLE: u8 = 0;
const PENDING: u8 = 1;

/// Storage for one asynchronous connect at a time
/// ([`SafeWskSocketConnectAsync`](crate::SafeWskSocketConnectAsync)): the C
/// request, the callback, and the event its drop waits on. It must be
/// pinned (`core::pin::pin!` on a stack, `Box::pin`, a pinned field of a
/// device context) because the kernel holds its address until the callback
/// has returned.
///
/// The callback is given once, to [`ConnectRequest::new`], and the storage
/// may start one connect after another with it. Each
/// [`ConnectRequest::start`] returns at once; the callback `F` then runs
/// **exactly once for that start**, with the connected socket or the error
/// ([`Error::IO_TIMEOUT`] at the deadline, [`Error::CANCELLED`] after
/// [`ConnectRequest::cancel`], or the provider's status), at IRQL <=
/// DISPATCH_LEVEL on an arbitrary thread, possibly before `start` returns
/// (a provider that completes at once) or inside `cancel`. So `F` is `Send`
/// and gets no IRQL token: a socket it receives is best handed to a
/// PASSIVE_LEVEL thread (dropping it in the callback at DISPATCH_LEVEL
/// cannot close it there: the client's cleanup then closes it, reported).
/// If `start` fails, the callback is not called for it.
///
/// **Drop** waits for a pending connect: it cancels it and waits until the
/// callback has returned (on a KEVENT at IRQL <= APC_LEVEL; above that it
/// spins, which a single-processor machine may never finish: drop pending
/// requests at IRQL <= APC_LEVEL). Memory is therefore never freed under the
/// kernel or the callback.
///
/// **Unload safety**: the request borrows its [`Client`] for `'c`, so the
/// client cannot be cleaned up while the request exists (and cleanup itself
/// waits for every callback to return); the library's code that runs after
/// the callback is kept loaded by the device object reference of
/// IoSetCompletionRoutineEx and by cleanup's KeFlushQueuedDpcs for the
/// deadline's DPC. The closure is driver code, so the driver unloads only
/// after the client's cleanup, which is after every callback.
///
/// **Memory**: the storage holds a KTIMER, a KDPC and the C request, which
/// the kernel touches at DISPATCH_LEVEL: it must be resident. Non-paged pool
/// (`Box::pin` with a non-paged global allocator such as wdk-alloc's), a
/// driver's global data, and the stack of a running thread all are; a kernel
/// stack can be paged out only while its thread waits in UserMode, which
/// only the driver's own `unsafe` code can do.
///
/// ```no_run
/// use core::pin::pin;
/// use core::time::Duration;
/// use safewsk::net::{Client, ConnectRequest, Passive};
///
/// # fn f(p: Passive, client: &Client) -> safewsk::net::Result {
/// let mut request = pin!(ConnectRequest::new(|result| match result {
///     Ok(socket) => { /* hand it to a worker thread */ let _ = socket.into_raw(); }
///     Err(e) => { let _ = e; }
/// }));
/// request.as_mut().start(client, "127.0.0.1:7".parse().unwrap(), Duration::from_secs(5))?;
/// // ... the request's drop (here: at the end of the scope) waits for the
/// // callback.
/// # Ok(()) }
/// ```
///
/// The callback runs on another thread, maybe at DISPATCH_LEVEL: an IRQL
/// token cannot go into it.
///
/// ```compile_fail,E0277
/// # use safewsk::net::{Client, ConnectRequest, Passive};
/// # fn f(p: Passive, client: &Client) {
/// let request = ConnectRequest::new(move |_| {
///     let _token = p; // error[E0277]: `*mut ()` cannot be sent between threads safely
/// });
/// # let _ = core::pin::pin!(request).as_mut().start(client, "127.0.0.1:7".parse().unwrap(), None);
/// # }
/// ```
pub struct ConnectRequest<'c, F> {
    raw: UnsafeCell<SAFEWSK_CONNECT_REQUEST>,
    callback: UnsafeCell<F>,
    /// IDLE, or PENDING from `start` until the callback's last access.
    state: AtomicU8,
    /// Set by the callback trampoline after the callback returned.
    done: Event,
    _client: PhantomData<&'c Client>,
    _pin: PhantomPinned,
}

impl<'c, F> ConnectRequest<'c, F>
where
    F: FnMut(Result<TcpSocket<'c>>) + Send + 'c,
{
    /// Idle storage with its callback.
    pub const fn new(callback: F) -> Self {
        ConnectRequest {
            raw: UnsafeCell::new(SAFEWSK_CONNECT_REQUEST {
                Callback: None,
                CallbackContext: ptr::null_mut(),
                TimeoutMs: 0,
                Reserved: 0,
                Private: [0; 32],
            }),
            callback: UnsafeCell::new(callback),
            state: AtomicU8::new(IDLE),
            done: Event::new(),
            _client: PhantomData,
            _pin: PhantomPinned,
        }
    }

    /// Whether a connect started here has not called back yet.
    pub fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) != IDLE
    }

    /// Starts connecting a TCP socket of `client` to `remote` (from the
    /// wildcard address of its family), with `timeout` as the deadline
    /// ([`Timeout::NEVER`]: none; [`Timeout::IMMEDIATE`]: the connect is
    /// cancelled unless the provider completes it at once). Callable at IRQL
    /// <= DISPATCH_LEVEL (a DPC, a completion routine); the address is
    /// copied.
    ///
    /// `Ok(())`: the callback will be called exactly once for this start
    /// (see the type). Errors (the callback is not called): [`Error::DEVICE_BUSY`]
    /// (a connect of this storage is still pending),
    /// [`Error::INVALID_PARAMETER_5`] (`remote` is not an address a connect
    /// accepts), [`Error::INVALID_LEVEL`], [`Error::DELETE_PENDING`],
    /// [`Error::INSUFFICIENT_RESOURCES`].
    pub fn start(self: Pin<&mut Self>, client: &'c Client, remote: SocketAddr, timeout: impl Into<Timeout>) -> Result {
        // Pinned: nothing here moves the storage.
        let this: &Self = &self;
        if this.state.load(Ordering::Acquire) != IDLE {
            return Err(Error::DEVICE_BUSY);
        }
        if platform::current_irql() > DISPATCH_LEVEL {
            return Err(Error::INVALID_LEVEL);
        }
        let raw = this.raw.get();
        // SAFETY: IDLE: no connect and no callback uses the storage, and
        // `&mut` (through the pin) excludes every other user here; resident
        // storage (see the type), nobody waits on the event while IDLE.
        unsafe { this.done.init() };
        let fields = SAFEWSK_CONNECT_REQUEST {
            Callback: Some(Self::trampoline),
            CallbackContext: ptr::from_ref(this).cast_mut().cast(),
            TimeoutMs: timeout.into().to_timeout_ms(),
            Reserved: 0,
            Private: [0; 32],
        };
        // SAFETY: as above (the library writes `Private` when it starts).
        unsafe { raw.write(fields) };
        let local = Sockaddr::wildcard_like(remote);
        let remote = Sockaddr::new(remote);
        let args = ConnectArgs {
            socket_type: SOCK_STREAM,
            protocol: IPPROTO_TCP,
            local: local.as_ptr(),
            remote: remote.as_ptr(),
            flags: 0,
            socket_context: ptr::null_mut(),
            dispatch: ptr::null(),
            owning_process: ptr::null_mut(),
            owning_thread: ptr::null_mut(),
            security_descriptor: ptr::null_mut(),
        };
        // Before the call: the callback may run inside it.
        this.state.store(PENDING, Ordering::Release);
        // SAFETY: valid addresses for the call (copied by the library);
        // `raw` is pinned, resident storage not used by another request,
        // valid until the callback has returned (drop waits for it).
        let started = from_internal(unsafe { connect::connect_async(client.as_raw(), args, raw) });
        if started.is_err() {
            // Not started: the callback is never called.
            this.state.store(IDLE, Ordering::Release);
        }
        started
    }

    /// Requests cancellation of the pending connect: its callback still
    /// comes, exactly once, with [`Error::CANCELLED`] (or with the result
    /// if the connect completed first), possibly inside this call, on this
    /// thread. Returns whether a connect was pending and not yet complete.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn cancel(&self) -> bool {
        if !self.is_pending() {
            return false;
        }
        // SAFETY: started (PENDING) and the storage is intact (borrowed).
        from_internal(unsafe { connect::cancel(self.raw.get()) }).is_ok()
    }

    /// The C callback: runs the closure once, then signals.
    unsafe extern "C" fn trampoline(context: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
        // SAFETY: the context is the pinned request, alive until the state
        // goes IDLE below (drop waits for it).
        let this = unsafe { &*context.cast::<Self>() };
        let result = if nt_success(status) {
            // SAFETY: the library hands the callee the new socket, a socket
            // of the client borrowed for 'c.
            unsafe { TcpSocket::from_raw(socket) }.ok_or(Error::UNSUCCESSFUL)
        } else {
            Err(Error::from_status(status))
        };
        // SAFETY: the library calls back once per started request, and
        // nothing else touches the closure while a request is PENDING
        // (`start` refuses, drop waits for IDLE).
        let callback = unsafe { &mut *this.callback.get() };
        callback(result);
        // SAFETY: initialized by `start`; IRQL <= DISPATCH_LEVEL.
        unsafe { this.done.set() };
        // The last access: from here on the storage may be freed.
        this.state.store(IDLE, Ordering::Release);
    }
}

impl<F> Drop for ConnectRequest<'_, F> {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == IDLE {
            return;
        }
        // SAFETY: started and intact; a connect that completed meanwhile
        // makes this STATUS_NOT_FOUND.
        let _ = unsafe { connect::cancel(self.raw.get()) };
        if platform::current_irql() <= APC_LEVEL {
            // SAFETY: initialized by `start`, resident, set by the callback.
            let _ = unsafe { self.done.wait(None) };
        }
        // The few instructions between the event and the state's store.
        while self.state.load(Ordering::Acquire) != IDLE {
            core::hint::spin_loop();
        }
    }
}
