//! A 16550A UART as the guest's COM1 (register set of the National Semiconductor PC16550D
//! datasheet, section 8 "Registers"; TI's TL16C550 datasheet says the same).
//!
//! Transmission is instantaneous: the transmitter holding register (THR) is always empty, so
//! LSR.THRE and LSR.TEMT always read 1 and every byte written to THR is handed at once to a line
//! buffer (or, in loopback mode, to the receiver). The buffer gives back complete lines: split at
//! `'\n'`, `'\r'` dropped, and at most [`LINE_CAP`] bytes, so a guest that never writes a newline
//! cannot make l1-hv hold more than that.
//!
//! What Linux's 8250 driver checks, and this model therefore does as a 16550A does:
//! - IER keeps bits 3:0 only (its scratch test writes 0x0f and 0, and the XScale test's UUE, bit
//!   6, must not stick);
//! - loopback (MCR bit 4) feeds MCR's outputs back into MSR and transmitted bytes into the
//!   receiver, whose FIFO holds 16 bytes (the driver counts them to tell a 16550A from a 64-byte
//!   part);
//! - FCR bit 0 enables the FIFOs and IIR bits 7:6 then read 0b11; IIR bits 5:4 always read 0, so
//!   FCR bit 5 (a 16750's 64-byte mode) has no effect, with or without DLAB;
//! - setting IER.ETBEI while the transmitter is empty raises the THRE interrupt again, and
//!   reading IIR while THRE is the reported source clears it (datasheet Table IV, "Interrupt
//!   Control Functions"): the driver's startup test for a UART that does not re-assert THRE.

use bitflags::bitflags;

/// Longest line handed back: a longer run of bytes without a newline is cut into lines of this
/// length, each marked [`LineEnd::Full`].
pub const LINE_CAP: usize = 256;

/// Receiver FIFO depth of the 16550A (datasheet section 1, "16-byte FIFOs").
const FIFO_DEPTH: usize = 16;

/// Number of registers (ports) of a 16550A: base + 0 ..= base + 7.
pub const REGISTER_COUNT: u16 = 8;

/// Register offsets from the base port (datasheet Table II, "Register Addresses").
mod offset {
    /// RBR (read) / THR (write); DLL when LCR.DLAB is set.
    pub const DATA: u8 = 0;
    /// IER; DLM when LCR.DLAB is set.
    pub const IER: u8 = 1;
    /// IIR (read) / FCR (write), whatever DLAB.
    pub const IIR_FCR: u8 = 2;
    pub const LCR: u8 = 3;
    pub const MCR: u8 = 4;
    pub const LSR: u8 = 5;
    pub const MSR: u8 = 6;
    pub const SCR: u8 = 7;
}

bitflags! {
    /// Interrupt Enable Register (datasheet 8.6). Bits 7:4 are always 0 on a 16550A.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterruptEnable: u8 {
        /// ERBFI: received data available (and, with FIFOs, the character timeout).
        const RECEIVED_DATA = 1 << 0;
        /// ETBEI: transmitter holding register empty.
        const THR_EMPTY = 1 << 1;
        /// ELSI: receiver line status (overrun, parity, framing, break).
        const LINE_STATUS = 1 << 2;
        /// EDSSI: modem status (any MSR delta bit).
        const MODEM_STATUS = 1 << 3;
    }

    /// FIFO Control Register (datasheet 8.5), write-only at offset 2.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct FifoControl: u8 {
        /// Enables both FIFOs; the other bits are programmed only while this one is written 1.
        const ENABLE = 1 << 0;
        /// Clears the receiver FIFO (self-clearing).
        const CLEAR_RX = 1 << 1;
        /// Receiver trigger level, bits 7:6: 1, 4, 8 or 14 bytes.
        const RX_TRIGGER = 0b11 << 6;
        const _ = !0;
    }

    /// Line Control Register (datasheet 8.3). Only DLAB changes what this model does; the framing
    /// bits are kept for reads.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct LineControl: u8 {
        /// Divisor Latch Access Bit: offsets 0 and 1 become DLL and DLM.
        const DLAB = 1 << 7;
        const _ = !0;
    }

    /// Modem Control Register (datasheet 8.7). Bits 7:5 are always 0 on a 16550A.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ModemControl: u8 {
        const DTR = 1 << 0;
        const RTS = 1 << 1;
        const OUT1 = 1 << 2;
        /// On PC serial ports the OUT2 output gates the UART's interrupt line to the interrupt
        /// controller (IBM PC/AT technical reference, asynchronous communications adapter).
        const OUT2 = 1 << 3;
        /// Local loopback: outputs fed back to the inputs, transmitter to receiver.
        const LOOP = 1 << 4;
    }

    /// Line Status Register (datasheet 8.4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct LineStatus: u8 {
        /// DR: at least one received byte is waiting.
        const DATA_READY = 1 << 0;
        /// OE: a received byte was lost; cleared by reading LSR.
        const OVERRUN = 1 << 1;
        /// THRE: THR (or the transmitter FIFO) is empty.
        const THR_EMPTY = 1 << 5;
        /// TEMT: THR and the transmitter shift register are both empty.
        const TRANSMITTER_EMPTY = 1 << 6;
    }

    /// Modem Status Register (datasheet 8.8): delta bits 3:0 (cleared by reading MSR), line
    /// states 7:4.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ModemStatus: u8 {
        const DELTA_CTS = 1 << 0;
        const DELTA_DSR = 1 << 1;
        /// TERI: RI went from active to inactive.
        const TRAILING_EDGE_RI = 1 << 2;
        const DELTA_DCD = 1 << 3;
        const CTS = 1 << 4;
        const DSR = 1 << 5;
        const RI = 1 << 6;
        const DCD = 1 << 7;
    }
}

/// An interrupt source, as IIR identifies it (datasheet Table IV), highest priority first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptSource {
    /// Overrun (the only line error this model produces); cleared by reading LSR.
    LineStatus,
    /// Received data at or above the FIFO trigger level (or any, without FIFOs).
    ReceivedData,
    /// FIFO mode, data below the trigger level: the datasheet raises this after four character
    /// times without activity; with no clock here, the data has always waited long enough.
    CharacterTimeout,
    /// THR empty; cleared by reading IIR (while it is the reported source) or writing THR.
    ThrEmpty,
    /// A modem status delta; cleared by reading MSR.
    ModemStatus,
}

impl InterruptSource {
    /// IIR bits 3:0 for this source (bit 0 = 0: an interrupt is pending).
    pub fn iir_code(self) -> u8 {
        match self {
            InterruptSource::LineStatus => 0b0110,
            InterruptSource::ReceivedData => 0b0100,
            InterruptSource::CharacterTimeout => 0b1100,
            InterruptSource::ThrEmpty => 0b0010,
            InterruptSource::ModemStatus => 0b0000,
        }
    }

    /// The IER bit that enables this source.
    pub fn enable_bit(self) -> InterruptEnable {
        match self {
            InterruptSource::LineStatus => InterruptEnable::LINE_STATUS,
            InterruptSource::ReceivedData | InterruptSource::CharacterTimeout => {
                InterruptEnable::RECEIVED_DATA
            }
            InterruptSource::ThrEmpty => InterruptEnable::THR_EMPTY,
            InterruptSource::ModemStatus => InterruptEnable::MODEM_STATUS,
        }
    }

    /// The source an IIR value reports, `None` when bit 0 says nothing is pending.
    pub fn from_iir(iir: u8) -> Option<Self> {
        match iir & 0x0f {
            0b0110 => Some(InterruptSource::LineStatus),
            0b0100 => Some(InterruptSource::ReceivedData),
            0b1100 => Some(InterruptSource::CharacterTimeout),
            0b0010 => Some(InterruptSource::ThrEmpty),
            0b0000 => Some(InterruptSource::ModemStatus),
            _ => None,
        }
    }
}

/// IIR bit 0: no interrupt pending.
const IIR_NO_INTERRUPT: u8 = 1 << 0;
/// IIR bits 7:6 while FCR bit 0 has the FIFOs enabled.
const IIR_FIFOS_ENABLED: u8 = 0b11 << 6;

/// Why a line was handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnd {
    /// The guest wrote `'\n'` (not part of the text).
    Newline,
    /// [`LINE_CAP`] bytes without a newline; the rest follows in the next line. A `'\n'` right
    /// after a full line ends that line, so it gives no empty line.
    Full,
    /// Handed back by [`Uart::flush`] (the guest stopped mid-line).
    Flushed,
}

/// One line of guest console output, borrowed from the UART until its next write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The bytes, without `'\r'` or `'\n'`; at most [`LINE_CAP`] long.
    pub text: &'a [u8],
    pub end: LineEnd,
}

/// The transmitter's output, collected into lines.
#[derive(Clone, Debug)]
struct LineBuffer {
    bytes: [u8; LINE_CAP],
    len: usize,
    /// `bytes[..len]` was handed back: the next byte starts a new line.
    handed_back: bool,
    /// The last line handed back was [`LineEnd::Full`] and no byte has been kept since.
    after_full: bool,
}

impl LineBuffer {
    fn new() -> Self {
        LineBuffer {
            bytes: [0; LINE_CAP],
            len: 0,
            handed_back: false,
            after_full: false,
        }
    }

    /// Adds one transmitted byte; `Some` when it completes a line, which is then `bytes[..len]`.
    fn push(&mut self, byte: u8) -> Option<LineEnd> {
        if self.handed_back {
            self.len = 0;
            self.handed_back = false;
        }
        match byte {
            b'\r' => None,
            b'\n' if self.after_full && self.len == 0 => {
                self.after_full = false;
                None
            }
            b'\n' => {
                self.handed_back = true;
                Some(LineEnd::Newline)
            }
            _ => {
                self.after_full = false;
                self.bytes[self.len] = byte;
                self.len += 1;
                if self.len == LINE_CAP {
                    self.handed_back = true;
                    self.after_full = true;
                    Some(LineEnd::Full)
                } else {
                    None
                }
            }
        }
    }

    fn line(&self, end: LineEnd) -> Line<'_> {
        Line {
            text: &self.bytes[..self.len],
            end,
        }
    }
}

/// The receiver: a 16-byte FIFO, or the single receiver buffer register when FIFOs are off.
#[derive(Clone, Debug)]
struct Receiver {
    bytes: [u8; FIFO_DEPTH],
    head: usize,
    len: usize,
}

impl Receiver {
    fn new() -> Self {
        Receiver {
            bytes: [0; FIFO_DEPTH],
            head: 0,
            len: 0,
        }
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let byte = self.bytes[self.head];
        self.head = (self.head + 1) % FIFO_DEPTH;
        self.len -= 1;
        Some(byte)
    }

    /// Receives one byte into a buffer of `capacity` (16 or 1); `false` on an overrun. On an
    /// overrun the FIFO keeps its bytes and loses the new one, while without FIFOs the new byte
    /// overwrites RBR (datasheet 8.4, LSR bit 1).
    fn push(&mut self, byte: u8, capacity: usize) -> bool {
        if self.len < capacity {
            self.bytes[(self.head + self.len) % FIFO_DEPTH] = byte;
            self.len += 1;
            true
        } else {
            if capacity == 1 {
                self.bytes[self.head] = byte;
            }
            false
        }
    }
}

/// A 16550A. Offsets are 0..=7 from the base port; multi-byte port accesses are split into byte
/// accesses by [`crate::bus::PortBus`].
#[derive(Clone, Debug)]
pub struct Uart {
    ier: InterruptEnable,
    lcr: LineControl,
    mcr: ModemControl,
    fifos_enabled: bool,
    /// Receiver trigger level in bytes (FCR bits 7:6).
    rx_trigger: usize,
    /// LSR error bits, kept until LSR is read.
    line_errors: LineStatus,
    /// MSR delta bits, kept until MSR is read.
    modem_deltas: ModemStatus,
    /// The THRE interrupt condition (datasheet Table IV): set when THR becomes empty or ETBEI
    /// is set while it is, cleared by an IIR read that reports it.
    thre_pending: bool,
    divisor_low: u8,
    divisor_high: u8,
    scratch: u8,
    receiver: Receiver,
    output: LineBuffer,
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart {
    /// A UART in its master-reset state (datasheet Table III, "UART Reset Configuration").
    pub fn new() -> Self {
        Uart {
            ier: InterruptEnable::empty(),
            lcr: LineControl::empty(),
            mcr: ModemControl::empty(),
            fifos_enabled: false,
            rx_trigger: 1,
            line_errors: LineStatus::empty(),
            modem_deltas: ModemStatus::empty(),
            thre_pending: false,
            divisor_low: 0,
            divisor_high: 0,
            scratch: 0,
            receiver: Receiver::new(),
            output: LineBuffer::new(),
        }
    }

    /// Reads the register at `offset` (0..=7; higher offsets wrap, as the chip decodes only
    /// three address lines), with the read side effects of the datasheet.
    pub fn read(&mut self, offset: u8) -> u8 {
        let dlab = self.lcr.contains(LineControl::DLAB);
        match offset % REGISTER_COUNT as u8 {
            offset::DATA if dlab => self.divisor_low,
            // Reading an empty RBR gives no data; 0 is as good as the stale byte a chip gives.
            offset::DATA => self.receiver.pop().unwrap_or(0),
            offset::IER if dlab => self.divisor_high,
            offset::IER => self.ier.bits(),
            offset::IIR_FCR => {
                let source = self.pending_interrupt();
                if source == Some(InterruptSource::ThrEmpty) {
                    self.thre_pending = false;
                }
                self.iir(source)
            }
            offset::LCR => self.lcr.bits(),
            offset::MCR => self.mcr.bits(),
            offset::LSR => {
                let lsr = self.line_status();
                self.line_errors = LineStatus::empty();
                lsr.bits()
            }
            offset::MSR => {
                let msr = self.modem_lines() | self.modem_deltas;
                self.modem_deltas = ModemStatus::empty();
                msr.bits()
            }
            offset::SCR => self.scratch,
            _ => unreachable!("offset wrapped to 0..=7"),
        }
    }

    /// Writes `value` to the register at `offset` (0..=7, wrapping); a line when the write
    /// completes one.
    pub fn write(&mut self, offset: u8, value: u8) -> Option<Line<'_>> {
        self.write_register(offset, value)
            .map(|end| self.output.line(end))
    }

    /// [`Uart::write`] without the borrow: the line, if any, is then [`Uart::completed_line`].
    pub(crate) fn write_register(&mut self, offset: u8, value: u8) -> Option<LineEnd> {
        let dlab = self.lcr.contains(LineControl::DLAB);
        match offset % REGISTER_COUNT as u8 {
            offset::DATA if dlab => self.divisor_low = value,
            offset::DATA => return self.transmit(value),
            offset::IER if dlab => self.divisor_high = value,
            offset::IER => {
                let new = InterruptEnable::from_bits_truncate(value);
                // THR is always empty, so enabling ETBEI raises THRE at once (Table IV: the
                // interrupt is "THR empty" while ETBEI is set), also when it was enabled
                // before, cleared by an IIR read, and is enabled again.
                self.thre_pending = new.contains(InterruptEnable::THR_EMPTY)
                    && (self.thre_pending || !self.ier.contains(InterruptEnable::THR_EMPTY));
                self.ier = new;
            }
            offset::IIR_FCR => self.write_fcr(FifoControl::from_bits_retain(value)),
            offset::LCR => self.lcr = LineControl::from_bits_retain(value),
            offset::MCR => {
                let before = self.modem_lines();
                self.mcr = ModemControl::from_bits_truncate(value);
                self.note_modem_change(before, self.modem_lines());
            }
            // LSR and MSR are read-only here (the datasheet reserves writes for factory test).
            offset::LSR | offset::MSR => {}
            offset::SCR => self.scratch = value,
            _ => unreachable!("offset wrapped to 0..=7"),
        }
        None
    }

    /// The line a [`Uart::write_register`] returned `end` for.
    pub(crate) fn completed_line(&self, end: LineEnd) -> Line<'_> {
        self.output.line(end)
    }

    /// Hands back the bytes transmitted since the last line, if any (e.g. when the guest powers
    /// off without a final newline).
    pub fn flush(&mut self) -> Option<Line<'_>> {
        if self.output.handed_back || self.output.len == 0 {
            return None;
        }
        self.output.handed_back = true;
        self.output.after_full = false;
        Some(self.output.line(LineEnd::Flushed))
    }

    /// Queues one byte for the guest to receive (the receive path: l1-hv's console input).
    /// `false` when the receiver was full and the byte caused an overrun (LSR.OE).
    pub fn push_input(&mut self, byte: u8) -> bool {
        let capacity = if self.fifos_enabled { FIFO_DEPTH } else { 1 };
        let received = self.receiver.push(byte, capacity);
        if !received {
            self.line_errors |= LineStatus::OVERRUN;
        }
        received
    }

    /// The interrupt output as it reaches the interrupt controller: an enabled source is
    /// pending and OUT2 is set. In loopback the chip forces its OUT2 pin inactive (datasheet
    /// 8.7, MCR bit 4), which closes the PC's interrupt gate, so the line is low then.
    pub fn irq_level(&self) -> bool {
        self.mcr.contains(ModemControl::OUT2)
            && !self.mcr.contains(ModemControl::LOOP)
            && self.pending_interrupt().is_some()
    }

    /// The highest-priority enabled source that is pending, as IIR would report it (reading
    /// this has none of an IIR read's side effects).
    pub fn pending_interrupt(&self) -> Option<InterruptSource> {
        let enabled = |bit| self.ier.contains(bit);
        if enabled(InterruptEnable::LINE_STATUS) && !self.line_errors.is_empty() {
            Some(InterruptSource::LineStatus)
        } else if enabled(InterruptEnable::RECEIVED_DATA) && self.receiver.len > 0 {
            if self.fifos_enabled && self.receiver.len < self.rx_trigger {
                Some(InterruptSource::CharacterTimeout)
            } else {
                Some(InterruptSource::ReceivedData)
            }
        } else if enabled(InterruptEnable::THR_EMPTY) && self.thre_pending {
            Some(InterruptSource::ThrEmpty)
        } else if enabled(InterruptEnable::MODEM_STATUS) && !self.modem_deltas.is_empty() {
            Some(InterruptSource::ModemStatus)
        } else {
            None
        }
    }

    /// IER as the guest last wrote it (bits 3:0).
    pub fn interrupt_enable(&self) -> InterruptEnable {
        self.ier
    }

    fn iir(&self, source: Option<InterruptSource>) -> u8 {
        let fifo_bits = if self.fifos_enabled {
            IIR_FIFOS_ENABLED
        } else {
            0
        };
        fifo_bits | source.map_or(IIR_NO_INTERRUPT, InterruptSource::iir_code)
    }

    fn line_status(&self) -> LineStatus {
        let mut lsr = self.line_errors | LineStatus::THR_EMPTY | LineStatus::TRANSMITTER_EMPTY;
        lsr.set(LineStatus::DATA_READY, self.receiver.len > 0);
        lsr
    }

    /// MSR bits 7:4. In loopback they are MCR's outputs (datasheet 8.7: CTS←RTS, DSR←DTR,
    /// RI←OUT1, DCD←OUT2); otherwise a terminal that is always there and ready (CTS, DSR, DCD),
    /// so a driver with hardware flow control keeps sending.
    fn modem_lines(&self) -> ModemStatus {
        if !self.mcr.contains(ModemControl::LOOP) {
            return ModemStatus::CTS | ModemStatus::DSR | ModemStatus::DCD;
        }
        let mut lines = ModemStatus::empty();
        lines.set(ModemStatus::CTS, self.mcr.contains(ModemControl::RTS));
        lines.set(ModemStatus::DSR, self.mcr.contains(ModemControl::DTR));
        lines.set(ModemStatus::RI, self.mcr.contains(ModemControl::OUT1));
        lines.set(ModemStatus::DCD, self.mcr.contains(ModemControl::OUT2));
        lines
    }

    /// Sets the MSR delta bits for the line changes between `before` and `after` (datasheet
    /// 8.8: DCTS, DDSR, DDCD on any change, TERI when RI goes inactive).
    fn note_modem_change(&mut self, before: ModemStatus, after: ModemStatus) {
        let changed = before ^ after;
        let deltas = [
            (ModemStatus::CTS, ModemStatus::DELTA_CTS),
            (ModemStatus::DSR, ModemStatus::DELTA_DSR),
            (ModemStatus::DCD, ModemStatus::DELTA_DCD),
        ];
        for (line, delta) in deltas {
            if changed.contains(line) {
                self.modem_deltas |= delta;
            }
        }
        if before.contains(ModemStatus::RI) && !after.contains(ModemStatus::RI) {
            self.modem_deltas |= ModemStatus::TRAILING_EDGE_RI;
        }
    }

    /// THR write: the byte leaves at once, so THR is empty again and THRE is raised anew when
    /// enabled (the write cleared the old one).
    fn transmit(&mut self, byte: u8) -> Option<LineEnd> {
        self.thre_pending = self.ier.contains(InterruptEnable::THR_EMPTY);
        if self.mcr.contains(ModemControl::LOOP) {
            self.push_input(byte);
            None
        } else {
            self.output.push(byte)
        }
    }

    fn write_fcr(&mut self, fcr: FifoControl) {
        let enable = fcr.contains(FifoControl::ENABLE);
        // Changing FCR bit 0 clears both FIFOs (datasheet 8.5).
        if enable != self.fifos_enabled {
            self.receiver.clear();
        }
        self.fifos_enabled = enable;
        if !enable {
            return;
        }
        if fcr.contains(FifoControl::CLEAR_RX) {
            self.receiver.clear();
        }
        self.rx_trigger = match (fcr & FifoControl::RX_TRIGGER).bits() >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IER: u8 = 1;
    const IIR: u8 = 2;
    const FCR: u8 = 2;
    const LCR: u8 = 3;
    const MCR: u8 = 4;
    const LSR: u8 = 5;
    const MSR: u8 = 6;
    const SCR: u8 = 7;

    /// Writes that must not complete a line.
    fn put(uart: &mut Uart, offset: u8, value: u8) {
        assert_eq!(
            uart.write(offset, value),
            None,
            "write {value:#x} to offset {offset}"
        );
    }

    /// The probes of Linux's 8250 autoconfiguration, in order, with what each needs to see for
    /// the port to be taken as a plain 16550A (restated from what the driver checks, not its
    /// code).
    #[test]
    fn linux_autoconfig_finds_a_16550a() {
        let mut uart = Uart::new();
        // Scratch test through IER: 0 reads back 0, 0x0f reads back 0x0f.
        put(&mut uart, IER, 0);
        assert_eq!(uart.read(IER) & 0x0f, 0);
        put(&mut uart, IER, 0x0f);
        assert_eq!(uart.read(IER) & 0x0f, 0x0f);
        put(&mut uart, IER, 0);
        // Loopback test: MCR = LOOP | OUT2 | RTS gives MSR 7:4 = DCD | CTS.
        put(&mut uart, MCR, 0x1a);
        assert_eq!(uart.read(MSR) & 0xf0, 0x90);
        put(&mut uart, MCR, 0);
        // EFR write under LCR 0xbf lands on FCR; then FIFOs on: IIR bits 7:6 = 0b11.
        put(&mut uart, LCR, 0xbf);
        put(&mut uart, FCR, 0);
        put(&mut uart, LCR, 0);
        put(&mut uart, FCR, 0x01);
        assert_eq!(uart.read(IIR) >> 6, 0b11);
        // No EFR at offset 2 under LCR 0x80 or 0xbf (an EFR would read 0 there).
        put(&mut uart, LCR, 0x80);
        assert_ne!(uart.read(IIR), 0);
        put(&mut uart, LCR, 0xbf);
        assert_ne!(uart.read(IIR), 0);
        // National SuperIO: offset 2 under LCR 0xe0 must not follow MCR.LOOP.
        put(&mut uart, LCR, 0);
        let mcr = uart.read(MCR);
        put(&mut uart, LCR, 0xe0);
        let before = uart.read(IIR);
        put(&mut uart, LCR, 0);
        put(&mut uart, MCR, mcr ^ 0x10);
        put(&mut uart, LCR, 0xe0);
        let after = uart.read(IIR);
        put(&mut uart, LCR, 0);
        put(&mut uart, MCR, mcr);
        assert_eq!((before ^ after) & 0x10, 0);
        // 16750: FCR bit 5 with and without DLAB must not set IIR bit 5.
        put(&mut uart, FCR, 0x21);
        assert_eq!(uart.read(IIR) & 0xe0, 0xc0);
        put(&mut uart, FCR, 0x01);
        put(&mut uart, LCR, 0x80);
        put(&mut uart, FCR, 0x21);
        assert_eq!(
            uart.read(IIR) & 0xe0,
            0xc0,
            "16750 64-byte FIFO bit under DLAB"
        );
        put(&mut uart, FCR, 0x01);
        put(&mut uart, LCR, 0);
        // XScale: IER bit 6 (UUE) does not stick.
        let ier = uart.read(IER);
        put(&mut uart, IER, ier | 0x40);
        assert_eq!(uart.read(IER) & 0x40, 0);
        put(&mut uart, IER, ier);
        // FIFO size: loopback at divisor 1, send 256 bytes, count what comes back: 16.
        put(&mut uart, FCR, 0x07);
        put(&mut uart, MCR, 0x10);
        put(&mut uart, LCR, 0x80);
        put(&mut uart, 0, 1);
        put(&mut uart, IER, 0);
        put(&mut uart, LCR, 0x03);
        for byte in 0..=255u8 {
            put(&mut uart, 0, byte);
        }
        let mut count = 0;
        while uart.read(LSR) & 0x01 != 0 && count < 256 {
            assert_eq!(uart.read(0), count as u8, "FIFO order");
            count += 1;
        }
        assert_eq!(count, 16);
        // The startup safety check: LSR must not read 0xff.
        assert_ne!(uart.read(LSR), 0xff);
    }

    /// Linux's startup test: ETBEI on, IIR shows THRE; ETBEI off and on again, IIR shows THRE
    /// again (a UART that does not re-assert it gets a polling timer instead).
    #[test]
    fn thre_is_reasserted_when_etbei_is_enabled_again() {
        let mut uart = Uart::new();
        put(&mut uart, FCR, 0x01);
        put(&mut uart, IER, 0x02);
        assert_eq!(uart.read(IIR), 0xc2);
        // That read reported THRE, so it cleared it.
        assert_eq!(uart.read(IIR), 0xc1);
        put(&mut uart, IER, 0);
        put(&mut uart, IER, 0x02);
        assert_eq!(uart.read(IIR), 0xc2);
        put(&mut uart, IER, 0);
        assert_eq!(uart.read(IIR), 0xc1, "THRE reported while ETBEI is off");
    }

    #[test]
    fn thr_write_raises_thre_again() {
        let mut uart = Uart::new();
        put(&mut uart, MCR, 0x08);
        put(&mut uart, IER, 0x02);
        assert!(uart.irq_level());
        assert_eq!(uart.read(IIR), 0x02);
        assert!(!uart.irq_level());
        put(&mut uart, 0, b'x');
        assert!(uart.irq_level(), "THR emptied at once, THRE raised");
        // Without OUT2 the line stays low though the source is pending.
        put(&mut uart, MCR, 0);
        assert!(!uart.irq_level());
        assert_eq!(uart.pending_interrupt(), Some(InterruptSource::ThrEmpty));
    }

    #[test]
    fn iir_reports_the_highest_priority_source() {
        let mut uart = Uart::new();
        put(&mut uart, IER, 0x0f);
        // THRE (raised by enabling ETBEI) and a modem delta (leaving loopback changes lines).
        put(&mut uart, MCR, 0x10);
        put(&mut uart, MCR, 0x00);
        // An overrun without FIFOs: the second byte overruns the one-byte RBR.
        assert!(uart.push_input(b'a'));
        assert!(!uart.push_input(b'b'));
        assert_eq!(uart.read(IIR), 0x06, "line status first");
        assert_eq!(uart.read(LSR) & 0x03, 0x03, "OE and DR");
        assert_eq!(uart.read(LSR) & 0x02, 0, "OE cleared by the read");
        assert_eq!(uart.read(IIR), 0x04, "then received data");
        assert_eq!(uart.read(0), b'b', "the overrun overwrote RBR");
        assert_eq!(uart.read(IIR), 0x02, "then THRE");
        assert_eq!(
            uart.read(IIR),
            0x00,
            "then modem status (THRE cleared by the last read)"
        );
        assert_eq!(
            uart.read(MSR) & 0x0f,
            0x0b,
            "DCTS, DDSR, DDCD from leaving loopback"
        );
        assert_eq!(uart.read(IIR), 0x01, "nothing left");
    }

    #[test]
    fn disabled_sources_are_not_reported() {
        let mut uart = Uart::new();
        uart.push_input(b'a');
        put(&mut uart, IER, 0x02);
        assert_eq!(
            uart.read(IIR),
            0x02,
            "received data pending but not enabled"
        );
        put(&mut uart, IER, 0);
        assert_eq!(uart.read(IIR), 0x01);
        assert_eq!(uart.read(LSR) & 0x01, 0x01, "the data is still there");
    }

    #[test]
    fn fifo_trigger_level_picks_timeout_or_data_available() {
        let mut uart = Uart::new();
        put(&mut uart, FCR, 0x41); // FIFOs on, trigger at 4 bytes
        put(&mut uart, IER, 0x01);
        for byte in *b"abc" {
            assert!(uart.push_input(byte));
        }
        assert_eq!(
            uart.read(IIR),
            0xcc,
            "below the trigger level: character timeout"
        );
        uart.push_input(b'd');
        assert_eq!(uart.read(IIR), 0xc4, "at the trigger level: data available");
        // FCR bit 1 clears the receiver.
        put(&mut uart, FCR, 0x43);
        assert_eq!(uart.read(LSR) & 0x01, 0);
        assert_eq!(uart.read(IIR), 0xc1);
        // A full FIFO keeps its bytes and loses the new one.
        for byte in 0..16 {
            assert!(uart.push_input(byte));
        }
        assert!(!uart.push_input(99));
        assert_eq!(uart.read(0), 0);
        // Turning FIFOs off clears them and drops the FIFO bits of IIR.
        put(&mut uart, FCR, 0x00);
        assert_eq!(uart.read(LSR) & 0x01, 0);
        assert_eq!(uart.read(IIR) & 0xc0, 0);
    }

    #[test]
    fn dlab_switches_offsets_0_and_1_to_the_divisor() {
        let mut uart = Uart::new();
        put(&mut uart, IER, 0x05);
        put(&mut uart, LCR, 0x83);
        put(&mut uart, 0, 0x0c);
        put(&mut uart, IER, 0x00);
        assert_eq!(uart.read(0), 0x0c);
        assert_eq!(uart.read(IER), 0x00);
        put(&mut uart, LCR, 0x03);
        assert_eq!(uart.read(IER), 0x05, "IER untouched by the DLM write");
        assert_eq!(uart.read(LCR), 0x03);
        assert_eq!(uart.flush(), None, "the DLL write transmitted nothing");
        put(&mut uart, LCR, 0x80);
        assert_eq!((uart.read(0), uart.read(IER)), (0x0c, 0x00));
    }

    #[test]
    fn loopback_reflects_mcr_and_receives_what_is_sent() {
        let mut uart = Uart::new();
        put(&mut uart, MCR, 0x1f);
        assert_eq!(uart.read(MCR), 0x1f);
        assert_eq!(uart.read(MSR) & 0xf0, 0xf0);
        put(&mut uart, MCR, 0x10 | 0x01);
        // RTS, OUT1, OUT2 dropped: DCTS, TERI, DDCD; DTR kept: DSR.
        assert_eq!(uart.read(MSR), 0x20 | 0x0d);
        put(&mut uart, 0, b'Z');
        assert_eq!(uart.read(LSR) & 0x61, 0x61, "DR, THRE, TEMT");
        assert_eq!(uart.read(0), b'Z');
        // MCR bits 7:5 do not exist on a 16550A.
        put(&mut uart, MCR, 0xe0);
        assert_eq!(uart.read(MCR), 0);
        // Loopback holds the interrupt line low even with OUT2 and a pending source.
        put(&mut uart, IER, 0x02);
        put(&mut uart, MCR, 0x18);
        assert_eq!(uart.pending_interrupt(), Some(InterruptSource::ThrEmpty));
        assert!(!uart.irq_level());
        put(&mut uart, MCR, 0x08);
        assert!(uart.irq_level());
    }

    #[test]
    fn scratch_register_holds_a_byte() {
        let mut uart = Uart::new();
        put(&mut uart, SCR, 0xa5);
        assert_eq!(uart.read(SCR), 0xa5);
        assert_eq!(uart.read(SCR + 8), 0xa5, "three address lines");
    }

    fn send(uart: &mut Uart, bytes: &[u8]) -> ([u8; 1024], usize, usize) {
        // Concatenated lines, separated by '|', and how many lines.
        let mut out = [0u8; 1024];
        let (mut len, mut lines) = (0, 0);
        for &byte in bytes {
            if let Some(line) = uart.write(0, byte) {
                assert!(line.text.len() <= LINE_CAP);
                out[len..len + line.text.len()].copy_from_slice(line.text);
                len += line.text.len();
                out[len] = b'|';
                len += 1;
                lines += 1;
            }
        }
        (out, len, lines)
    }

    #[test]
    fn lines_split_at_newline_without_carriage_returns() {
        let mut uart = Uart::new();
        let (out, len, lines) = send(&mut uart, b"Linux version\r\n\r\nok\nhalf");
        assert_eq!(&out[..len], b"Linux version||ok|");
        assert_eq!(lines, 3);
        let line = uart.flush().unwrap();
        assert_eq!((line.text, line.end), (&b"half"[..], LineEnd::Flushed));
        assert_eq!(uart.flush(), None, "flushed once");
        let line = uart.write(0, b'\n').unwrap();
        assert_eq!((line.text, line.end), (&b""[..], LineEnd::Newline));
    }

    #[test]
    fn long_lines_are_cut_at_the_cap() {
        let mut uart = Uart::new();
        let mut ends = [None; 3];
        let mut count = 0;
        for i in 0..(2 * LINE_CAP + 10) {
            if let Some(line) = uart.write(0, b'a' + (i % 26) as u8) {
                assert_eq!(line.text.len(), LINE_CAP);
                assert_eq!(line.text[0], b'a' + ((count * LINE_CAP) % 26) as u8);
                ends[count] = Some(line.end);
                count += 1;
            }
        }
        assert_eq!(count, 2);
        assert_eq!(ends[..2], [Some(LineEnd::Full); 2]);
        assert_eq!(uart.write(0, b'\n').map(|line| line.text.len()), Some(10));
        // A newline right after a full line ends it: no empty line.
        for _ in 0..LINE_CAP - 1 {
            put(&mut uart, 0, b'x');
        }
        assert_eq!(
            uart.write(0, b'x').map(|line| line.end),
            Some(LineEnd::Full)
        );
        put(&mut uart, 0, b'\r');
        put(&mut uart, 0, b'\n');
        let line = uart.write(0, b'\n').unwrap();
        assert_eq!((line.text, line.end), (&b""[..], LineEnd::Newline));
    }
}
