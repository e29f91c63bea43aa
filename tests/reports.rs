//! Issue 18, item 4: diagnostics a stock Windows shows.
//!
//! Every report the library can make (SAFEWSK_REPORT_OVERDUE, _UNCONSUMED,
//! _CLEANUP_WAITING, _CLOSE_WAITING, _CLEANUP_CLOSING, _ORPHAN,
//! _FORGOTTEN_SD, _NO_TRANSPORT_LIST) is delivered to the callback set with
//! SafeWskSetReportCallback with its documented fields, and printed with
//! DbgPrintEx(DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL), which the host
//! kernel's filter — a stock Windows' (component mask 0, system mask 1) —
//! shows; plain DbgPrint (DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL) it does not.
//! The debugger lines are rate-limited (10 a second, then a "left out"
//! line); the callback gets every report.
//!
//! The rate limit is process-wide: each test that counts lines starts a
//! fresh window first (`fresh_report_window`, 1.1 s).

mod common;
mod issue18;

use std::ffi::c_char;
use std::ptr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use issue18::*;
use safewsk::nt::*;
use safewsk::*;

/// dpfilter.h: DPFLTR_IHVNETWORK_ID, DPFLTR_DEFAULT_ID; the levels.
const DPFLTR_IHVNETWORK_ID: u32 = 80;
const DPFLTR_DEFAULT_ID: u32 = 101;
const DPFLTR_ERROR_LEVEL: u32 = 0;
const DPFLTR_WARNING_LEVEL: u32 = 1;
const DPFLTR_INFO_LEVEL: u32 = 3;

extern "C" {
    // The host kernel's DbgPrint and DbgPrintEx (hostkernel/src/dbgprint.c).
    fn DbgPrint(format: *const c_char, ...) -> u32;
    fn DbgPrintEx(component: u32, level: u32, format: *const c_char, ...) -> u32;
}

/// The visible debugger lines that contain `needle`.
fn visible_with(lines: &[String], needle: &str) -> Vec<String> {
    lines.iter().filter(|l| l.contains(needle)).cloned().collect()
}

/// Asserts that `line` is among the lines printed and that the filter
/// marked it visible.
fn assert_visible(all: &[(String, bool)], needle: &str) {
    let found: Vec<_> = all.iter().filter(|(l, _)| l.contains(needle)).collect();
    assert!(!found.is_empty(), "a debugger line with {needle:?} in {all:#?}");
    for (l, visible) in found {
        assert!(*visible, "shown at the default mask (DbgPrintEx, IHVNETWORK, ERROR): {l:?}");
    }
}

/// Plain DbgPrint is filtered out on a stock machine (it is
/// DbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL), and the default masks
/// only pass the error level): the old reports, made with DbgPrint, were
/// silent. DbgPrintEx at the error level is shown; a debugger that sets the
/// DEFAULT component's mask (the Debug Print Filter key) sees DbgPrint.
#[test]
fn plain_dbgprint_is_not_shown_at_the_default_mask_and_the_error_level_is() {
    let k = Session::begin();
    let _ = hostkernel::take_all_dbgprint_log();
    assert!(!hostkernel::dbgprint_visible(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL));
    assert!(hostkernel::dbgprint_visible(DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL));
    assert!(!hostkernel::dbgprint_visible(DPFLTR_IHVNETWORK_ID, DPFLTR_WARNING_LEVEL));
    // SAFETY: NUL-terminated formats without conversions.
    unsafe {
        DbgPrint(c"plain DbgPrint line\n".as_ptr());
    }
    // SAFETY: as above.
    unsafe {
        DbgPrintEx(DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL, c"error-level line\n".as_ptr());
    }
    // SAFETY: as above.
    unsafe {
        DbgPrintEx(DPFLTR_IHVNETWORK_ID, DPFLTR_WARNING_LEVEL, c"warning-level line\n".as_ptr());
    }
    let all = hostkernel::take_all_dbgprint_log();
    let shown = |text: &str| all.iter().find(|(l, _)| l.contains(text)).map(|(_, v)| *v);
    assert_eq!(shown("plain DbgPrint line"), Some(false), "DbgPrint is not shown on a stock machine");
    assert_eq!(shown("error-level line"), Some(true));
    assert_eq!(shown("warning-level line"), Some(false));
    // `ed nt!Kd_DEFAULT_Mask 8` (or the registry's Debug Print Filter).
    hostkernel::set_dbgprint_mask(DPFLTR_DEFAULT_ID, 1 << DPFLTR_INFO_LEVEL);
    // SAFETY: as above.
    unsafe {
        DbgPrint(c"plain DbgPrint, mask set\n".as_ptr());
    }
    assert_eq!(hostkernel::take_dbgprint_log(), vec!["plain DbgPrint, mask set\n".to_string()]);
    k.finish();
}

/// SAFEWSK_REPORT_CLEANUP_CLOSING: Value1 the slot, shown as "closing socket
/// (slot N) the driver left open".
#[test]
fn cleanup_closing_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    let (st, _s) = connect(client, server.addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(cleanup_within(client, Duration::from_secs(10)), STATUS_SUCCESS);
    let r = reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!((r[0].status, r[0].milliseconds, r[0].value2, r[0].what.as_deref(), r[0].object), (0, 0, 0, None, 0));
    let all = hostkernel::take_all_dbgprint_log();
    assert_visible(
        &all,
        &format!("safewsk: SafeWskCleanup: closing socket (slot {}) the driver left open", r[0].value1),
    );
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_UNCONSUMED: a provider that returns an error without
/// completing the IRP (Wine 8's stub WskSocketConnect): What the call,
/// Status its return, Object the IRP.
#[test]
fn unconsumed_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let (st, s) = connect(client, "127.0.0.1:9".parse().unwrap(), 2000);
    assert_eq!((st, s), (STATUS_NOT_IMPLEMENTED, ptr::null_mut()));
    hostkernel::set_fail_without_completing(None);
    let r = reports.of(SAFEWSK_REPORT_UNCONSUMED);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0].what.as_deref(), Some("WskSocketConnect"));
    assert_eq!(r[0].status, STATUS_NOT_IMPLEMENTED);
    assert_ne!(r[0].object, 0, "the IRP");
    let all = hostkernel::take_all_dbgprint_log();
    cleanup(client);
    assert_visible(
        &all,
        &format!("safewsk: WskSocketConnect returned 0xC0000002 without completing IRP {:#x}", r[0].object),
    );
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_OVERDUE: a receive past its 50 ms deadline whose
/// cancelled IRP the provider does not complete (it ignores cancellation)
/// until data arrives 700 ms later: What "WskReceive", Object the IRP,
/// Milliseconds the wait so far, repeated every report interval (200 ms on
/// the host build).
#[test]
fn overdue_is_shown_and_delivered_while_the_wait_lasts() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = thread::spawn(move || listener.accept().expect("accept").0);
    let (st, s) = connect(client, addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut peer = accept.join().expect("accept");
    hostkernel::set_provider_ignores_cancel(true);
    let h = SocketH::new(s);
    let receiver = thread::spawn(move || {
        let mut buf = [0u8; 8];
        receive(h.get(), &mut buf, 0, 50)
    });
    thread::sleep(Duration::from_millis(700));
    std::io::Write::write_all(&mut peer, b"late").expect("write");
    let (st, n) = bounded("the receive", Duration::from_secs(5), move || receiver.join().expect("receiver"));
    println!("receive past its deadline: {st:#x}, {n} bytes");
    let r = reports.of(SAFEWSK_REPORT_OVERDUE);
    assert!(r.len() >= 2, "reported while the wait lasts: {r:#?}");
    for (i, o) in r.iter().enumerate() {
        assert_eq!(o.what.as_deref(), Some("WskReceive"));
        assert_eq!(o.status, STATUS_PENDING);
        assert_ne!(o.object, 0);
        assert_eq!(o.milliseconds, 50 + 200 * (i as u32 + 1), "the wait so far: {r:#?}");
    }
    let all = hostkernel::take_all_dbgprint_log();
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    assert_visible(&all, &format!("safewsk: WskReceive: IRP {:#x} not completed after 250 ms", r[0].object));
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_CLOSE_WAITING: SafeWskCloseSocket waits for a call still
/// inside WskControlSocket (700 ms there): Milliseconds the wait so far.
#[test]
fn close_waiting_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    let (st, s) = connect(client, server.addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    hostkernel::set_control_delay(Some(Duration::from_millis(700)));
    let h = SocketH::new(s);
    let control = thread::spawn(move || {
        let mut v: u32 = 7;
        // SAFETY: a socket handle, a writable ULONG.
        unsafe {
            SafeWskControlSocket(
                h.get(),
                WskGetOption,
                SO_KEEPALIVE,
                SOL_SOCKET,
                0,
                ptr::null(),
                4,
                (&mut v as *mut u32).cast(),
                ptr::null_mut(),
                2000,
            )
        }
    });
    thread::sleep(Duration::from_millis(150));
    let t0 = Instant::now();
    let st = bounded("SafeWskCloseSocket", Duration::from_secs(5), move || close(h.get()));
    let waited = t0.elapsed();
    assert_eq!(st, STATUS_SUCCESS);
    assert!(waited >= Duration::from_millis(450), "the close waited for the call to return from WSK: {waited:?}");
    // The call's IRP completes normally or is cancelled by the close.
    let control_st = control.join().expect("control");
    assert!([STATUS_SUCCESS, STATUS_CANCELLED].contains(&control_st), "{control_st:#x}");
    let r = reports.of(SAFEWSK_REPORT_CLOSE_WAITING);
    assert!(!r.is_empty(), "{:#?}", reports.all());
    assert_eq!((r[0].status, r[0].milliseconds, r[0].value1, r[0].value2), (STATUS_PENDING, 200, 0, 0));
    let all = hostkernel::take_all_dbgprint_log();
    cleanup(client);
    assert_visible(
        &all,
        "safewsk: SafeWskCloseSocket: still waiting after 200 ms for other calls on the socket to return from WSK",
    );
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_CLEANUP_WAITING: cleanup waits for an asynchronous
/// connect the provider completes after 700 ms: Value1 the calls (and
/// asynchronous connects) it waits for, Milliseconds the wait so far.
#[test]
fn cleanup_waiting_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(700)));
    let seen = Arc::new(common::Seen::default());
    let mut req = request(&seen, 5000);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    assert_eq!(cleanup_within(client, Duration::from_secs(10)), STATUS_SUCCESS);
    let calls = seen.wait(1, Duration::from_secs(1));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, STATUS_SUCCESS, "the connect succeeded; cleanup closed its socket");
    let r = reports.of(SAFEWSK_REPORT_CLEANUP_WAITING);
    assert!(!r.is_empty(), "{:#?}", reports.all());
    assert_eq!((r[0].status, r[0].milliseconds), (STATUS_PENDING, 200));
    assert!(r[0].value1 >= 1, "waiting for the asynchronous connect: {r:#?}");
    assert_eq!(reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING).len(), 1, "then closing the socket it made");
    let all = hostkernel::take_all_dbgprint_log();
    assert_visible(
        &all,
        &format!(
            "safewsk: SafeWskCleanup: still waiting after 200 ms for {} call(s) or asynchronous connect(s) and {} socket(s)",
            r[0].value1, r[0].value2
        ),
    );
    drop(req);
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_ORPHAN: a close that could not be issued: Status why,
/// Value1 the slot.
#[test]
fn orphan_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    let (st, s) = connect(client, server.addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    k.fail_nth(Site::CompletionContext, 1);
    assert_eq!(close(s), STATUS_INSUFFICIENT_RESOURCES);
    k.fail_nth(Site::CompletionContext, 0);
    let r = reports.of(SAFEWSK_REPORT_ORPHAN);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0].status, STATUS_INSUFFICIENT_RESOURCES);
    let all = hostkernel::take_all_dbgprint_log();
    assert_eq!(cleanup_within(client, Duration::from_secs(10)), STATUS_SUCCESS);
    assert_visible(
        &all,
        &format!(
            "safewsk: WskCloseSocket of slot {} could not be issued (0xC000009A); SafeWskCleanup will close it",
            r[0].value1
        ),
    );
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_FORGOTTEN_SD: cleanup releases a cached security
/// descriptor the driver did not release: Object the cached copy, Status
/// the provider's answer to WSK_RELEASE_SD.
#[test]
fn forgotten_security_descriptor_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let mut sd = Box::new([1u64 | (0x18 << 32), 0, 0, 0, 0]);
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: a live client, a readable descriptor, a writable out variable.
    let st = unsafe { SafeWskCacheSecurityDescriptor(client, sd.as_mut_ptr().cast(), &mut cached) };
    assert_eq!(st, STATUS_SUCCESS);
    assert!(!cached.is_null());
    cleanup(client);
    assert_eq!(hostkernel::live().cached_sds, 0, "released by cleanup");
    let r = reports.of(SAFEWSK_REPORT_FORGOTTEN_SD);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!((r[0].object, r[0].status), (cached as usize, STATUS_SUCCESS));
    let all = hostkernel::take_all_dbgprint_log();
    assert_visible(
        &all,
        &format!("safewsk: SafeWskCleanup: cached security descriptor {:#x} was never released", cached as usize),
    );
    drop(reports);
    k.finish();
}

/// SAFEWSK_REPORT_NO_TRANSPORT_LIST: startup gets no transport list
/// (Wine 8's WskControlClient is a stub): Status the provider's, Value1 the
/// bytes it returned.
#[test]
fn no_transport_list_is_shown_and_delivered() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    hostkernel::set_client_control_fails(WSK_TRANSPORT_LIST_QUERY, Some(STATUS_NOT_IMPLEMENTED));
    let client = startup();
    let r = reports.of(SAFEWSK_REPORT_NO_TRANSPORT_LIST);
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!((r[0].status, r[0].value1), (STATUS_NOT_IMPLEMENTED, 0));
    let all = hostkernel::take_all_dbgprint_log();
    cleanup(client);
    assert_visible(&all, "safewsk: WskControlClient(WSK_TRANSPORT_LIST_QUERY) returned 0xC0000002 (0 bytes)");
    hostkernel::set_client_control_fails(WSK_TRANSPORT_LIST_QUERY, None);
    drop(reports);
    k.finish();
}

/// The rate limit: a cleanup that closes 200 sockets prints at most 10
/// report lines per second (the first window's 10, then a line saying how
/// many were left out); the callback receives all 200.
#[test]
fn a_cleanup_closing_200_sockets_prints_a_few_lines_and_calls_back_200_times() {
    const N: usize = 200;
    let k = Session::begin();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    for i in 0..N {
        let (st, _) = connect(client, server.addr, 5000);
        assert_eq!(st, STATUS_SUCCESS, "connect {i}");
    }
    assert_eq!(server.accepted(N), N);
    fresh_report_window();
    let t0 = Instant::now();
    assert_eq!(cleanup_within(client, Duration::from_secs(30)), STATUS_SUCCESS);
    let elapsed = t0.elapsed();
    let lines = hostkernel::take_dbgprint_log();
    let closing_lines = visible_with(&lines, "SafeWskCleanup: closing socket").len();
    let left_out_lines = visible_with(&lines, "left out");
    println!(
        "cleanup of {N} sockets took {elapsed:?}: {closing_lines} closing line(s) shown, {} report callback(s), left-out lines: {left_out_lines:?}",
        reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING).len()
    );
    assert_eq!(reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING).len(), N, "the callback gets every report");
    let windows = elapsed.as_millis() as usize / 1000 + 1;
    assert!(closing_lines <= 10 * windows, "{closing_lines} lines in {elapsed:?}");
    assert!(closing_lines < N);
    // The next line admitted (a second later) says how many were left out.
    thread::sleep(Duration::from_millis(1100));
    let client = startup();
    let (st, _) = connect(client, server.addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(cleanup_within(client, Duration::from_secs(10)), STATUS_SUCCESS);
    let later = hostkernel::take_dbgprint_log();
    println!("the next report's lines: {later:#?}");
    let left_out: usize = left_out_lines
        .iter()
        .chain(visible_with(&later, "left out").iter())
        .map(|l| {
            let n = l.trim_start_matches("safewsk: ").split(' ').next().unwrap_or("");
            n.parse::<usize>().unwrap_or_else(|_| panic!("a count in {l:?}"))
        })
        .sum();
    assert_eq!(
        later.first().map(|l| l.contains(
            "line(s) of the next kind of report left out (at most 10 a second each; a report callback gets them all)"
        )),
        Some(true),
        "{later:#?}"
    );
    assert_eq!(closing_lines + left_out, N, "every report is either shown or counted as left out");
    assert_eq!(visible_with(&later, "SafeWskCleanup: closing socket").len(), 1);
    drop(server);
    drop(reports);
    k.finish();
}

/// SafeWskSetReportCallback: STATUS_INVALID_DEVICE_STATE while a client
/// exists (setting or removing; until the last client's cleanup),
/// STATUS_INVALID_PARAMETER_2 for a context without a callback (checked
/// first), STATUS_INVALID_LEVEL above PASSIVE_LEVEL; STATUS_SUCCESS once no
/// client exists.
#[test]
fn set_report_callback_statuses() {
    unsafe extern "C" fn quiet(_ctx: PVOID, _r: *const SAFEWSK_REPORT) {}
    let k = Session::begin();
    let ctx = 0x1234usize as PVOID;
    let set = |cb: SAFEWSK_REPORT_CALLBACK, c: PVOID| {
        // SAFETY: a callback of the documented type (or none).
        unsafe { SafeWskSetReportCallback(cb, c) }
    };
    assert_eq!(set(None, ctx), STATUS_INVALID_PARAMETER_2, "a context without a callback");
    assert_eq!(hostkernel::with_irql(DISPATCH_LEVEL, || set(Some(quiet), ctx)), STATUS_INVALID_LEVEL);
    assert_eq!(
        hostkernel::with_irql(DISPATCH_LEVEL, || set(None, ctx)),
        STATUS_INVALID_PARAMETER_2,
        "parameters first"
    );
    assert_eq!(set(Some(quiet), ctx), STATUS_SUCCESS);
    let first = startup();
    let second = startup();
    assert_eq!(set(None, ptr::null_mut()), STATUS_INVALID_DEVICE_STATE, "a client exists");
    assert_eq!(set(Some(quiet), ptr::null_mut()), STATUS_INVALID_DEVICE_STATE);
    cleanup(first);
    assert_eq!(set(None, ptr::null_mut()), STATUS_INVALID_DEVICE_STATE, "another client exists");
    cleanup(second);
    assert_eq!(set(None, ptr::null_mut()), STATUS_SUCCESS, "no client: removed");
    assert_eq!(set(None, ctx), STATUS_INVALID_PARAMETER_2);
    k.finish();
}
