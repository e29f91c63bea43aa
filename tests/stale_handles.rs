//! Issue 17: a socket handle that outlived its socket can never act on
//! another socket, even when the provider gives the new socket the freed
//! WSK_SOCKET block of the old one (`hostkernel::set_reuse_socket_addresses`:
//! Windows' pool may do exactly that). On 0.1, which identified sockets by
//! their WSK_SOCKET address, the second close below ended the new socket and
//! the stale send went down it.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;
use safewsk::nt::*;
use safewsk::*;

/// A server that echoes and records every byte each connection sends, in
/// accept order.
fn recording_server() -> (std::net::SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let index = {
                let mut r = record.lock().unwrap();
                r.push(Vec::new());
                r.len() - 1
            };
            let record = record.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 256];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            record.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn a_stale_handle_whose_wsk_socket_was_given_to_a_new_socket_is_refused() {
    let k = Session::begin();
    hostkernel::set_reuse_socket_addresses(true);
    let (server, seen) = recording_server();
    let client = startup();
    let (st, stale) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(stale), STATUS_SUCCESS);
    let (st, fresh) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_ne!(fresh, stale, "a new socket gets a new handle");
    // The stale handle: every call refused, the provider never called.
    let calls_before = hostkernel::provider_connect_calls();
    assert_eq!(close(stale), STATUS_INVALID_PARAMETER_1, "a second close");
    assert_eq!(send(stale, b"stale").0, STATUS_INVALID_PARAMETER_1, "a send after close");
    let mut buf = [0u8; 8];
    assert_eq!(receive(stale, &mut buf, 0, 100).0, STATUS_INVALID_PARAMETER_1);
    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { SafeWskDisconnect(stale, WSK_FLAG_ABORTIVE, 100) }, STATUS_INVALID_PARAMETER_1);
    assert_eq!(hostkernel::provider_connect_calls(), calls_before);
    // The new socket is unaffected: open, and its peer saw only its bytes.
    assert_eq!(send(fresh, b"ping"), (STATUS_SUCCESS, 4));
    assert_eq!(receive(fresh, &mut buf[..4], WSK_FLAG_WAITALL, 5000), (STATUS_SUCCESS, 4));
    assert_eq!(&buf[..4], b"ping");
    assert_eq!(close(fresh), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "two connections");
    assert_eq!(seen[1], b"ping", "the new socket's peer got only the new socket's bytes");
    assert!(seen[0].is_empty(), "the old socket sent nothing");
}

/// The stale handle's own slot given to a new socket (the slot's next
/// generation): first in, first out, so it comes back after every other free
/// slot of the chunk; the handle's generation no longer matches.
#[test]
fn a_stale_handle_whose_slot_serves_a_new_socket_is_refused() {
    let k = Session::begin();
    let (server, seen) = recording_server();
    let client = startup();
    let (st, stale) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(stale), STATUS_SUCCESS);
    let slot_of = |h: *mut SAFEWSK_SOCKET| h as usize & 0xFFFF;
    let mut open = Vec::new();
    let reused = loop {
        let (st, h) = connect(client, server, 5000);
        assert_eq!(st, STATUS_SUCCESS);
        open.push(h);
        if slot_of(h) == slot_of(stale) {
            break h;
        }
        assert!(open.len() < 200, "the stale handle's slot never came back");
    };
    eprintln!("slot {} came back after {} other sockets", slot_of(stale), open.len() - 1);
    assert!(open.len() > 1, "a slot just freed is not the next one handed out");
    assert_ne!(reused, stale, "same slot, another generation");
    assert_eq!(send(stale, b"stale").0, STATUS_INVALID_PARAMETER_1);
    assert_eq!(close(stale), STATUS_INVALID_PARAMETER_1);
    assert_eq!(send(reused, b"mine"), (STATUS_SUCCESS, 4), "the socket in the slot is unaffected");
    let mut buf = [0u8; 4];
    assert_eq!(receive(reused, &mut buf, WSK_FLAG_WAITALL, 5000), (STATUS_SUCCESS, 4));
    for h in open {
        assert_eq!(close(h), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|bytes| bytes.is_empty() || bytes == b"mine"), "no stale bytes reached a peer");
}

/// Forged values: refused by every socket call, at every IRQL, without a
/// crash; nothing leaked.
#[test]
fn forged_socket_handles_are_refused() {
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let client = startup();
    let (st, real) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut heap = Box::new([0u8; 256]);
    let forged: Vec<*mut SAFEWSK_SOCKET> = vec![
        std::ptr::null_mut(),
        usize::MAX as *mut SAFEWSK_SOCKET,
        0x1234_5678_9abc_def0_usize as *mut SAFEWSK_SOCKET,
        heap.as_mut_ptr().cast(),
        client.cast(),
        // The real handle with another generation, another slot, another
        // epoch, and beyond the installed chunks.
        (real as usize ^ (1 << 16)) as *mut SAFEWSK_SOCKET,
        (real as usize ^ 1) as *mut SAFEWSK_SOCKET,
        (real as usize ^ (1 << 40)) as *mut SAFEWSK_SOCKET,
        (real as usize | 0xFFC0) as *mut SAFEWSK_SOCKET,
    ];
    for &h in &forged {
        for irql in [PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, 15] {
            let (st, _) = hostkernel::with_irql(irql, || {
                let mut n = 0u32;
                let mut b = [0u8; 4];
                // SAFETY: any handle value is safe; the buffers are live.
                let st = unsafe { SafeWskSend(h, b.as_ptr().cast(), 4, 0, 100, &mut n) };
                // SAFETY: as above.
                let st2 = unsafe { SafeWskReceive(h, b.as_mut_ptr().cast(), 4, 0, 100, &mut n) };
                assert_eq!(st, st2);
                (st, ())
            });
            assert_eq!(st, STATUS_INVALID_PARAMETER_1, "handle {h:p} at IRQL {irql}");
        }
        assert_eq!(close(h), STATUS_INVALID_PARAMETER_1, "close of {h:p}");
        // SAFETY: any handle value is safe.
        assert_eq!(unsafe { SafeWskEnableCallbacks(h, WSK_EVENT_RECEIVE) }, STATUS_INVALID_PARAMETER_1);
    }
    assert_eq!(send(real, b"ok"), (STATUS_SUCCESS, 2), "the real socket is unaffected");
    assert_eq!(close(real), STATUS_SUCCESS);
    cleanup(client);
    // After the client's cleanup (the last: the table is freed) its
    // socket's handle, and the client's, are refused too.
    assert_eq!(close(real), STATUS_INVALID_PARAMETER_1);
    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_INVALID_PARAMETER_1);
    k.finish();
}

/// A client handle passed where a socket is expected, and the other way
/// round; and a new client (same client slot, next generation) refuses the
/// old client's handle and socket handles.
#[test]
fn handles_of_a_cleaned_up_client_never_match_the_next_one() {
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let old_client = startup();
    let (st, old_socket) = connect(old_client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    cleanup(old_client); // closes old_socket
    let client = startup();
    assert_ne!(client, old_client, "the next generation of the client slot");
    let (st, socket) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(old_socket), STATUS_INVALID_PARAMETER_1, "an old epoch's handle");
    let (st, _) = connect(old_client, server, 5000);
    assert_eq!(st, STATUS_INVALID_PARAMETER_1, "the old client's handle");
    let (st, _) = connect(socket.cast(), server, 5000);
    assert_eq!(st, STATUS_INVALID_PARAMETER_1, "a socket handle as a client");
    assert_eq!(close(client.cast()), STATUS_INVALID_PARAMETER_1, "a client handle as a socket");
    assert_eq!(send(socket, b"ok"), (STATUS_SUCCESS, 2));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
