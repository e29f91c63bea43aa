//! `log!`: one DbgPrint line, formatted with `core::fmt` into a buffer on
//! the stack (no allocation), prefixed with "safewsk-rust-sample: ".

use core::fmt::{self, Write};

/// A line of at most 255 bytes (longer ones are cut), NUL-terminated.
pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    pub fn begin() -> Line {
        let mut line = Line { buf: [0; 256], len: 0 };
        let _ = line.write_str("safewsk-rust-sample: ");
        line
    }

    /// DbgPrint("%s\n", line).
    pub fn print(mut self) {
        let end = self.len.min(self.buf.len() - 1);
        if let Some(b) = self.buf.get_mut(end) {
            *b = 0;
        }
        // SAFETY: a NUL-terminated buffer that lives for the call, printed
        // through "%s" (never used as the format); DbgPrint is callable at
        // any IRQL <= DIRQL.
        unsafe { crate::kernel::DbgPrint(c"%s\n".as_ptr(), self.buf.as_ptr()) };
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep room for the terminator; cut, never fail (a cut line is
        // better than none).
        let room = (self.buf.len() - 1).saturating_sub(self.len);
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

/// `log!("fmt", args..)`: one DbgPrint line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut line = $crate::log::Line::begin();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.print();
    }};
}
