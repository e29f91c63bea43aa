//! The client block comes from ExAllocatePool2 when the kernel exports it and
//! from ExAllocatePoolWithTag(NonPagedPoolNx) + zeroing when it does not
//! (Windows before 10 version 2004, Wine 8): the library finds
//! ExAllocatePool2 with MmGetSystemRoutineAddress instead of importing it.
//! Either way the client works and nothing leaks.

mod common;

use common::*;
use hostkernel::{PoolAllocator, NON_PAGED_POOL_NX_TYPE};
use safewsk::nt::*;
use safewsk::*;

/// Startup, one connect/echo/close, cleanup; returns the client block as the
/// host kernel saw it while the client was live.
fn one_client_lifetime() -> hostkernel::PoolBlock {
    let server = echo_server("127.0.0.1:0").expect("v4 loopback");
    let lookups = hostkernel::system_routine_lookups();
    let client = startup();
    assert!(hostkernel::system_routine_lookups() > lookups, "ExAllocatePool2 was not looked up");
    let blocks = hostkernel::pool_blocks();
    assert_eq!(blocks.len(), 1, "one pool block per client: {blocks:?}");
    let block = blocks[0];
    assert_eq!(block.address, client as usize);
    assert_eq!(block.tag, POOL_TAG);
    assert_eq!(block.size, std::mem::size_of::<SAFEWSK_CLIENT>());

    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let msg = b"pool fallback";
    assert_eq!(send(socket, msg), (STATUS_SUCCESS, msg.len() as u32));
    let mut buf = [0u8; 32];
    let (st, n) = receive(socket, &mut buf[..msg.len()], WSK_FLAG_WAITALL, 2000);
    assert_eq!((st, &buf[..n as usize]), (STATUS_SUCCESS, &msg[..]));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    assert!(hostkernel::pool_blocks().is_empty());
    block
}

#[test]
fn client_block_from_allocate_pool2_when_exported() {
    let k = Session::begin();
    let block = one_client_lifetime();
    assert_eq!(block.allocator, PoolAllocator::Pool2 { flags: POOL_FLAG_NON_PAGED });
    k.finish();
}

#[test]
fn client_block_from_allocate_pool_with_tag_nx_when_pool2_is_missing() {
    let k = Session::begin();
    hostkernel::hide_allocate_pool2(true);
    let block = one_client_lifetime();
    assert_eq!(block.allocator, PoolAllocator::WithTag { pool_type: NON_PAGED_POOL_NX_TYPE });
    // A second client in the same session takes the same route.
    let again = one_client_lifetime();
    assert_eq!(again.allocator, block.allocator);
    k.finish();
}

#[test]
fn fallback_allocation_failure_is_reported_and_leaves_nothing() {
    let k = Session::begin();
    hostkernel::hide_allocate_pool2(true);
    k.fail_nth(Site::Pool, 1);
    let mut client = std::ptr::null_mut();
    // SAFETY: valid out pointer; PASSIVE_LEVEL.
    let st = unsafe { SafeWskStartup(dev(), 0, &mut client) };
    assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES);
    assert!(client.is_null());
    assert!(k.fault_hit(Site::Pool));
    k.finish();
}
