//! Compile-time cross-checks of safewsk's own NT declarations against
//! wdk-sys, which bindgen generates from the installed WDK's headers.
//! Built only on Windows with `--features wdk` (it needs the WDK); the Linux
//! CI cannot compile it. Each line fails the build if the WDK disagrees.
#![allow(dead_code)]

use core::mem::size_of;

use static_assertions::const_assert_eq;
use wdk_sys as w;

use crate::nt;

// Layouts: the structures the library reads or writes by field.
const_assert_eq!(size_of::<nt::IRP>(), size_of::<w::IRP>());
const_assert_eq!(size_of::<nt::IO_STACK_LOCATION>(), size_of::<w::IO_STACK_LOCATION>());
const_assert_eq!(size_of::<nt::IO_STATUS_BLOCK>(), size_of::<w::IO_STATUS_BLOCK>());
const_assert_eq!(size_of::<nt::KEVENT>(), size_of::<w::KEVENT>());
const_assert_eq!(size_of::<nt::LIST_ENTRY>(), size_of::<w::LIST_ENTRY>());
const_assert_eq!(size_of::<nt::UNICODE_STRING>(), size_of::<w::UNICODE_STRING>());
const_assert_eq!(core::mem::offset_of!(nt::IRP, IoStatus), core::mem::offset_of!(w::IRP, IoStatus));
const_assert_eq!(core::mem::offset_of!(nt::IRP, Tail), core::mem::offset_of!(w::IRP, Tail));
const_assert_eq!(
    core::mem::offset_of!(nt::IO_STACK_LOCATION, CompletionRoutine),
    core::mem::offset_of!(w::IO_STACK_LOCATION, CompletionRoutine)
);
const_assert_eq!(
    core::mem::offset_of!(nt::IO_STACK_LOCATION, Context),
    core::mem::offset_of!(w::IO_STACK_LOCATION, Context)
);

// Status codes and constants the library returns or passes.
const_assert_eq!(nt::STATUS_MORE_PROCESSING_REQUIRED, w::STATUS_MORE_PROCESSING_REQUIRED);
const_assert_eq!(nt::STATUS_INVALID_PARAMETER_1, w::STATUS_INVALID_PARAMETER_1);
const_assert_eq!(nt::STATUS_INVALID_PARAMETER_12, w::STATUS_INVALID_PARAMETER_12);
const_assert_eq!(nt::STATUS_IO_TIMEOUT, w::STATUS_IO_TIMEOUT);
const_assert_eq!(nt::STATUS_INVALID_LEVEL, w::STATUS_INVALID_LEVEL);
const_assert_eq!(nt::STATUS_INVALID_DEVICE_STATE, w::STATUS_INVALID_DEVICE_STATE);
const_assert_eq!(nt::STATUS_DELETE_PENDING, w::STATUS_DELETE_PENDING);
const_assert_eq!(nt::SL_INVOKE_ON_SUCCESS as u32, w::SL_INVOKE_ON_SUCCESS);
const_assert_eq!(nt::SL_INVOKE_ON_ERROR as u32, w::SL_INVOKE_ON_ERROR);
const_assert_eq!(nt::SL_INVOKE_ON_CANCEL as u32, w::SL_INVOKE_ON_CANCEL);
const_assert_eq!(nt::POOL_FLAG_NON_PAGED, w::POOL_FLAG_NON_PAGED);
