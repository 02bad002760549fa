//! The log: lines kept in memory while scenarios run and printed only at the end, so that the
//! exit-handling path itself makes no VMCALL and no port I/O (under l1-hv, either would be an
//! extra exit to L1 on every reflected exception).

use core::fmt::{self, Write};

const CAPACITY: usize = 16 * 1024;
/// The prefix of every line, in both modes.
const PREFIX: &str = "ghv: ";

/// Buffered log lines.
pub struct Log {
    text: [u8; CAPACITY],
    len: usize,
    overflowed: bool,
}

impl Log {
    /// An empty log.
    pub const fn new() -> Self {
        Self {
            text: [0; CAPACITY],
            len: 0,
            overflowed: false,
        }
    }

    /// Appends `ghv: <args>` as one line. A line that does not fit is dropped and marks the
    /// log as overflowed (which fails the verdict).
    pub fn line(&mut self, args: fmt::Arguments) {
        let start = self.len;
        if writeln!(self, "{PREFIX}{args}").is_err() {
            self.len = start;
            self.overflowed = true;
        }
    }

    /// Whether a line was dropped.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The lines, without their line feeds.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        // Only `write_str` fills the buffer, with whole `str`s: it is UTF-8.
        core::str::from_utf8(&self.text[..self.len])
            .unwrap_or("")
            .lines()
    }
}

impl Write for Log {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.text.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
