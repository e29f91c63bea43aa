//! hostkernel: a Linux implementation of exactly the NT and WSK kernel
//! surface that safewsk and its C sample use, under the same C symbol names
//! (IoAllocateIrp, KeWaitForSingleObject, WskRegister, ...), on top of real
//! Linux sockets and threads.
//!
//! It checks the contracts the way Driver Verifier would: leaked IRPs, pool,
//! MDLs, sockets and registrations; IRPs freed while pending, freed twice,
//! completed twice or written after free; waits above APC_LEVEL; WSK IRPs
//! without a proper completion routine; deregistering with sockets open;
//! MDLs: MmBuildMdlForNonPagedPool over paged pool or a stack, WSK buffers
//! neither locked nor non-paged, pages left locked, unlocks of unlocked MDLs,
//! an MmInitializeMdl header whose Size is not the one the macro sets.
//! What Windows permits but rarely does can be made certain: a new socket at
//! the address of the last one freed ([`set_reuse_socket_addresses`]), a
//! cancellation that takes effect late ([`CancelBehaviour::Held`]), a call
//! held at a given point ([`hold_calls`]), a deadline passing now
//! ([`expire_wait_of`], [`expire_timers`]). Spin-lock acquisitions and timer
//! calls by driver code are counted ([`spin_lock_acquisitions`],
//! [`timer_counts`]).
//! Paged pool can be paged out ([`page_out`]) to prove a driver locks it.
//! Violations are recorded and fail the test at [`Session::finish`]; with
//! `HOSTKERNEL_BUGCHECK=1` in the environment the process aborts at once,
//! like a bugcheck.
//!
//! A test and demo component: it is never linked into a Windows driver.

// The exported functions are the NT/WSK routines; their safety contracts are
// Microsoft's documentation of each routine, not repeated here.
#![allow(clippy::missing_safety_doc)]
// missing_docs (a workspace lint, meant for safewsk's public API): this is a
// test component whose items mirror the WDK's declarations and are documented
// there; not a public API.
#![allow(missing_docs)]

pub mod check;
mod event;
pub mod hard_fault;
pub mod hold;
pub mod image;
pub mod io;
pub mod irql;
pub mod nt;
pub mod rtl;
pub mod spin_lock;
pub mod sysroutine;
mod thread;
pub mod timer;
pub mod wsk;
pub mod wsk_abort_delay;
pub mod wsk_client_control;
pub mod wsk_close_delay;
pub mod wsk_control;
pub mod wsk_control_more;
pub mod wsk_events;
pub mod wsk_in_call;
pub mod wsk_name;
pub mod wsk_reuse;
pub mod wsk_servers;

pub use check::{allocations, live, provider_connect_calls, violations, Allocations, Live, Session, Site};
pub use event::{expire_wait_of, longest_finite_wait, waiters_on, waits_on_this_thread};
pub use hard_fault::set_page_in_delay;
pub use hold::{calls_held, hold_calls, release_calls, wait_calls_held, HoldPoint};
pub use image::{set_delay_after_signal, test_device, unload_image};
pub use io::{page_in, page_out, pool_blocks, PoolAllocator, PoolBlock, NON_PAGED_POOL_NX_TYPE, UNINITIALIZED_POOL};
pub use irql::with_irql;
pub use rtl::{
    dbgprint_visible, registry_clear, registry_set_dword, services_key, set_dbgprint_mask, take_all_dbgprint_log,
    take_dbgprint_log, wait_for_dbgprint,
};
pub use spin_lock::{spin_lock_acquisitions, spin_lock_acquisitions_on_this_thread};
pub use sysroutine::{hide_allocate_pool2, system_routine_lookups};
pub use timer::{expire_timers, set_cancel_timer_like_wine, timer_counts, TimerCounts};
pub use wsk::{
    provider_ready_after, release_held_cancels, requests_in_flight, set_address_query_hangs, set_cancel_behaviour,
    set_connect_completion, set_connect_error, set_fail_without_completing, set_graceful_disconnect_hangs,
    set_provider_ignores_cancel, set_provider_ready, CancelBehaviour, ConnectCompletion,
};
pub use wsk_abort_delay::set_abortive_disconnect_delay;
pub use wsk_client_control::{cached_sd_count, set_client_control_fails, set_transport_list};
pub use wsk_close_delay::set_close_delay;
pub use wsk_control::{set_call_fault, socket_fd, CallFault, WskCall};
pub use wsk_events::{indications_released, indications_retained};
pub use wsk_in_call::{calls_in_progress, set_control_delay, set_release_delay};
pub use wsk_name::{
    address_lists_live, resolver_calls, set_resolver_answer, set_resolver_delay, set_resolver_error, set_resolver_hangs,
};
pub use wsk_reuse::set_reuse_socket_addresses;
