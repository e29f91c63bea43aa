//! The provider's own transport list (WskControlClient,
//! WSK_TRANSPORT_LIST_QUERY), queried once at startup into a fixed array in
//! the client block, so that a connect's SocketType, Protocol and address
//! family are checked against what this provider offers as well as against
//! the library's fixed table (src/validate.rs: SOCK_STREAM / IPPROTO_TCP
//! over AF_INET or AF_INET6, which stays: what the library does not support
//! is refused whatever the provider lists).
//!
//! Microsoft Learn, "WSK_TRANSPORT_LIST_QUERY": InputSize 0, InputBuffer
//! NULL, OutputBuffer an array of WSK_TRANSPORT, OutputSizeReturned the
//! bytes copied, "the Irp parameter must be NULL"; a buffer too small makes
//! the call return STATUS_BUFFER_OVERFLOW. The list is written once, before
//! the client is published, and only read afterwards: no lock.
//!
//! If the query fails (Wine 8's WskControlClient is a stub returning
//! STATUS_NOT_IMPLEMENTED), reports nothing, or the list does not fit in
//! [`CAPACITY`] entries, the library falls back to its fixed table alone and
//! says so once with DbgPrint (at startup).

use core::mem::size_of;
use core::ptr;

use crate::kernel::report::{report_values, SAFEWSK_REPORT_NO_TRANSPORT_LIST};
use crate::nt::*;

/// Entries kept. Windows lists a handful (TCP, UDP and raw over IPv4 and
/// IPv6); 32 leaves room for other providers' entries.
const CAPACITY: usize = 32;

const ZERO_GUID: GUID = GUID { Data1: 0, Data2: 0, Data3: 0, Data4: [0; 8] };
const EMPTY: WSK_TRANSPORT =
    WSK_TRANSPORT { Version: 0, SocketType: 0, Protocol: 0, AddressFamily: 0, ProviderId: ZERO_GUID };

/// The provider's transport list, or nothing known (fixed table only).
pub struct Transports {
    list: [WSK_TRANSPORT; CAPACITY],
    /// Entries of `list` in use; `None`: the provider's list is not known.
    count: Option<usize>,
}

impl Transports {
    /// Nothing known yet.
    pub const fn unknown() -> Transports {
        Transports { list: [EMPTY; CAPACITY], count: None }
    }

    /// Queries the provider's list. On any failure the list stays unknown
    /// and the reason is reported with DbgPrint.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `provider` is a captured provider NPI.
    pub unsafe fn query(&mut self, provider: &WSK_PROVIDER_NPI) {
        self.count = None;
        // SAFETY: a captured NPI's dispatch table is valid until released.
        let Some(f) = (unsafe { (*provider.Dispatch).WskControlClient }) else {
            report_values(SAFEWSK_REPORT_NO_TRANSPORT_LIST, STATUS_NOT_SUPPORTED, 0, 0, 0);
            return;
        };
        let mut returned: SIZE_T = 0;
        // SAFETY: the parameters "WSK_TRANSPORT_LIST_QUERY" specifies; the
        // output array and the size variable live across the call; NULL IRP.
        let status = unsafe {
            f(
                provider.Client,
                WSK_TRANSPORT_LIST_QUERY,
                0,
                ptr::null_mut(),
                size_of::<[WSK_TRANSPORT; CAPACITY]>(),
                self.list.as_mut_ptr().cast(),
                &mut returned,
                ptr::null_mut(),
            )
        };
        let n = returned / size_of::<WSK_TRANSPORT>();
        if status != STATUS_SUCCESS || n == 0 || n > CAPACITY || returned % size_of::<WSK_TRANSPORT>() != 0 {
            report_values(
                SAFEWSK_REPORT_NO_TRANSPORT_LIST,
                status,
                0,
                ULONG::try_from(returned).unwrap_or(ULONG::MAX),
                0,
            );
            self.list = [EMPTY; CAPACITY];
            return;
        }
        self.count = Some(n);
    }

    fn entries(&self) -> Option<&[WSK_TRANSPORT]> {
        self.count.and_then(|n| self.list.get(..n))
    }

    /// Checks SocketType (parameter 2) and Protocol (3) against the list:
    /// no entry of that type is _2, none of that type and protocol is _3.
    /// Unknown list: Ok.
    pub fn check_type_protocol(&self, socket_type: USHORT, protocol: ULONG) -> Result<(), NTSTATUS> {
        let Some(list) = self.entries() else { return Ok(()) };
        if !list.iter().any(|t| t.SocketType == socket_type) {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        if !list.iter().any(|t| t.SocketType == socket_type && protocol_matches(t, protocol)) {
            return Err(STATUS_INVALID_PARAMETER_3);
        }
        Ok(())
    }

    /// Checks the family of LocalAddress (parameter 4): no entry of that
    /// type, protocol and family is _4. Unknown list: Ok.
    pub fn check_family(&self, socket_type: USHORT, protocol: ULONG, family: ADDRESS_FAMILY) -> Result<(), NTSTATUS> {
        let Some(list) = self.entries() else { return Ok(()) };
        if list
            .iter()
            .any(|t| t.SocketType == socket_type && protocol_matches(t, protocol) && t.AddressFamily == family)
        {
            Ok(())
        } else {
            Err(STATUS_INVALID_PARAMETER_4)
        }
    }
}

/// Whether `t` offers `protocol`. An entry with Protocol 0 is taken to mean
/// the type's default protocol and matches any: the WSK_TRANSPORT page does
/// not say that a provider lists TCP as IPPROTO_TCP rather than 0, and a
/// connect refused on Windows for a listing detail would be worse than one
/// checked by the fixed table alone.
fn protocol_matches(t: &WSK_TRANSPORT, protocol: ULONG) -> bool {
    t.Protocol == protocol || t.Protocol == 0
}
