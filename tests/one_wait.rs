//! One KeWaitForSingleObject per synchronous call, as the hand-written IRP
//! sequence makes (issue 12: the instruction count showed safewsk waiting a
//! second time on the already signalled event after every call with a
//! deadline: a kernel call per operation that Windows charges too).

mod common;

use common::*;
use safewsk::nt::*;

/// The waits this thread makes in `f`.
fn waits(f: impl FnOnce()) -> u64 {
    let before = hostkernel::waits_on_this_thread();
    f();
    hostkernel::waits_on_this_thread() - before
}

#[test]
fn every_synchronous_call_waits_once() {
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let client = startup();
    let mut socket = std::ptr::null_mut();
    assert_eq!(
        waits(|| {
            let (st, s) = connect(client, server, 5000);
            assert_eq!(st, STATUS_SUCCESS);
            socket = s;
        }),
        1,
        "connect with a deadline"
    );
    assert_eq!(waits(|| assert_eq!(send(socket, b"ping"), (STATUS_SUCCESS, 4))), 1, "send");
    let mut buf = [0u8; 4];
    assert_eq!(
        waits(|| assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 5000), (STATUS_SUCCESS, 4))),
        1,
        "receive"
    );
    assert_eq!(&buf, b"ping");
    let (st, s2) = connect(client, server, safewsk::SAFEWSK_NO_TIMEOUT);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(waits(|| assert_eq!(close(s2), STATUS_SUCCESS)), 1, "close (no deadline)");
    assert_eq!(waits(|| assert_eq!(close(socket), STATUS_SUCCESS)), 1, "close");
    cleanup(client);
    k.finish();
}

/// The same with SAFEWSK_NO_TIMEOUT (issue 17: a surviving mutant made a
/// call without a deadline wait a second time on its already signalled
/// event): connect, send and receive each wait exactly once.
#[test]
fn every_call_without_a_deadline_waits_once() {
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let client = startup();
    let mut socket = std::ptr::null_mut();
    assert_eq!(
        waits(|| {
            let (st, s) = connect(client, server, safewsk::SAFEWSK_NO_TIMEOUT);
            assert_eq!(st, STATUS_SUCCESS);
            socket = s;
        }),
        1,
        "connect without a deadline"
    );
    assert_eq!(
        waits(|| assert_eq!(send_with_timeout(socket, b"ping", safewsk::SAFEWSK_NO_TIMEOUT), (STATUS_SUCCESS, 4))),
        1,
        "send without a deadline"
    );
    let mut buf = [0u8; 4];
    assert_eq!(
        waits(|| assert_eq!(
            receive(socket, &mut buf, WSK_FLAG_WAITALL, safewsk::SAFEWSK_NO_TIMEOUT),
            (STATUS_SUCCESS, 4)
        )),
        1,
        "receive without a deadline"
    );
    assert_eq!(&buf, b"ping");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
