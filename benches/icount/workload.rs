//! The workload that runs under callgrind: per round and per side (safewsk,
//! then the hand-written sequence), N sends, N receives (64 bytes each, on
//! one connection to an echo server), N synchronous connects and N closes,
//! then (issue 20) N accepts of connections already waiting on a listening
//! socket, N send-tos and N receive-froms of 64-byte datagrams already
//! waiting, each phase scoped by callgrind client requests
//! (CALLGRIND_ZERO_STATS before it, CALLGRIND_DUMP_STATS_AT after it), so
//! that each dump holds exactly that phase's instructions on every thread
//! (the host kernel's provider threads and the loopback servers included).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::handwritten::Handwritten;
use super::{Phase, Side, PAYLOAD, TIMEOUT_MS};
use crate::common::{self, Addr};
use safewsk::nt::*;
use safewsk::*;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

const TAG: u32 = u32::from_le_bytes(*b"Icnt");
const POOL_FLAG_NON_PAGED: u64 = 0x40;

/// A valgrind client request (valgrind.h, VALGRIND_DO_CLIENT_REQUEST_EXPR,
/// amd64-linux): returns `default` when not running under valgrind.
#[cfg(target_arch = "x86_64")]
fn client_request(request: u64, arg1: u64, default: u64) -> u64 {
    let args: [u64; 6] = [request, arg1, 0, 0, 0, 0];
    let result: u64;
    // SAFETY: valgrind's "special instruction preamble" for amd64: the four
    // rotations of rdi (3 + 13 + 61 + 51 = 128 bits) leave it unchanged and
    // `xchg rbx, rbx` is a no-op, so natively this only moves `default` to
    // rdx (and clobbers the flags, which asm! assumes by default). Under
    // valgrind the core reads the six words at rax and puts the answer in
    // rdx. `args` lives across the asm block.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") args.as_ptr(),
            inout("rdi") 0u64 => _,
            options(nostack),
        )
    };
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(_request: u64, _arg1: u64, default: u64) -> u64 {
    default
}

/// RUNNING_ON_VALGRIND (valgrind.h: VG_USERREQ__RUNNING_ON_VALGRIND = 0x1001).
pub fn running_on_valgrind() -> bool {
    client_request(0x1001, 0, 0) != 0
}

/// callgrind.h: VG_USERREQ_TOOL_BASE('C','T') = 0x4354_0000, then
/// DUMP_STATS, ZERO_STATS, TOGGLE_COLLECT, DUMP_STATS_AT.
const CALLGRIND_ZERO_STATS: u64 = 0x4354_0001;
const CALLGRIND_DUMP_STATS_AT: u64 = 0x4354_0003;

/// Zeroes the cost counters of every thread.
fn zero_stats() {
    client_request(CALLGRIND_ZERO_STATS, 0, 0);
}

/// Dumps the counters of every thread since the last zero, with `label` as
/// the dump's trigger ("desc: Trigger: Client Request: <label>").
fn dump_stats(label: &str) {
    let mut c = label.as_bytes().to_vec();
    c.push(0);
    client_request(CALLGRIND_DUMP_STATS_AT, c.as_ptr() as u64, 0);
}

/// A listener that accepts and keeps every connection (blocking accept:
/// the same, deterministic work per connection).
fn holding_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in l.incoming() {
            match s {
                Ok(s) => kept.push(s),
                Err(_) => return,
            }
        }
    });
    a
}

/// A listener that echoes every byte of every connection, counting them.
fn echo_server(echoed: Arc<AtomicUsize>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s): Result<TcpStream, _> = s else { return };
            let echoed = echoed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    echoed.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    a
}

/// A socket of either side: safewsk's opaque handle, or the provider's
/// WSK_SOCKET the hand-written code holds.
#[derive(Clone, Copy)]
enum Socket {
    Safewsk(*mut SAFEWSK_SOCKET),
    Handwritten(*mut WSK_SOCKET),
}

/// One side's four operations, called in the measured loops.
struct Ops<'a> {
    side: Side,
    client: *mut SAFEWSK_CLIENT,
    hand: &'a Handwritten,
    local: Addr,
}

impl Ops<'_> {
    fn connect(&self, remote: &Addr) -> Socket {
        match self.side {
            Side::Safewsk => {
                let mut s = ptr::null_mut();
                // SAFETY: valid addresses and out pointer for the call.
                let st = unsafe {
                    SafeWskSocketConnect(
                        self.client,
                        SOCK_STREAM,
                        IPPROTO_TCP,
                        self.local.ptr(),
                        remote.ptr(),
                        0,
                        ptr::null_mut(),
                        ptr::null(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        &mut s,
                        TIMEOUT_MS,
                    )
                };
                assert_eq!(st, STATUS_SUCCESS);
                Socket::Safewsk(s)
            }
            Side::Handwritten => {
                // SAFETY: PASSIVE_LEVEL; valid addresses for the call.
                let s = unsafe { self.hand.connect(self.local.ptr(), remote.ptr(), TIMEOUT_MS) };
                Socket::Handwritten(s.expect("hand-written connect"))
            }
        }
    }

    fn transfer(&self, receive: bool, socket: Socket, buf: *mut u8) {
        let n = match socket {
            Socket::Safewsk(socket) => {
                let mut n = 0;
                let flags = SAFEWSK_FLAG_NONPAGED_BUFFER;
                let st = if receive {
                    // SAFETY: `buf` is PAYLOAD bytes of non-paged pool, live.
                    unsafe { SafeWskReceive(socket, buf.cast(), PAYLOAD, flags, TIMEOUT_MS, &mut n) }
                } else {
                    // SAFETY: as above.
                    unsafe { SafeWskSend(socket, buf.cast(), PAYLOAD, flags, TIMEOUT_MS, &mut n) }
                };
                assert_eq!(st, STATUS_SUCCESS);
                n as usize
            }
            Socket::Handwritten(socket) => {
                // SAFETY: PASSIVE_LEVEL; an open socket; `buf` as above.
                unsafe { self.hand.transfer(receive, socket, buf, PAYLOAD, TIMEOUT_MS) }.expect("hand-written transfer")
            }
        };
        assert_eq!(n, PAYLOAD as usize);
    }

    fn close(&self, socket: Socket) {
        let st = match socket {
            // SAFETY: any handle value is safe (this one: a socket this side
            // connected, closed once).
            Socket::Safewsk(socket) => unsafe { SafeWskCloseSocket(socket) },
            // SAFETY: a socket this side connected, closed once.
            Socket::Handwritten(socket) => unsafe { self.hand.close(socket) },
        };
        assert_eq!(st, STATUS_SUCCESS);
    }
}

/// One side's listening and datagram sockets (issue 20).
#[derive(Clone, Copy)]
enum Server {
    Safewsk { listen: *mut SAFEWSK_SOCKET, datagram: *mut SAFEWSK_SOCKET },
    Handwritten { listen: *mut WSK_SOCKET, datagram: *mut WSK_SOCKET },
}

impl Ops<'_> {
    /// A listening socket and a datagram socket on 127.0.0.1, and their
    /// ports.
    fn server(&self) -> (Server, u16, u16) {
        let local = Addr::parse("127.0.0.1:0");
        match self.side {
            Side::Safewsk => {
                let (mut l, mut d) = (ptr::null_mut(), ptr::null_mut());
                // SAFETY: valid address and out pointer for the call.
                let st = unsafe { SafeWskListen(self.client, local.ptr(), ptr::null(), &mut l, TIMEOUT_MS) };
                assert_eq!(st, STATUS_SUCCESS);
                // SAFETY: as above.
                let st = unsafe { SafeWskDatagramSocket(self.client, local.ptr(), ptr::null(), &mut d, TIMEOUT_MS) };
                assert_eq!(st, STATUS_SUCCESS);
                let port = |s: *mut SAFEWSK_SOCKET| {
                    let mut a = [0u8; 28];
                    // SAFETY: a writable 28-byte buffer.
                    assert_eq!(unsafe { SafeWskGetLocalAddress(s, a.as_mut_ptr().cast(), 28, TIMEOUT_MS) }, 0);
                    u16::from_be_bytes([a[2], a[3]])
                };
                (Server::Safewsk { listen: l, datagram: d }, port(l), port(d))
            }
            Side::Handwritten => {
                // SAFETY: PASSIVE_LEVEL; a valid address for the calls.
                let l = unsafe { self.hand.bound(WSK_FLAG_LISTEN_SOCKET, local.ptr()) }.expect("hand-written listen");
                // SAFETY: as above.
                let d = unsafe { self.hand.bound(WSK_FLAG_DATAGRAM_SOCKET, local.ptr()) }.expect("hand-written socket");
                let port = |s: *mut WSK_SOCKET| {
                    let fd = hostkernel::socket_fd(s.cast()).expect("fd");
                    // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
                    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                    let mut len = 16u32;
                    // SAFETY: our socket; `sin` and `len` describe a buffer.
                    unsafe { libc::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) };
                    u16::from_be(sin.sin_port)
                };
                (Server::Handwritten { listen: l, datagram: d }, port(l), port(d))
            }
        }
    }

    fn accept(&self, server: Server) -> Socket {
        match server {
            Server::Safewsk { listen, .. } => {
                let mut s = ptr::null_mut();
                // SAFETY: valid out pointer; no address wanted.
                let st = unsafe {
                    SafeWskAccept(
                        listen,
                        ptr::null_mut(),
                        ptr::null(),
                        &mut s,
                        ptr::null_mut(),
                        ptr::null_mut(),
                        TIMEOUT_MS,
                    )
                };
                assert_eq!(st, STATUS_SUCCESS);
                Socket::Safewsk(s)
            }
            Server::Handwritten { listen, .. } => {
                // SAFETY: PASSIVE_LEVEL; an open listening socket.
                Socket::Handwritten(unsafe { self.hand.accept(listen, TIMEOUT_MS) }.expect("hand-written accept"))
            }
        }
    }

    fn datagram(&self, server: Server, to: Option<&Addr>, buf: *mut u8) {
        let n = match server {
            Server::Safewsk { datagram, .. } => {
                let mut n = 0;
                let flags = SAFEWSK_FLAG_NONPAGED_BUFFER;
                let st = match to {
                    // SAFETY: `buf` is PAYLOAD bytes of non-paged pool, live.
                    Some(to) => unsafe {
                        SafeWskSendTo(datagram, buf.cast(), PAYLOAD, flags, to.ptr(), TIMEOUT_MS, &mut n)
                    },
                    // SAFETY: as above.
                    None => unsafe {
                        SafeWskReceiveFrom(datagram, buf.cast(), PAYLOAD, flags, ptr::null_mut(), TIMEOUT_MS, &mut n)
                    },
                };
                assert_eq!(st, STATUS_SUCCESS);
                n as usize
            }
            Server::Handwritten { datagram, .. } => {
                // SAFETY: PASSIVE_LEVEL; an open datagram socket; `buf` as above.
                unsafe { self.hand.datagram(datagram, to.map(|a| a.ptr()), buf, PAYLOAD, TIMEOUT_MS) }
                    .expect("hand-written datagram")
            }
        };
        assert_eq!(n, PAYLOAD as usize);
    }

    fn close_server(&self, server: Server) {
        match server {
            Server::Safewsk { listen, datagram } => {
                self.close(Socket::Safewsk(listen));
                self.close(Socket::Safewsk(datagram));
            }
            Server::Handwritten { listen, datagram } => {
                self.close(Socket::Handwritten(listen));
                self.close(Socket::Handwritten(datagram));
            }
        }
    }
}

/// Runs `rounds` rounds of `n` operations per phase and side (after a
/// warm-up that is not measured), dumping one callgrind part per phase,
/// labelled `<side> <phase> <round>`.
pub fn run(n: usize, rounds: usize) {
    let k = hostkernel::Session::begin();
    let client = common::startup();
    let hand = Handwritten::new(common::dev());
    let hold = Addr::from(holding_server());
    let echoed = Arc::new(AtomicUsize::new(0));
    let echo = echo_server(echoed.clone());
    // SAFETY: a plain non-paged pool allocation, freed below.
    let buf = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, PAYLOAD as usize, TAG) };
    assert!(!buf.is_null());
    let sides = [Side::Safewsk, Side::Handwritten];
    let ops: Vec<Ops> =
        sides.iter().map(|&side| Ops { side, client, hand: &hand, local: Addr::parse("0.0.0.0:0") }).collect();
    let echo_addr = Addr::from(echo);
    let data: Vec<Socket> = ops.iter().map(|o| o.connect(&echo_addr)).collect();
    let servers: Vec<(Server, u16, u16)> = ops.iter().map(|o| o.server()).collect();
    // The datagrams' other end: a plain UDP socket (sink for the send-tos,
    // source of the datagrams the receive-froms take).
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    let peer_addr = Addr::from(peer.local_addr().expect("udp addr"));
    peer.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0usize;
    let mut sockets = Vec::with_capacity(n);
    for round in 0..=rounds {
        // Round 0 is the warm-up: first-call costs (lazy binding, the first
        // provider thread, allocator growth) stay out of the figures.
        let per = if round == 0 { n.min(20) } else { n };
        for (o, &data_socket) in ops.iter().zip(&data) {
            let label = |phase: Phase| format!("{} {} {round}", o.side.name(), phase.name());
            // Sends and receives first, while the data socket is the only
            // open one of its side (safewsk's lookup is an index into its
            // socket table, a fixed cost whatever else is open; the order
            // keeps the provider's state the same in every run).
            zero_stats();
            for _ in 0..per {
                o.transfer(false, data_socket, buf);
            }
            dump_stats(&label(Phase::Send));
            // Every byte echoed before the receives: each receive finds its
            // bytes waiting, on either side, in every run.
            sent += per * PAYLOAD as usize;
            while echoed.load(Ordering::SeqCst) < sent {
                std::thread::sleep(Duration::from_millis(1));
            }
            zero_stats();
            for _ in 0..per {
                o.transfer(true, data_socket, buf);
            }
            dump_stats(&label(Phase::Receive));
            zero_stats();
            for _ in 0..per {
                sockets.push(o.connect(&hold));
            }
            dump_stats(&label(Phase::Connect));
            // Closed last first, as before the socket handles (the handle
            // names its slot: the order changes nothing in safewsk's cost;
            // freed slots are reused first in, first out).
            zero_stats();
            while let Some(s) = sockets.pop() {
                o.close(s);
            }
            dump_stats(&label(Phase::Close));

            // Issue 20: accepts of connections already waiting, then
            // send-tos, then receive-froms of datagrams already waiting.
            let (server, listen_port, datagram_port) = servers[if o.side == Side::Safewsk { 0 } else { 1 }];
            let peers: Vec<TcpStream> =
                (0..per).map(|_| TcpStream::connect(("127.0.0.1", listen_port)).expect("connect")).collect();
            zero_stats();
            for _ in 0..per {
                sockets.push(o.accept(server));
            }
            dump_stats(&label(Phase::Accept));
            while let Some(s) = sockets.pop() {
                o.close(s);
            }
            drop(peers);
            zero_stats();
            for _ in 0..per {
                o.datagram(server, Some(&peer_addr), buf);
            }
            dump_stats(&label(Phase::SendTo));
            let mut sink = [0u8; 128];
            let mut drained = 0;
            while drained < per {
                match peer.recv_from(&mut sink) {
                    Ok(_) => drained += 1,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            for _ in 0..per {
                peer.send_to(&[7u8; PAYLOAD as usize], ("127.0.0.1", datagram_port)).expect("udp send");
            }
            zero_stats();
            for _ in 0..per {
                o.datagram(server, None, buf);
            }
            dump_stats(&label(Phase::ReceiveFrom));
        }
    }
    for (o, s) in ops.iter().zip(data) {
        o.close(s);
    }
    for (o, (server, _, _)) in ops.iter().zip(servers) {
        o.close_server(server);
    }
    drop(ops);
    drop(hand);
    // SAFETY: our block, no longer used.
    unsafe { ExFreePoolWithTag(buf, TAG) };
    common::cleanup(client);
    k.finish();
    // The servers' threads are left blocked in accept/read: the process
    // ends here.
    let _ = std::io::stdout().flush();
}
