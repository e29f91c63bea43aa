//! WskControlClient: WSK_CACHE_SD, WSK_RELEASE_SD and
//! WSK_TRANSPORT_LIST_QUERY, with the contract checks of Microsoft Learn's
//! pages of the same names and "PFN_WSK_CONTROL_CLIENT":
//! - each of the three takes a NULL IRP ("The Irp parameter must be NULL for
//!   this client control operation") and the sizes the pages give:
//!   WSK_CACHE_SD InputSize = OutputSize = sizeof(PSECURITY_DESCRIPTOR),
//!   OutputSizeReturned NULL; WSK_RELEASE_SD InputSize =
//!   sizeof(PSECURITY_DESCRIPTOR), no output; WSK_TRANSPORT_LIST_QUERY no
//!   input, an array of WSK_TRANSPORT out and OutputSizeReturned, with
//!   STATUS_BUFFER_OVERFLOW (and the size needed) when it does not fit;
//! - a cached copy is the provider's own allocation, counted as a live
//!   object until released: one not released by the end of a test is a leak;
//!   equal descriptors share one cached copy with a reference count (Windows
//!   caches security descriptors by content), so each WSK_CACHE_SD needs its
//!   own WSK_RELEASE_SD;
//! - releasing a pointer that is not a cached copy (never cached, released
//!   already) is a violation, and so is releasing one while a WskSocketConnect
//!   IRP given it has not completed ("PFN_WSK_SOCKET_CONNECT": "must not
//!   release the cached copy ... until after the IRP ... is completed");
//! - WskSocketConnect with a SecurityDescriptor that is not a cached copy is
//!   a violation ("a cached copy of a security descriptor that was obtained
//!   by calling the WskControlClient function with the WSK_CACHE_SD control
//!   code").
//!
//! The transport list is what Windows reports for the TCP/IP stack: TCP,
//! UDP and raw over AF_INET and AF_INET6 (WSK_TRANSPORT: SocketType,
//! Protocol, AddressFamily, ProviderId). Test controls: each control code can
//! be made to fail with a given status (or to claim success without doing
//! anything), and the list can be replaced (shrunk).
//!
//! No mode "never completes": without an IRP these calls are synchronous;
//! a provider that blocked inside one would block its caller, which no
//! client can bound.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::check::{add_live, violation, Kind};
use crate::irql;
use crate::nt::*;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 23;
/// MSAFD Tcpip's provider GUID, {E70F1AA0-AB8B-11CF-8CA3-00805F48A192}.
const TCPIP_PROVIDER: [u8; 16] =
    [0xA0, 0x1A, 0x0F, 0xE7, 0x8B, 0xAB, 0xCF, 0x11, 0x8C, 0xA3, 0x00, 0x80, 0x5F, 0x48, 0xA1, 0x92];
/// sizeof(WSK_TRANSPORT) on x64.
const TRANSPORT_SIZE: usize = 28;
/// Bytes of a SECURITY_DESCRIPTOR (absolute form, x64) copied into the cache.
const SD_SIZE: usize = 40;

struct Cached {
    copy: Box<[u8; SD_SIZE]>,
    refs: u32,
    /// WskSocketConnect IRPs given this copy and not completed.
    in_flight: u32,
}

#[derive(Default)]
struct State {
    /// Cached copies by address.
    cached: HashMap<usize, Cached>,
    fail: HashMap<u32, NTSTATUS>,
    transports: Option<Vec<(u16, u16, u32)>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

/// Session start: no cached copies (a leak of the previous test was
/// reported by its own finish), no failures, the default list.
pub(crate) fn reset() {
    state(|s| *s = State::default());
}

/// Makes WskControlClient with `code` (WSK_CACHE_SD, WSK_RELEASE_SD,
/// WSK_TRANSPORT_LIST_QUERY) return `status` without doing anything (a
/// success status then claims success with no output); None restores it.
pub fn set_client_control_fails(code: u32, status: Option<NTSTATUS>) {
    state(|s| match status {
        Some(st) => {
            s.fail.insert(code, st);
        }
        None => {
            s.fail.remove(&code);
        }
    });
}

/// Replaces the transport list with (AddressFamily, SocketType, Protocol)
/// entries; None restores the default (TCP, UDP, raw over IPv4 and IPv6).
pub fn set_transport_list(list: Option<Vec<(u16, u16, u32)>>) {
    state(|s| s.transports = list);
}

/// Cached copies outstanding (counting references).
pub fn cached_sd_count() -> usize {
    state(|s| s.cached.values().map(|c| c.refs as usize).sum())
}

fn default_list() -> Vec<(u16, u16, u32)> {
    let mut v = Vec::new();
    for af in [AF_INET, AF_INET6] {
        v.push((af, SOCK_STREAM, IPPROTO_TCP));
        v.push((af, SOCK_DGRAM, IPPROTO_UDP));
        v.push((af, SOCK_RAW, 0));
    }
    v
}

/// A WskSocketConnect's use of its SecurityDescriptor, until dropped (when
/// the connect's work is done, before its IRP completes).
pub(crate) struct SdUse(usize);

impl Drop for SdUse {
    fn drop(&mut self) {
        state(|s| {
            if let Some(c) = s.cached.get_mut(&self.0) {
                c.in_flight = c.in_flight.saturating_sub(1);
            }
        });
    }
}

/// WskSocketConnect's check of its SecurityDescriptor.
pub(crate) fn connect_uses(sd: PVOID) -> Option<SdUse> {
    if sd.is_null() {
        return None;
    }
    let key = sd as usize;
    let known = state(|s| match s.cached.get_mut(&key) {
        Some(c) => {
            c.in_flight += 1;
            true
        }
        None => false,
    });
    if known {
        Some(SdUse(key))
    } else {
        violation(format!(
            "WskSocketConnect with SecurityDescriptor {sd:p}, which is not a cached copy from \
             WskControlClient(WSK_CACHE_SD) (never cached, or released)"
        ));
        None
    }
}

pub(crate) unsafe extern "system" fn wsk_control_client(
    client: PVOID,
    code: u32,
    input_size: usize,
    input: PVOID,
    output_size: usize,
    output: PVOID,
    output_returned: *mut usize,
    irp: PVOID,
) -> NTSTATUS {
    if irql::current() > DISPATCH_LEVEL {
        violation("WskControlClient above DISPATCH_LEVEL");
    }
    if !crate::wsk::regs(|r| r.contains(&(client as usize))) {
        violation(format!("WskControlClient: {client:p} is not a captured WSK_CLIENT"));
        return STATUS_INVALID_PARAMETER;
    }
    if !irp.is_null() && matches!(code, WSK_CACHE_SD | WSK_RELEASE_SD | WSK_TRANSPORT_LIST_QUERY) {
        violation(format!("WskControlClient({code}) with an IRP: the Irp parameter must be NULL"));
        return STATUS_INVALID_PARAMETER;
    }
    if let Some(st) = state(|s| s.fail.get(&code).copied()) {
        return st;
    }
    match code {
        WSK_CACHE_SD => {
            let ptr_size = std::mem::size_of::<PVOID>();
            if input_size != ptr_size || input.is_null() || output_size != ptr_size || output.is_null() {
                violation("WskControlClient(WSK_CACHE_SD): InputSize/OutputSize must be sizeof(PSECURITY_DESCRIPTOR) with both buffers");
                return STATUS_INVALID_PARAMETER;
            }
            if !output_returned.is_null() {
                violation("WskControlClient(WSK_CACHE_SD): OutputSizeReturned must be NULL");
            }
            // SAFETY: a PSECURITY_DESCRIPTOR variable (size checked above).
            let sd: PVOID = unsafe { rd(input, 0) };
            if sd.is_null() {
                return STATUS_INVALID_PARAMETER;
            }
            let mut copy = Box::new([0u8; SD_SIZE]);
            // SAFETY: the caller's SECURITY_DESCRIPTOR, SD_SIZE readable bytes
            // (the absolute form on x64), read at the caller's IRQL.
            unsafe { std::ptr::copy_nonoverlapping(sd.cast::<u8>(), copy.as_mut_ptr(), SD_SIZE) };
            if copy[0] != 1 {
                return STATUS_INVALID_PARAMETER;
            }
            let key = state(|s| {
                if let Some((k, c)) = s.cached.iter_mut().find(|(_, c)| *c.copy == *copy) {
                    c.refs += 1;
                    return *k;
                }
                let k = copy.as_ptr() as usize;
                s.cached.insert(k, Cached { copy, refs: 1, in_flight: 0 });
                k
            });
            add_live(Kind::CachedSd, 1);
            // SAFETY: the caller's PSECURITY_DESCRIPTOR variable (size checked).
            unsafe { wr(output, 0, key) };
            STATUS_SUCCESS
        }
        WSK_RELEASE_SD => {
            if input_size != std::mem::size_of::<PVOID>() || input.is_null() || output_size != 0 || !output.is_null() {
                violation(
                    "WskControlClient(WSK_RELEASE_SD): InputSize must be sizeof(PSECURITY_DESCRIPTOR), no output",
                );
                return STATUS_INVALID_PARAMETER;
            }
            // SAFETY: a PSECURITY_DESCRIPTOR variable (size checked above).
            let key: usize = unsafe { rd(input, 0) };
            let outcome = state(|s| {
                let c = s.cached.get_mut(&key)?;
                let busy = c.in_flight > 0 && c.refs == 1;
                c.refs -= 1;
                if c.refs == 0 {
                    s.cached.remove(&key);
                }
                Some(busy)
            });
            match outcome {
                None => {
                    violation(format!(
                        "WskControlClient(WSK_RELEASE_SD) of {key:#x}: not a cached security descriptor \
                         (released twice, or never cached)"
                    ));
                    STATUS_INVALID_PARAMETER
                }
                Some(busy) => {
                    if busy {
                        violation(format!(
                            "WSK_RELEASE_SD of {key:#x} while a WskSocketConnect IRP using it has not completed"
                        ));
                    }
                    add_live(Kind::CachedSd, -1);
                    STATUS_SUCCESS
                }
            }
        }
        WSK_TRANSPORT_LIST_QUERY => {
            if input_size != 0 || !input.is_null() || output_returned.is_null() {
                violation("WskControlClient(WSK_TRANSPORT_LIST_QUERY): no input, and OutputSizeReturned is required");
                return STATUS_INVALID_PARAMETER;
            }
            let list = state(|s| s.transports.clone()).unwrap_or_else(default_list);
            let needed = list.len() * TRANSPORT_SIZE;
            // SAFETY: the caller's SIZE_T variable (non-null, checked).
            unsafe { *output_returned = needed };
            if output.is_null() || output_size < needed {
                return STATUS_BUFFER_OVERFLOW;
            }
            let mut bytes = Vec::with_capacity(needed);
            for (af, ty, proto) in &list {
                // WSK_TRANSPORT: Version 0, SocketType 2, Protocol 4,
                // AddressFamily 8, padding 10, ProviderId 12.
                bytes.extend_from_slice(&2u16.to_le_bytes());
                bytes.extend_from_slice(&ty.to_le_bytes());
                bytes.extend_from_slice(&proto.to_le_bytes());
                bytes.extend_from_slice(&af.to_le_bytes());
                bytes.extend_from_slice(&[0, 0]);
                bytes.extend_from_slice(&TCPIP_PROVIDER);
            }
            // SAFETY: `output` has `needed` (== bytes.len()) writable bytes
            // (checked above).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), output.cast::<u8>(), bytes.len()) };
            STATUS_SUCCESS
        }
        _ => {
            violation(format!("WskControlClient: control code {code} is not emulated"));
            STATUS_NOT_IMPLEMENTED
        }
    }
}
