//! SAFEWSK_NO_TIMEOUT ("`TimeoutMs` value for no deadline") on the
//! synchronous calls: the wait must reach KeWaitForSingleObject as an
//! infinite one (NULL timeout), not as a finite 0xFFFFFFFF ms (49.7 days,
//! after which the call would be cancelled and fail with STATUS_IO_TIMEOUT).
//! The host kernel records the longest finite timeout it was given.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use common::*;
use safewsk::nt::*;
use safewsk::*;

#[test]
fn no_timeout_is_an_infinite_wait_on_every_synchronous_call() {
    let k = Session::begin();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    // Answers 150 ms after the request, so that the receive really waits.
    let h = thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut b = [0u8; 4];
        s.read_exact(&mut b).expect("read");
        thread::sleep(Duration::from_millis(150));
        s.write_all(b"pong").expect("write");
        s
    });
    let client = startup();
    let (st, socket) = connect(client, server, SAFEWSK_NO_TIMEOUT);
    assert_eq!(st, STATUS_SUCCESS);
    let mut n = 0u32;
    // SAFETY: a 4-byte buffer on this stack; any socket handle value is safe.
    let st = unsafe { SafeWskSend(socket, b"ping".as_ptr().cast(), 4, 0, SAFEWSK_NO_TIMEOUT, &mut n) };
    assert_eq!((st, n), (STATUS_SUCCESS, 4));
    let mut buf = [0u8; 4];
    let (st, n) = receive(socket, &mut buf, WSK_FLAG_WAITALL, SAFEWSK_NO_TIMEOUT);
    assert_eq!((st, n, &buf), (STATUS_SUCCESS, 4, b"pong"));
    let mut addr = [0u8; 28];
    // SAFETY: as above; a 28-byte buffer.
    let st = unsafe { SafeWskGetRemoteAddress(socket, addr.as_mut_ptr().cast(), 28, SAFEWSK_NO_TIMEOUT) };
    assert_eq!(st, STATUS_SUCCESS);
    // SAFETY: as above.
    assert_eq!(unsafe { SafeWskDisconnect(socket, 0, SAFEWSK_NO_TIMEOUT) }, STATUS_SUCCESS);
    let longest = hostkernel::longest_finite_wait();
    assert!(
        longest < Duration::from_secs(60),
        "a wait with SAFEWSK_NO_TIMEOUT was given a finite timeout of {longest:?}"
    );
    assert_eq!(close(socket), STATUS_SUCCESS);
    drop(h.join().expect("server"));
    cleanup(client);
    k.finish();
}
