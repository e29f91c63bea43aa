//! The client block and the socket table's chunks come from ExAllocatePool2
//! when the kernel exports it and from ExAllocatePoolWithTag(NonPagedPoolNx)
//! and zeroing when it does not (Windows before 10 version 2004, Wine 8):
//! the library finds ExAllocatePool2 with MmGetSystemRoutineAddress instead
//! of importing it. Either way the client works and nothing leaks.
//!
//! Since issue 17 the client handle is an encoded value (tag byte 0xC5), not
//! the block's address; the first connect of a fresh socket table adds one
//! 4 KiB chunk of 64 socket slots, freed by the last client's cleanup.

mod common;

use common::*;
use hostkernel::{PoolAllocator, NON_PAGED_POOL_NX_TYPE};
use safewsk::nt::*;
use safewsk::*;

/// The size of a socket table chunk: 64 slots of one 64-byte cache line.
const CHUNK_SIZE: usize = 4096;

/// Startup, one connect/echo/close, cleanup; returns the client block and
/// the socket table's chunk as the host kernel saw them while the client was
/// live.
fn one_client_lifetime() -> (hostkernel::PoolBlock, hostkernel::PoolBlock) {
    let server = echo_server("127.0.0.1:0").expect("v4 loopback");
    assert_eq!(safewsk::table_usage(), (0, 0), "a fresh socket table");
    let lookups = hostkernel::system_routine_lookups();
    let client = startup();
    assert!(hostkernel::system_routine_lookups() > lookups, "ExAllocatePool2 was not looked up");
    let blocks = hostkernel::pool_blocks();
    assert_eq!(blocks.len(), 1, "one pool block per client: {blocks:?}");
    let block = blocks[0];
    assert_eq!((client as usize) >> 56, 0xC5, "the client handle is an encoded value");
    assert_ne!(block.address, client as usize, "the handle is not the block's address");
    assert_eq!(block.tag, POOL_TAG);
    assert_ne!(block.size, CHUNK_SIZE);

    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let blocks = hostkernel::pool_blocks();
    assert_eq!(blocks.len(), 2, "the client block and the table's first chunk: {blocks:?}");
    let chunk = *blocks.iter().find(|b| b.address != block.address).expect("the chunk");
    assert_eq!((chunk.size, chunk.tag), (CHUNK_SIZE, POOL_TAG));
    assert_eq!(chunk.allocator, block.allocator, "the chunk takes the client block's route");
    assert_eq!(safewsk::table_usage(), (1, 0), "one chunk; its IRP is the socket's");
    let msg = b"pool fallback";
    assert_eq!(send(socket, msg), (STATUS_SUCCESS, msg.len() as u32));
    let mut buf = [0u8; 32];
    let (st, n) = receive(socket, &mut buf[..msg.len()], WSK_FLAG_WAITALL, 2000);
    assert_eq!((st, &buf[..n as usize]), (STATUS_SUCCESS, &msg[..]));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(hostkernel::pool_blocks().len(), 2, "the chunk stays until the last cleanup");
    cleanup(client);
    assert!(hostkernel::pool_blocks().is_empty(), "the last cleanup freed the chunk");
    assert_eq!(safewsk::table_usage(), (0, 0));
    (block, chunk)
}

#[test]
fn client_block_from_allocate_pool2_when_exported() {
    let k = Session::begin();
    let (block, chunk) = one_client_lifetime();
    assert_eq!(block.allocator, PoolAllocator::Pool2 { flags: POOL_FLAG_NON_PAGED });
    assert_eq!(chunk.allocator, block.allocator);
    k.finish();
}

#[test]
fn client_block_from_allocate_pool_with_tag_nx_when_pool2_is_missing() {
    let k = Session::begin();
    hostkernel::hide_allocate_pool2(true);
    let (block, chunk) = one_client_lifetime();
    assert_eq!(block.allocator, PoolAllocator::WithTag { pool_type: NON_PAGED_POOL_NX_TYPE });
    assert_eq!(chunk.allocator, block.allocator);
    // A second client in the same session takes the same route.
    let (again, _) = one_client_lifetime();
    assert_eq!(again.allocator, block.allocator);
    k.finish();
}

/// The chunk's allocation on the fallback route failing: the connect
/// returns STATUS_INSUFFICIENT_RESOURCES before the provider is called,
/// nothing is left, and the next connect installs the chunk.
#[test]
fn fallback_chunk_allocation_failure_fails_the_connect_and_leaves_nothing() {
    let server = echo_server("127.0.0.1:0").expect("v4 loopback");
    let k = Session::begin();
    hostkernel::hide_allocate_pool2(true);
    let client = startup();
    k.fail_nth(Site::Pool, 1);
    let (st, socket) = connect(client, server, 2000);
    assert!(k.fault_hit(Site::Pool));
    assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES);
    assert!(socket.is_null());
    assert_eq!(hostkernel::provider_connect_calls(), 0, "the provider was not called");
    assert_eq!(hostkernel::pool_blocks().len(), 1, "only the client block");
    assert_eq!(safewsk::table_usage(), (0, 0), "no chunk, no IRP cached");
    k.fail_nth(Site::Pool, 0);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(safewsk::table_usage().0, 1);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
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
