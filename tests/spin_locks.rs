//! Issue 17, "Done when": the host-kernel counter shows 0 spin-lock
//! acquisitions by safewsk on send/receive (no client-wide lock on socket
//! calls). The host kernel counts every call of its spin-lock routines
//! (`hostkernel::spin_lock_acquisitions`, all threads: completion routines
//! run on provider threads); its own locking never goes through them.
//!
//! On 0.1 every send and every receive took the client's KSPIN_LOCK three
//! times (this test printed "send 3, receive 3"); a socket call now touches
//! only its own socket's state word.

mod common;

use common::*;
use safewsk::nt::*;

/// Spin-lock acquisitions (all threads) during `f`.
fn acquisitions(f: impl FnOnce()) -> u64 {
    let before = hostkernel::spin_lock_acquisitions();
    f();
    hostkernel::spin_lock_acquisitions() - before
}

#[test]
fn send_and_receive_take_no_spin_lock() {
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let client = startup();
    let (st, socket) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    let sent = acquisitions(|| assert_eq!(send(socket, b"ping"), (STATUS_SUCCESS, 4)));
    let mut buf = [0u8; 4];
    let received = acquisitions(|| assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 5000), (STATUS_SUCCESS, 4)));
    eprintln!("spin-lock acquisitions: send {sent}, receive {received}");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
    assert_eq!((sent, received), (0, 0), "spin-lock acquisitions by safewsk on (send, receive)");
}
