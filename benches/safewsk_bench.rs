//! safewsk benchmarks on the host kernel, printed as one table with ratios:
//!
//!     cargo bench --bench safewsk_bench
//!
//! 1. wrapper cost: connect + close through safewsk vs the same calls made
//!    directly on the provider dispatch with the hand-written IRP sequence a
//!    careful C driver writes (benches/icount/handwritten.rs: IoAllocateIrp,
//!    IoSetCompletionRoutineEx, KEVENT, wait with a deadline, IoFreeIrp),
//!    interleaved in rounds, median per operation;
//! 2. validation alone: SafeWskSocketConnect with a NULL socket out pointer
//!    validates parameters 1 to 11 and stops at 12, before any kernel call;
//! 3. allocations and bytes per connect (host kernel counters);
//! 4. scale: N concurrent asynchronous connects to a loopback listener,
//!    elapsed time and peak RSS, against plain non-blocking Linux connect()
//!    of N sockets driven by poll() as the physical reference.
//!
//! 5. send of N bytes from non-paged pool: the default probe-and-lock path
//!    (IoAllocateMdl, MmProbeAndLockPages, MmUnlockPages, IoFreeMdl) vs
//!    SAFEWSK_FLAG_NONPAGED_BUFFER (IoAllocateMdl, MmBuildMdlForNonPagedPool,
//!    IoFreeMdl), interleaved rounds, median per send. On the host the
//!    probe is the host kernel's emulation (a lookup and one process_vm_readv
//!    per page), not Windows' page-table walk: the ratio shows the shape of
//!    the difference, not its size on Windows.
//!
//! 6. host-provider scale (issue 12, goal 3; `scale_rows`): rounds of N
//!    concurrent asynchronous connects through safewsk interleaved with the
//!    plain non-blocking connect()+poll() of N sockets, median ratio; peak
//!    RSS (VmHWM) per pending request; then SAFEWSK_BENCH_BIG (default
//!    30000) concurrent asynchronous connects spread over several 127.0.0.x
//!    listeners and local addresses, with zero leaks.
//!
//! 7. instructions per connect, send, receive and close, own code and whole
//!    call, safewsk vs the hand-written IRP sequence, counted by callgrind
//!    (one run of `icount`, see benches/icount/mod.rs; a row says so when
//!    valgrind is missing). The full report, with the attribution by source
//!    file and the kernel calls of each side, 3 runs:
//!
//!     cargo bench --bench safewsk_bench -- --instructions
//!
//! 8. multi-threaded echoes (issue 17; benches/echo_threads/mod.rs): for
//!    T = 1, 2, 4, T threads each with its own socket to a loopback echo
//!    server doing 64-byte echoes (send 64, receive 64 with
//!    WSK_FLAG_WAITALL), through safewsk and through the hand-written IRP
//!    sequence, interleaved rounds, median ops/s of each side and the ratio
//!    safewsk ÷ hand-written, with safewsk's spin-lock acquisitions per
//!    echo. Just those rows:
//!
//!     cargo bench --bench safewsk_bench -- --threads-only
//!
//! 9. servers and datagrams (issue 20; `server_rows`): accepts per second of
//!    connections already waiting (SafeWskAccept one after the other, and
//!    SafeWskAcceptAsync all at once) vs a plain
//!    non-blocking accept4() loop driven by poll(); UDP 64-byte send-to +
//!    receive-from pairs per second vs plain sendto()/recvfrom() on two
//!    Linux sockets; interleaved rounds, medians. The instruction counts of
//!    7. have rows for accept, send-to and receive-from too.
//!
//! Environment: SAFEWSK_BENCH_ONLY=servers prints the rows of 9. alone;
//! SAFEWSK_BENCH_SCALE (default 10000) sets N,
//! SAFEWSK_BENCH_ROUNDS (default 9) the rounds of 6,
//! SAFEWSK_BENCH_ECHO_N (default 500) and SAFEWSK_BENCH_ECHO_ROUNDS
//! (default 21) the echoes per thread per phase and the rounds of 8.

#[path = "../tests/common/mod.rs"]
mod common;
mod echo_threads;
mod icount;

use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use icount::handwritten::Handwritten;
use safewsk::nt::*;
use safewsk::*;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

/// Connect + close with the hand-written IRP sequence the instruction count
/// compares with (benches/icount/handwritten.rs: IoAllocateIrp,
/// IoSetCompletionRoutineEx, the WSK call, a wait with a deadline,
/// IoFreeIrp), the wall-clock reference of the connect + close row.
fn hand_connect_close(h: &Handwritten, local: &Addr, remote: &Addr) {
    // SAFETY: PASSIVE_LEVEL (a test thread); the addresses outlive the call.
    let socket = unsafe { h.connect(local.ptr(), remote.ptr(), 5000) }.expect("hand-written connect");
    // SAFETY: the socket just connected, closed once.
    assert_eq!(unsafe { h.close(socket) }, STATUS_SUCCESS);
}

/// A listener with a large backlog that accepts and closes at once (a
/// connect completes at the handshake; closing keeps within the fd limit).
fn holding_server() -> (SocketAddr, std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::os::fd::FromRawFd;
    // SAFETY: socket() takes no pointers; the descriptor is ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let one: i32 = 1;
    // SAFETY: SO_REUSEADDR takes an int; `one` is 4 readable bytes.
    unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const i32).cast(), 4) };
    // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    // SAFETY: `sin` is an initialized sockaddr_in of 16 bytes.
    assert_eq!(unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16) }, 0);
    // SAFETY: listen() takes no pointers; `fd` is our bound socket.
    assert_eq!(unsafe { libc::listen(fd, 65535) }, 0);
    // SAFETY: `fd` is an open, listening socket that nothing else owns; the
    // TcpListener takes it over (and closes it).
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            if listener.accept().is_err() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    (addr, h, stop)
}

/// A loopback server that reads and discards everything until the peer closes.
fn sink_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 16];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    (addr, h)
}

/// Send of `size` bytes from non-paged pool, locked path vs flag path:
/// (median us per send without the flag, with the flag).
fn send_paths(socket: *mut SAFEWSK_SOCKET, size: usize) -> (f64, f64) {
    const TAG: u32 = u32::from_le_bytes(*b"Bnch");
    // SAFETY: a plain non-paged pool allocation, freed below.
    let buf = unsafe { ExAllocatePool2(0x40, size, TAG) };
    assert!(!buf.is_null());
    let (rounds, per_round) = (15, 200);
    let (mut locked, mut flagged) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (flags, out) in [(0, &mut locked), (SAFEWSK_FLAG_NONPAGED_BUFFER, &mut flagged)] {
            let t = Instant::now();
            for _ in 0..per_round {
                let mut n = 0;
                // SAFETY: `buf` is `size` bytes of non-paged pool, live for the call.
                let st = unsafe { SafeWskSend(socket, buf.cast(), size as u32, flags, 5000, &mut n) };
                assert_eq!((st, n as usize), (STATUS_SUCCESS, size));
            }
            out.push(t.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        }
    }
    // SAFETY: our block.
    unsafe { ExFreePoolWithTag(buf, TAG) };
    (median(locked), median(flagged))
}

/// Validation alone: SafeWskSocketConnect with a NULL socket out pointer
/// (parameters 1 to 11 checked, refused at 12, no kernel call), median ns
/// per call over rounds of 100,000: (rounds, median).
fn validation_ns(client: *mut SAFEWSK_CLIENT, local: &Addr, remote: &Addr) -> (usize, f64) {
    let (rounds, n) = (15, 100_000u32);
    let mut per_call = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: valid arguments except the NULL socket out pointer.
            let st = unsafe {
                SafeWskSocketConnect(
                    std::hint::black_box(client),
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    local.ptr(),
                    remote.ptr(),
                    0,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    1000,
                )
            };
            assert_eq!(st, STATUS_INVALID_PARAMETER_12);
        }
        per_call.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(n));
    }
    (rounds, median(per_call))
}

/// The machine the table was measured on: cores, CPU model, UTC date.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's civil_from_days).
    let days =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{cores} cores (nproc), {cpu}, {y:04}-{m:02}-{d:02}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn peak_rss_reset() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn raise_fd_limit() {
    // SAFETY: rlimit is plain C data; all zeroes is valid.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a writable rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur = r.rlim_max;
    // SAFETY: `r` is an initialized rlimit (the current one, soft = hard).
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
}

static DONE: AtomicUsize = AtomicUsize::new(0);
static OK: AtomicUsize = AtomicUsize::new(0);
/// The socket handles the asynchronous connects handed out, to close.
static CONNECTED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn count(_: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    if status == STATUS_SUCCESS && !socket.is_null() {
        CONNECTED.lock().unwrap_or_else(|e| e.into_inner()).push(socket as usize);
        OK.fetch_add(1, Ordering::SeqCst);
    }
    DONE.fetch_add(1, Ordering::SeqCst);
}

/// Closes every socket handle in `handles` (and empties it).
fn close_handles(handles: &std::sync::Mutex<Vec<usize>>) {
    let handles = std::mem::take(&mut *handles.lock().unwrap_or_else(|e| e.into_inner()));
    for s in handles {
        assert_eq!(close(s as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == icount::WORKLOAD_FLAG) {
        icount::workload_main(&args);
        return;
    }
    if args.iter().any(|a| a == "--instructions") {
        icount::instructions_main(&args);
        return;
    }
    if args.iter().any(|a| a == "--threads-only") {
        let echo = echo_threads::rows(echo_threads::Settings::from_env());
        print_table_head();
        for row in &echo.rows {
            println!("{row}");
        }
        println!();
        println!("{}", echo.note);
        return;
    }
    raise_fd_limit();
    if scale_child() {
        return;
    }
    // SAFEWSK_BENCH_ONLY=servers: only the rows of 9. (while working on
    // them; the table is one run of everything).
    if std::env::var("SAFEWSK_BENCH_ONLY").as_deref() == Ok("servers") {
        for row in server_rows() {
            println!("{row}");
        }
        return;
    }
    let scale: usize = std::env::var("SAFEWSK_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let k = Session::begin();
    let client = startup();
    let (addr, server, stop) = holding_server();
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(addr);

    // 1. Wrapper cost.
    let direct = Handwritten::new(dev());
    let (rounds, per_round) = (15, 200);
    let (mut wrapped, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            let (st, s) = connect(client, addr, 5000);
            assert_eq!(st, STATUS_SUCCESS);
            assert_eq!(close(s), STATUS_SUCCESS);
        }
        wrapped.push(t.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        let t = Instant::now();
        for _ in 0..per_round {
            hand_connect_close(&direct, &local, &remote);
        }
        raw.push(t.elapsed().as_secs_f64() * 1e6 / per_round as f64);
    }
    let (w, r) = (median(wrapped), median(raw));

    // 2. Validation alone.
    let (vrounds, validation_ns) = validation_ns(client, &local, &remote);

    // 3. Allocations per connect.
    let a0 = hostkernel::allocations();
    for _ in 0..1000 {
        let (st, s) = connect(client, addr, 5000);
        assert_eq!(st, STATUS_SUCCESS);
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    let a1 = hostkernel::allocations();
    let per = |x: (u64, u64), y: (u64, u64)| ((y.0 - x.0) as f64 / 1000.0, (y.1 - x.1) as f64 / 1000.0);

    // 5. Send: probe-and-lock vs SAFEWSK_FLAG_NONPAGED_BUFFER.
    let (sink, sink_thread) = sink_server();
    let (st, sink_socket) = connect(client, sink, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    let send_rows: Vec<(usize, (f64, f64))> =
        [64usize, 4096, 65536].iter().map(|&size| (size, send_paths(sink_socket, size))).collect();
    assert_eq!(close(sink_socket), STATUS_SUCCESS);
    let _ = sink_thread.join();

    // 4. Scale: N concurrent asynchronous connects.
    let mut reqs: Vec<SAFEWSK_CONNECT_REQUEST> =
        (0..scale).map(|_| new_request(Some(count), ptr::null_mut(), SAFEWSK_NO_TIMEOUT)).collect();
    let a2 = hostkernel::allocations();
    peak_rss_reset();
    let rss0 = peak_rss_kib();
    let t = Instant::now();
    for req in reqs.iter_mut() {
        // `reqs` outlives every callback (the loop below waits for all).
        let st = start_async(client, &local, &remote, req);
        assert_eq!(st, STATUS_PENDING);
    }
    while DONE.load(Ordering::SeqCst) < scale {
        std::thread::sleep(Duration::from_millis(1));
    }
    let async_secs = t.elapsed().as_secs_f64();
    let async_rss = peak_rss_kib().saturating_sub(rss0);
    let a3 = hostkernel::allocations();
    let connected = OK.load(Ordering::SeqCst);
    // Close them: the callback kept each socket's handle.
    close_handles(&CONNECTED);
    drop(direct);
    cleanup(client);
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    let (addr, server, stop) = holding_server();

    // Reference: plain non-blocking connect() of N sockets, driven by poll().
    peak_rss_reset();
    let rss1 = peak_rss_kib();
    let t = Instant::now();
    let mut fds = Vec::with_capacity(scale);
    // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_port = addr.port().to_be();
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    for _ in 0..scale {
        // SAFETY: socket() takes no pointers; the descriptor is ours (closed below).
        let fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: `sin` is an initialized sockaddr_in of 16 bytes.
        let rc = unsafe { libc::connect(fd, (&sin as *const libc::sockaddr_in).cast(), 16) };
        assert!(rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS));
        fds.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
    }
    let mut left = fds.len();
    while left > 0 {
        // SAFETY: `fds` is a valid, writable array of fds.len() pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        for p in fds.iter_mut() {
            if p.events != 0 && p.revents != 0 {
                p.events = 0;
                left -= 1;
            }
        }
    }
    let plain_secs = t.elapsed().as_secs_f64();
    let plain_rss = peak_rss_kib().saturating_sub(rss1);
    for p in &fds {
        // SAFETY: our descriptors.
        unsafe { libc::close(p.fd) };
    }
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
    k.finish();
    // 8. Multi-threaded echoes (a host-kernel session of their own).
    let echo = echo_threads::rows(echo_threads::Settings::from_env());
    let scale_table = scale_rows(scale);
    let server_table = server_rows();
    // The instruction counts (callgrind; a child process of its own).
    let instruction_rows = icount::table_rows();

    let (irps, irp_bytes) = per(a0.irps, a1.irps);
    let (pool, pool_bytes) = per(a0.pool, a1.pool);
    let (mdls, _) = per(a0.mdls, a1.mdls);
    let async_irps = (a3.irps.0 - a2.irps.0) as f64 / scale as f64;
    let async_pool = (a3.pool.0 - a2.pool.0) as f64 / scale as f64;
    print_table_head();
    println!("| connect+close, sync, median of {rounds} x {per_round} | {w:.1} us | {r:.1} us (hand-written IRP sequence) | {:.3} |", w / r);
    println!("| parameter validation (1-11), median of {vrounds} x 100000 | {validation_ns:.1} ns/call | - | - |");
    println!("| allocations per sync connect+close | {irps:.2} IRPs ({irp_bytes:.0} B), {pool:.2} pool ({pool_bytes:.0} B), {mdls:.2} MDLs | 2 IRPs by hand | - |");
    println!("| allocations per async connect | {async_irps:.2} IRPs, {async_pool:.2} pool blocks (caller storage) | - | - |");
    for (size, (locked, flagged)) in &send_rows {
        println!(
            "| send of {size} B from non-paged pool, median of 15 x 200 | {locked:.2} us probe+lock (default) | {flagged:.2} us SAFEWSK_FLAG_NONPAGED_BUFFER | {:.3} |",
            locked / flagged
        );
    }
    for row in &echo.rows {
        println!("{row}");
    }
    println!(
        "| {scale} concurrent async connects | {:.3} s, {:.0} connects/s, peak RSS +{} KiB, {connected} connected | {:.3} s, {:.0} connects/s, peak RSS +{} KiB (non-blocking connect + poll) | {:.1}x time |",
        async_secs,
        scale as f64 / async_secs,
        async_rss,
        plain_secs,
        scale as f64 / plain_secs,
        plain_rss,
        async_secs / plain_secs
    );
    for row in &scale_table {
        println!("{row}");
    }
    for row in &server_table {
        println!("{row}");
    }
    for row in instruction_rows {
        println!("{row}");
    }
    println!();
    println!("{}", echo.note);
}

/// The table's title (with the machine) and header.
fn print_table_head() {
    println!("safewsk benchmarks (host kernel, loopback TCP; {})", machine());
    println!("| measure | safewsk | reference | ratio |");
    println!("|---|---|---|---|");
}

// ---------------------------------------------------------------------------
// 6. Host-provider scale (issue 12, goal 3)
// ---------------------------------------------------------------------------

/// A holding listener on `ip` (127.0.0.x), like [`holding_server`].
fn holding_server_at(
    ip: [u8; 4],
) -> (SocketAddr, std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::os::fd::FromRawFd;
    // SAFETY: socket() takes no pointers; the descriptor is ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let one: i32 = 1;
    // SAFETY: SO_REUSEADDR takes an int; `one` is 4 readable bytes.
    unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const i32).cast(), 4) };
    // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from_ne_bytes(ip);
    // SAFETY: `sin` is an initialized sockaddr_in of 16 bytes.
    assert_eq!(unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16) }, 0);
    // SAFETY: listen() takes no pointers; `fd` is our bound socket.
    assert_eq!(unsafe { libc::listen(fd, 65535) }, 0);
    // SAFETY: `fd` is an open, listening socket that nothing else owns.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        while !s.load(Ordering::SeqCst) {
            // Accept until the queue is empty, then wait for the next one
            // (no fixed sleep: a full accept queue drops SYNs, and each drop
            // costs the connect a 1 s retransmission).
            while listener.accept().is_ok() {}
            // SAFETY: `p` is one writable pollfd for our listener.
            unsafe { libc::poll(&mut p, 1, 10) };
        }
    });
    (addr, h, stop)
}

/// TcpExt ListenOverflows of this network namespace (/proc/net/netstat).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return 0 };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

static SCALE_DONE: AtomicUsize = AtomicUsize::new(0);
static SCALE_OK: AtomicUsize = AtomicUsize::new(0);
static SCALE_STATUSES: std::sync::Mutex<Vec<NTSTATUS>> = std::sync::Mutex::new(Vec::new());
/// The socket handles the scale connects handed out, to close.
static SCALE_SOCKETS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn scale_count(_: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    if status == STATUS_SUCCESS && !socket.is_null() {
        SCALE_SOCKETS.lock().unwrap_or_else(|e| e.into_inner()).push(socket as usize);
        SCALE_OK.fetch_add(1, Ordering::SeqCst);
    } else {
        SCALE_STATUSES.lock().unwrap_or_else(|e| e.into_inner()).push(status);
    }
    SCALE_DONE.fetch_add(1, Ordering::SeqCst);
}

/// N asynchronous connects through safewsk from `locals` to `remotes`
/// (round robin), all issued at once; returns (seconds until the last
/// callback, peak RSS growth in KiB). The sockets stay open.
fn safewsk_connects(client: *mut SAFEWSK_CLIENT, locals: &[Addr], remotes: &[Addr], n: usize) -> (f64, u64) {
    SCALE_DONE.store(0, Ordering::SeqCst);
    SCALE_OK.store(0, Ordering::SeqCst);
    let mut reqs: Vec<SAFEWSK_CONNECT_REQUEST> =
        (0..n).map(|_| new_request(Some(scale_count), ptr::null_mut(), SAFEWSK_NO_TIMEOUT)).collect();
    peak_rss_reset();
    let rss0 = peak_rss_kib();
    let t = Instant::now();
    for (i, req) in reqs.iter_mut().enumerate() {
        // `reqs` outlives every callback (the loop below waits for all).
        let st = start_async(client, &locals[i % locals.len()], &remotes[i % remotes.len()], req);
        assert_eq!(st, STATUS_PENDING);
    }
    while SCALE_DONE.load(Ordering::SeqCst) < n {
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_kib().saturating_sub(rss0);
    drop(reqs);
    (secs, rss)
}

/// N plain non-blocking connect()s to `remote` driven by poll(): (seconds,
/// peak RSS growth in KiB). Closes them afterwards.
fn plain_connects(remotes: &[SocketAddr], n: usize) -> (f64, u64) {
    peak_rss_reset();
    let rss0 = peak_rss_kib();
    let t = Instant::now();
    let mut fds = Vec::with_capacity(n);
    let sins: Vec<libc::sockaddr_in> = remotes
        .iter()
        .map(|r| {
            // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = r.port().to_be();
            let std::net::IpAddr::V4(ip) = r.ip() else { panic!("IPv4 listeners only") };
            sin.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
            sin
        })
        .collect();
    for i in 0..n {
        let sin = &sins[i % sins.len()];
        // SAFETY: socket() takes no pointers; the descriptor is ours (closed below).
        let fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: `sin` is an initialized sockaddr_in of 16 bytes.
        let rc = unsafe { libc::connect(fd, (sin as *const libc::sockaddr_in).cast(), 16) };
        assert!(rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS));
        fds.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
    }
    let mut left = fds.len();
    while left > 0 {
        // SAFETY: `fds` is a valid, writable array of fds.len() pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        for p in fds.iter_mut() {
            if p.events != 0 && p.revents != 0 {
                p.events = 0;
                left -= 1;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let rss = peak_rss_kib().saturating_sub(rss0);
    for p in &fds {
        // SAFETY: our descriptors.
        unsafe { libc::close(p.fd) };
    }
    (secs, rss)
}

/// Closes every socket the scale connects made (their handles, kept by
/// [`scale_count`]).
fn close_all() {
    close_handles(&SCALE_SOCKETS);
}

/// Peak RSS growth (KiB) while `n` asynchronous connects are all pending at
/// once: the provider is told never to complete them, so every request is
/// pending (no socket, no descriptor) until SafeWskCancelConnect ends it.
/// Returns the growth and the callbacks' status (all the same).
fn pending_rss(n: usize) -> (u64, NTSTATUS) {
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Never);
    let client = startup();
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::parse("127.0.0.1:9");
    SCALE_DONE.store(0, Ordering::SeqCst);
    SCALE_OK.store(0, Ordering::SeqCst);
    SCALE_STATUSES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let mut reqs: Vec<SAFEWSK_CONNECT_REQUEST> =
        (0..n).map(|_| new_request(Some(scale_count), ptr::null_mut(), SAFEWSK_NO_TIMEOUT)).collect();
    std::thread::sleep(Duration::from_millis(50));
    peak_rss_reset();
    let rss0 = peak_rss_kib();
    for req in reqs.iter_mut() {
        assert_eq!(start_async(client, &local, &remote, req), STATUS_PENDING);
    }
    // Every request is pending now (the provider never completes one).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(SCALE_DONE.load(Ordering::SeqCst), 0);
    let grown = peak_rss_kib().saturating_sub(rss0);
    for req in reqs.iter_mut() {
        // SAFETY: a pending request in `reqs`, which outlives its callback.
        assert_eq!(unsafe { SafeWskCancelConnect(req) }, STATUS_SUCCESS);
    }
    while SCALE_DONE.load(Ordering::SeqCst) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut st = SCALE_STATUSES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    st.dedup();
    assert_eq!(st.len(), 1, "{st:x?}");
    cleanup(client);
    k.finish();
    (grown, st[0])
}

/// The bench run as a child process (`SAFEWSK_BENCH_CHILD`): "pending N"
/// prints "pending <KiB> <status>" ([`pending_rss`]); "connects N" connects
/// N sockets at once to 4 listeners on 127.0.0.1-4 from local addresses
/// 127.0.0.1-4 and prints "connects <microseconds> <connected>", after
/// closing them and checking for leaks. Returns whether it ran as a child.
fn scale_child() -> bool {
    let Ok(what) = std::env::var("SAFEWSK_BENCH_CHILD") else { return false };
    let mut it = what.split_whitespace();
    let (kind, n) = (it.next().unwrap_or(""), it.next().and_then(|v| v.parse().ok()).unwrap_or(0usize));
    match kind {
        "pending" => {
            let (kib, status) = pending_rss(n);
            println!("pending {kib} {}", status as u32);
        }
        "connects" => {
            let k = Session::begin();
            let client = startup();
            let servers: Vec<_> = (1..=4u8).map(|i| holding_server_at([127, 0, 0, i])).collect();
            let remotes: Vec<Addr> = servers.iter().map(|(a, _, _)| Addr::from(*a)).collect();
            let locals: Vec<Addr> = (1..=4u8).map(|i| Addr::parse(&format!("127.0.0.{i}:0"))).collect();
            SCALE_STATUSES.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let (secs, _) = safewsk_connects(client, &locals, &remotes, n);
            let ok = SCALE_OK.load(Ordering::SeqCst);
            let failed = SCALE_STATUSES.lock().unwrap_or_else(|e| e.into_inner()).clone();
            assert_eq!(ok, n, "failed: {failed:x?}");
            close_all();
            cleanup(client);
            for (_, h, stop) in servers {
                stop.store(true, Ordering::SeqCst);
                let _ = h.join();
            }
            k.finish(); // zero leaks, no violation
            println!("connects {} {ok}", (secs * 1e6) as u64);
        }
        _ => panic!("SAFEWSK_BENCH_CHILD: {what}"),
    }
    true
}

fn spawn_child(what: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .env("SAFEWSK_BENCH_CHILD", what)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the bench as a child")
}

fn wait_child(c: std::process::Child) -> String {
    let out = c.wait_with_output().expect("child");
    assert!(out.status.success(), "child failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string()
}

fn child(what: &str) -> String {
    wait_child(spawn_child(what))
}

/// The `i`th word of a child's line, as a number.
fn field(line: &str, i: usize) -> u64 {
    line.split_whitespace().nth(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) as u64
}

/// Issue 12, goal 3: rows of the table for the host provider's scale.
fn scale_rows(scale: usize) -> Vec<String> {
    let rounds: usize = std::env::var("SAFEWSK_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    let big: usize = std::env::var("SAFEWSK_BENCH_BIG").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    let mut rows = Vec::new();
    let mut limit: libc::rlimit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a writable rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };

    // N concurrent connects, rounds interleaved with the plain reference.
    let k = Session::begin();
    let client = startup();
    // Four listeners (127.0.0.1-4), each with its own accept queue
    // (somaxconn caps each at 4096 here), for both sides.
    let servers: Vec<_> = (1..=4u8).map(|i| holding_server_at([127, 0, 0, i])).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|(a, _, _)| *a).collect();
    let local = [Addr::parse("0.0.0.0:0")];
    let remote: Vec<Addr> = addrs.iter().map(|a| Addr::from(*a)).collect();
    let overflows0 = listen_overflows();
    let (mut ours, mut plain, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so that neither always runs on the
        // other's leftovers (TIME_WAIT entries, warm caches).
        let plain_first = round % 2 == 1;
        let mut p = 0.0;
        if plain_first {
            p = plain_connects(&addrs, scale).0;
        }
        let (s, _) = safewsk_connects(client, &local, &remote, scale);
        assert_eq!(SCALE_OK.load(Ordering::SeqCst), scale, "{:?}", SCALE_STATUSES.lock().map(|v| v.len()));
        close_all();
        if !plain_first {
            p = plain_connects(&addrs, scale).0;
        }
        ours.push(s);
        plain.push(p);
        ratios.push(s / p);
    }
    let overflows = listen_overflows() - overflows0;
    cleanup(client);
    for (_, h, stop) in servers {
        stop.store(true, Ordering::SeqCst);
        let _ = h.join();
    }
    k.finish();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    let (o, p, ratio) = (median(ours), median(plain), median(ratios));
    rows.push(format!(
        "| {scale} concurrent async connects to 4 listeners, median of {rounds} interleaved rounds ({overflows} listen overflows in the namespace meanwhile) | {o:.3} s ({:.0}/s) | {p:.3} s ({:.0}/s) non-blocking connect + poll | {ratio:.2}x time (median of per-round ratios; {lo:.2}-{hi:.2}) |",
        scale as f64 / o,
        scale as f64 / p
    ));
    // Peak RSS per pending request, in a fresh process (this one's heap
    // already holds freed memory that would hide the growth).
    let out = child(&format!("pending {scale}"));
    let (pending_kib, pending_status) = (field(&out, 1), field(&out, 2));
    rows.push(format!(
        "| peak RSS per pending request: {scale} async connects held pending (provider never completes), then cancelled; fresh process | {:.0} B (+{pending_kib} KiB), all {pending_status:#x} | 8 B (one pollfd) non-blocking connect + poll | - |",
        pending_kib as f64 * 1024.0 / scale as f64
    ));

    // `big` concurrent connects over 4 listeners and 4 local addresses
    // (each local address has its own ephemeral ports). The hard
    // RLIMIT_NOFILE of this sandbox (20,000, raise_fd_limit cannot go
    // higher) does not hold 30,000 sockets in one process: two processes
    // with a host kernel each connect big/2 at the same time.
    let t = Instant::now();
    let half = big / 2;
    let kids: Vec<_> = (0..2).map(|_| spawn_child(&format!("connects {half}"))).collect();
    let outs: Vec<String> = kids.into_iter().map(wait_child).collect();
    let wall = t.elapsed().as_secs_f64();
    let connected: u64 = outs.iter().map(|o| field(o, 2)).sum();
    let slowest = outs.iter().map(|o| field(o, 1) as f64 / 1e6).fold(0.0, f64::max);
    rows.push(format!(
        "| {big} concurrent async connects: 2 processes x {half} at once, 4 listeners 127.0.0.1-4 (hard RLIMIT_NOFILE {}) | {slowest:.3} s slowest process ({:.0}/s), {wall:.3} s wall with process start, {connected} connected, 0 leaks | - | - |",
        limit.rlim_max,
        big as f64 / slowest,
    ));
    rows
}

// ---------------------------------------------------------------------------
// 8. Servers and datagrams (issue 20)
// ---------------------------------------------------------------------------

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static ACCEPTED_SOCKETS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn accepted(_: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    assert_eq!(status, STATUS_SUCCESS);
    ACCEPTED_SOCKETS.lock().unwrap_or_else(|e| e.into_inner()).push(socket as usize);
    ACCEPTED.fetch_add(1, Ordering::SeqCst);
}

/// `n` connections to 127.0.0.1:`port`, established (they wait in the
/// listening socket's queue).
fn waiting_connections(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    (0..n).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect()
}

/// The local port of a safewsk socket.
fn port_of(socket: *mut SAFEWSK_SOCKET) -> u16 {
    let mut a = [0u8; 28];
    // SAFETY: a writable 28-byte buffer.
    assert_eq!(unsafe { SafeWskGetLocalAddress(socket, a.as_mut_ptr().cast(), 28, 5000) }, STATUS_SUCCESS);
    u16::from_be_bytes([a[2], a[3]])
}

/// Rows for accepts per second and UDP pairs per second, each against the
/// plain Linux calls, interleaved rounds, medians.
fn server_rows() -> Vec<String> {
    use std::os::fd::AsRawFd;
    let (rounds, per, pairs) = (9usize, 500usize, 2000usize);
    let k = Session::begin();
    let client = startup();
    let local = Addr::parse("127.0.0.1:0");
    let mut listener = ptr::null_mut();
    // SAFETY: valid address and out pointer for the call.
    assert_eq!(unsafe { SafeWskListen(client, local.ptr(), ptr::null(), &mut listener, 5000) }, STATUS_SUCCESS);
    let lport = port_of(listener);
    // The plain listener with the backlog the host kernel's listening
    // sockets get (SOMAXCONN, 4096; std's TcpListener asks for 128, which
    // the waiting connections would overflow).
    let plain = {
        use std::os::fd::FromRawFd;
        // SAFETY: socket() takes no pointers; the descriptor is ours.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as u16;
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        // SAFETY: `sin` is an initialized sockaddr_in of 16 bytes.
        assert_eq!(unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16) }, 0);
        // SAFETY: listen() takes no pointers; `fd` is our bound socket.
        assert_eq!(unsafe { libc::listen(fd, libc::SOMAXCONN) }, 0);
        // SAFETY: `fd` is an open, listening socket that nothing else owns.
        unsafe { std::net::TcpListener::from_raw_fd(fd) }
    };
    plain.set_nonblocking(true).expect("nonblocking");
    let pport = plain.local_addr().expect("addr").port();
    let (mut sync_us, mut async_us, mut plain_us) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // SafeWskAccept of connections already waiting.
        let peers = waiting_connections(lport, per);
        let t = Instant::now();
        let mut got = Vec::with_capacity(per);
        for _ in 0..per {
            let mut s = ptr::null_mut();
            // SAFETY: valid out pointer; no address wanted.
            let st = unsafe {
                SafeWskAccept(listener, ptr::null_mut(), ptr::null(), &mut s, ptr::null_mut(), ptr::null_mut(), 5000)
            };
            assert_eq!(st, STATUS_SUCCESS);
            got.push(s);
        }
        sync_us.push(t.elapsed().as_secs_f64() * 1e6 / per as f64);
        for s in got {
            assert_eq!(close(s), STATUS_SUCCESS);
        }
        drop(peers);

        // SafeWskAcceptAsync of connections already waiting: from the first
        // request until the last callback.
        let peers = waiting_connections(lport, per);
        ACCEPTED.store(0, Ordering::SeqCst);
        let mut areqs: Vec<SAFEWSK_ACCEPT_REQUEST> = (0..per)
            .map(|_| SAFEWSK_ACCEPT_REQUEST {
                Callback: Some(accepted),
                CallbackContext: ptr::null_mut(),
                TimeoutMs: SAFEWSK_NO_TIMEOUT,
                Reserved: 0,
                LocalAddress: SAFEWSK_ADDRESS::default(),
                RemoteAddress: SAFEWSK_ADDRESS::default(),
                Private: [0; 32],
            })
            .collect();
        let t = Instant::now();
        for r in areqs.iter_mut() {
            // SAFETY: `areqs` outlives every callback (waited for below).
            assert_eq!(unsafe { SafeWskAcceptAsync(listener, ptr::null_mut(), ptr::null(), r) }, STATUS_PENDING);
        }
        while ACCEPTED.load(Ordering::SeqCst) < per {
            std::thread::sleep(Duration::from_micros(100));
        }
        async_us.push(t.elapsed().as_secs_f64() * 1e6 / per as f64);
        close_handles(&ACCEPTED_SOCKETS);
        drop(areqs);
        drop(peers);

        // The plain reference: non-blocking accept4 driven by poll.
        let peers = waiting_connections(pport, per);
        let t = Instant::now();
        let mut fds = Vec::with_capacity(per);
        let mut p = libc::pollfd { fd: plain.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        while fds.len() < per {
            // SAFETY: our listening socket; no address wanted.
            let fd = unsafe {
                libc::accept4(p.fd, ptr::null_mut(), ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            };
            if fd >= 0 {
                fds.push(fd);
            } else {
                // SAFETY: one writable pollfd.
                unsafe { libc::poll(&mut p, 1, 1000) };
            }
        }
        plain_us.push(t.elapsed().as_secs_f64() * 1e6 / per as f64);
        for fd in fds {
            // SAFETY: our descriptors.
            unsafe { libc::close(fd) };
        }
        drop(peers);
    }
    assert_eq!(close(listener), STATUS_SUCCESS);

    // UDP: 64-byte send-to + receive-from pairs.
    let mut a = ptr::null_mut();
    let mut b = ptr::null_mut();
    // SAFETY: valid address and out pointer for the call.
    assert_eq!(unsafe { SafeWskDatagramSocket(client, local.ptr(), ptr::null(), &mut a, 5000) }, STATUS_SUCCESS);
    // SAFETY: as above.
    assert_eq!(unsafe { SafeWskDatagramSocket(client, local.ptr(), ptr::null(), &mut b, 5000) }, STATUS_SUCCESS);
    let b_addr = Addr::parse(&format!("127.0.0.1:{}", port_of(b)));
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let ub = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let ub_addr = ub.local_addr().expect("addr");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let payload = [0x42u8; 64];
    let mut buf = [0u8; 64];
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..pairs {
            let mut n = 0;
            // SAFETY: stack buffers live for the call.
            let st = unsafe { SafeWskSendTo(a, payload.as_ptr().cast(), 64, 0, b_addr.ptr(), 5000, &mut n) };
            assert_eq!(st, STATUS_SUCCESS);
            // SAFETY: as above.
            let st = unsafe { SafeWskReceiveFrom(b, buf.as_mut_ptr().cast(), 64, 0, ptr::null_mut(), 5000, &mut n) };
            assert_eq!(st, STATUS_SUCCESS);
        }
        ours.push(t.elapsed().as_secs_f64() * 1e6 / pairs as f64);
        let t = Instant::now();
        for _ in 0..pairs {
            ua.send_to(&payload, ub_addr).expect("sendto");
            ub.recv_from(&mut buf).expect("recvfrom");
        }
        theirs.push(t.elapsed().as_secs_f64() * 1e6 / pairs as f64);
    }
    assert_eq!(close(a), STATUS_SUCCESS);
    assert_eq!(close(b), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
    let (s, ay, p) = (median(sync_us), median(async_us), median(plain_us));
    let (u, v) = (median(ours), median(theirs));
    vec![
        format!(
            "| accepts of waiting connections, SafeWskAccept, median of {rounds} x {per} | {s:.1} us ({:.0}/s) | {p:.1} us ({:.0}/s) non-blocking accept4 + poll | {:.2}x time |",
            1e6 / s,
            1e6 / p,
            s / p
        ),
        format!(
            "| accepts of waiting connections, {per} SafeWskAcceptAsync at once until the last callback, median of {rounds} | {ay:.1} us ({:.0}/s) | {p:.1} us ({:.0}/s) non-blocking accept4 + poll | {:.2}x time |",
            1e6 / ay,
            1e6 / p,
            ay / p
        ),
        format!(
            "| UDP 64-byte send-to + receive-from pairs, median of {rounds} x {pairs} | {u:.1} us ({:.0} pairs/s) | {v:.1} us ({:.0} pairs/s) plain sendto + recvfrom | {:.2}x time |",
            1e6 / u,
            1e6 / v,
            u / v
        ),
    ]
}
