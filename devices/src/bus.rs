//! The ports l1-hv traps for a Linux guest, and the dispatch of one trapped IN/OUT.
//!
//! l1-hv turns [`PortBus::trapped_ranges`] into its I/O bitmaps. VT-x exits on an IN/OUT when
//! the bitmap bit of any port it touches is set (SDM vol. 3 §26.1.3), so an access can reach
//! [`PortBus::access`] partly outside a device; byte lanes are therefore routed one port at a
//! time, as the ISA bus splits a wide access to an 8-bit device:
//!
//! - COM1 (0x3f8–0x3ff): the [`Uart`], byte by byte;
//! - COM2 (0x2f8–0x2ff, when reserved for l1-hv): absent, all ones, writes ignored;
//! - PM1a control: writes with SLP_EN power off; everything else goes to the hardware (the
//!   guest's ACPI driver reads and writes the real register);
//! - 0xf4: QEMU's exit device; 0x8900 and 0x8a00–0x8a01: Bochs' shutdown and debugger ports,
//!   swallowed so that a guest cannot end the emulator l1-hv runs in;
//! - 0xcf9, 0x64, 0x92 and the FADT's reset register: reset requests; any other access goes to
//!   the hardware (PCI configuration through 0xcf8, the i8042 driver, the A20 gate);
//! - anything else that reaches the bus: absent.
//!
//! COM1's interrupt: [`Dispatch::raise_irq`] reports a rising edge of [`Uart::irq_level`] caused
//! by the access (or by [`PortBus::push_com1_input`]). ISA IRQ 4 is edge-triggered, so l1-hv
//! injects the guest's vector for IRQ 4 on each edge; a level that stays high gives no new
//! edge, as on the real line, and the guest's 8250 driver loops on IIR until it reads "no
//! interrupt", which makes the line fall.

use crate::acpi::IoResetRegister;
use crate::power::{
    self, PowerEvent, ResetMethod, BOCHS_COMMAND_PORT, BOCHS_SHUTDOWN_PORT, DEBUG_EXIT_PORT,
    I8042_COMMAND_PORT, RESET_CONTROL_PORT, SYSTEM_CONTROL_A_PORT,
};
use crate::uart::{Line, LineEnd, Uart, REGISTER_COUNT};
use core::ops::RangeInclusive;

/// COM1's base port (the guest's emulated 16550A).
pub const COM1_BASE: u16 = 0x3f8;
/// COM2's base port (absent for the guest when reserved).
pub const COM2_BASE: u16 = 0x2f8;
/// COM1's ISA interrupt line.
pub const COM1_IRQ: IsaIrq = IsaIrq(4);
/// Width of the PM1 control register in bytes (ACPI 6.5 §4.8.3.2.1: 16 bits).
const PM1_CONTROL_LEN: u16 = 2;
/// Bochs' debugger command port is 16-bit.
const BOCHS_COMMAND_LEN: u16 = 2;
/// An IN/OUT moves at most 4 bytes, so a register reached by one spans at most 4 ports.
const MAX_REGISTER_LEN: u16 = 4;

/// An ISA interrupt line (IRQ 0–15), for l1-hv to translate into the vector the guest
/// programmed for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsaIrq(pub u8);

/// Width of an IN/OUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    Byte,
    Word,
    Dword,
}

impl AccessSize {
    /// Number of bytes (ports) the access covers.
    pub fn bytes(self) -> u16 {
        match self {
            AccessSize::Byte => 1,
            AccessSize::Word => 2,
            AccessSize::Dword => 4,
        }
    }

    /// All ones of this width: what an absent device reads as (the bus's pull-ups).
    pub fn all_ones(self) -> u32 {
        match self {
            AccessSize::Byte => 0xff,
            AccessSize::Word => 0xffff,
            AccessSize::Dword => 0xffff_ffff,
        }
    }
}

/// IN or OUT, with the value written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    /// The value written; bits above the access's width are ignored.
    Out(u32),
}

/// One trapped port access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    pub size: AccessSize,
    pub direction: Direction,
}

/// What l1-hv does with the access. Every outcome but [`IoOutcome::PassToHardware`] completes
/// the instruction (an IN's destination gets [`IoOutcome::Read`]'s value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOutcome<'a> {
    /// An IN's value, of the access's width.
    Read(u32),
    /// An OUT the emulated devices absorbed.
    Written,
    /// An OUT to COM1 that completed a line of console output, to relay.
    Line(Line<'a>),
    /// An OUT that powers off, exits or resets the guest.
    Power(PowerEvent),
    /// l1-hv performs the IN/OUT on the real port.
    PassToHardware,
}

/// The result of [`PortBus::access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatch<'a> {
    pub outcome: IoOutcome<'a>,
    /// The access made COM1's interrupt line rise.
    pub raise_irq: Option<IsaIrq>,
}

/// What the bus needs from the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// PM1a control port ([`crate::acpi::PowerPorts::pm1a_control`]; 0xb004 on Bochs' PIIX4,
    /// 0x604 on QEMU).
    pub pm1a_control: u16,
    /// The FADT's reset register when it is an I/O port ([`crate::acpi::ResetRegister::io`]).
    pub reset_register: Option<IoResetRegister>,
    /// COM2 belongs to l1-hv: the guest sees no device there. When false, COM2 is not trapped.
    pub com2_reserved: bool,
}

/// The devices behind trapped ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Com1,
    Com2,
    Pm1aControl,
    DebugExit,
    ResetControl,
    I8042Command,
    SystemControlA,
    BochsShutdown,
    BochsCommand,
    ResetRegister,
}

/// An outcome before a completed line is borrowed from the UART.
enum Routed {
    Done(IoOutcome<'static>),
    Line(LineEnd),
}

/// The trapped ports and their devices.
#[derive(Clone, Debug)]
pub struct PortBus {
    config: BusConfig,
    com1: Uart,
}

impl PortBus {
    pub fn new(config: BusConfig) -> Self {
        PortBus {
            config,
            com1: Uart::new(),
        }
    }

    /// The ports to set in the I/O bitmaps (ranges may overlap, e.g. a reset register at
    /// 0xcf9).
    pub fn trapped_ranges(&self) -> impl Iterator<Item = RangeInclusive<u16>> + '_ {
        self.devices().map(|(range, _)| range)
    }

    /// Handles one trapped access.
    pub fn access(&mut self, access: IoAccess) -> Dispatch<'_> {
        let before = self.com1.irq_level();
        let routed = self.route(access);
        let raise_irq = (!before && self.com1.irq_level()).then_some(COM1_IRQ);
        let outcome = match routed {
            Routed::Done(outcome) => outcome,
            Routed::Line(end) => IoOutcome::Line(self.com1.completed_line(end)),
        };
        Dispatch { outcome, raise_irq }
    }

    /// Gives the guest one byte of console input on COM1; the IRQ when its line rises.
    pub fn push_com1_input(&mut self, byte: u8) -> Option<IsaIrq> {
        let before = self.com1.irq_level();
        self.com1.push_input(byte);
        (!before && self.com1.irq_level()).then_some(COM1_IRQ)
    }

    /// COM1's unfinished line, e.g. when the guest powers off ([`Uart::flush`]).
    pub fn flush_com1(&mut self) -> Option<Line<'_>> {
        self.com1.flush()
    }

    /// COM1's state, for l1-hv to poll its interrupt line ([`Uart::irq_level`]).
    pub fn com1(&self) -> &Uart {
        &self.com1
    }

    /// Every trapped range with its device, in the order accesses are matched.
    fn devices(&self) -> impl Iterator<Item = (RangeInclusive<u16>, Device)> {
        let span = |first: u16, len: u16| first..=first.saturating_add(len - 1);
        let config = self.config;
        [
            Some((span(COM1_BASE, REGISTER_COUNT), Device::Com1)),
            config
                .com2_reserved
                .then(|| (span(COM2_BASE, REGISTER_COUNT), Device::Com2)),
            Some((
                span(config.pm1a_control, PM1_CONTROL_LEN),
                Device::Pm1aControl,
            )),
            Some((span(DEBUG_EXIT_PORT, 1), Device::DebugExit)),
            Some((span(RESET_CONTROL_PORT, 1), Device::ResetControl)),
            Some((span(I8042_COMMAND_PORT, 1), Device::I8042Command)),
            Some((span(SYSTEM_CONTROL_A_PORT, 1), Device::SystemControlA)),
            Some((span(BOCHS_SHUTDOWN_PORT, 1), Device::BochsShutdown)),
            Some((
                span(BOCHS_COMMAND_PORT, BOCHS_COMMAND_LEN),
                Device::BochsCommand,
            )),
            config
                .reset_register
                .map(|reset| (span(reset.port, 1), Device::ResetRegister)),
        ]
        .into_iter()
        .flatten()
    }

    /// The ports (byte lanes) the access covers; lanes past 0xffff do not exist.
    fn lanes(access: IoAccess) -> impl Iterator<Item = (u32, u16)> {
        (0..u32::from(access.size.bytes())).filter_map(move |lane| {
            Some((lane, u16::try_from(u32::from(access.port) + lane).ok()?))
        })
    }

    fn route(&mut self, access: IoAccess) -> Routed {
        let touches = |range: &RangeInclusive<u16>| {
            Self::lanes(access).any(|(_, port)| range.contains(&port))
        };
        // The serial ports first: nothing that touches them reaches another device or the
        // hardware (COM1 is l1-hv's own console).
        let serial = |device| matches!(device, Device::Com1 | Device::Com2);
        if self
            .devices()
            .any(|(range, device)| serial(device) && touches(&range))
        {
            return self.byte_lanes(access);
        }
        if let (Some(reset), Direction::Out(value)) = (self.config.reset_register, access.direction)
        {
            if access.port == reset.port
                && access.size == AccessSize::Byte
                && value as u8 == reset.value
            {
                return Routed::Done(IoOutcome::Power(PowerEvent::Reset {
                    how: ResetMethod::AcpiResetRegister,
                }));
            }
        }
        let device = self
            .devices()
            .find(|(range, _)| touches(range))
            .map(|(_, device)| device);
        let outcome = match (device, access.direction) {
            (None, Direction::In) => IoOutcome::Read(access.size.all_ones()),
            (None, Direction::Out(_)) => IoOutcome::Written,
            (Some(device), Direction::In) => match device {
                Device::DebugExit | Device::BochsShutdown | Device::BochsCommand => {
                    IoOutcome::Read(access.size.all_ones())
                }
                _ => IoOutcome::PassToHardware,
            },
            (Some(device), Direction::Out(value)) => self.write(device, access, value),
        };
        Routed::Done(outcome)
    }

    /// An OUT to a device other than the UARTs.
    fn write(&self, device: Device, access: IoAccess, value: u32) -> IoOutcome<'static> {
        let byte = (access.size == AccessSize::Byte).then_some(value as u8);
        let event = match device {
            Device::Pm1aControl => {
                let register = Self::value_from(access, value, self.config.pm1a_control);
                power::pm1_control_write(power::Pm1Control::from_bits_retain(register as u16))
            }
            Device::DebugExit => Some(power::debug_exit_write(Self::value_from(
                access,
                value,
                DEBUG_EXIT_PORT,
            ))),
            Device::ResetControl if access.port == RESET_CONTROL_PORT => {
                byte.and_then(power::reset_control_write)
            }
            Device::I8042Command if access.port == I8042_COMMAND_PORT => {
                byte.and_then(power::i8042_command)
            }
            Device::SystemControlA if access.port == SYSTEM_CONTROL_A_PORT => {
                byte.and_then(power::system_control_a_write)
            }
            Device::BochsShutdown | Device::BochsCommand => return IoOutcome::Written,
            _ => None,
        };
        event.map_or(IoOutcome::PassToHardware, IoOutcome::Power)
    }

    /// The value an OUT puts into the register at `base` (up to 4 bytes from it): lane `i` goes
    /// to byte `port + i - base`; lanes outside the register are left out.
    fn value_from(access: IoAccess, value: u32, base: u16) -> u32 {
        Self::lanes(access)
            .filter_map(|(lane, port)| {
                let offset = port
                    .checked_sub(base)
                    .filter(|offset| *offset < MAX_REGISTER_LEN)?;
                Some(((value >> (8 * lane)) & 0xff) << (8 * u32::from(offset)))
            })
            .fold(0, |register, byte| register | byte)
    }

    /// An access that touches COM1 or COM2, one port per byte lane; lanes on other ports read
    /// all ones and drop writes, as l1-hv cannot perform part of an IN/OUT on the hardware (no
    /// driver makes such accesses).
    fn byte_lanes(&mut self, access: IoAccess) -> Routed {
        let com1 = COM1_BASE..COM1_BASE + REGISTER_COUNT;
        // Lanes past port 0xffff stay all ones too.
        let mut read = access.size.all_ones();
        let mut line = None;
        for (lane, port) in Self::lanes(access) {
            let on_com1 = com1.contains(&port);
            let offset = port.wrapping_sub(COM1_BASE) as u8;
            match access.direction {
                Direction::In => {
                    let byte = if on_com1 {
                        self.com1.read(offset)
                    } else {
                        0xff
                    };
                    read = read & !(0xff << (8 * lane)) | u32::from(byte) << (8 * lane);
                }
                Direction::Out(value) if on_com1 => {
                    let byte = (value >> (8 * lane)) as u8;
                    line = self.com1.write_register(offset, byte).or(line);
                }
                Direction::Out(_) => {}
            }
        }
        match (access.direction, line) {
            (Direction::In, _) => Routed::Done(IoOutcome::Read(read)),
            (Direction::Out(_), Some(end)) => Routed::Line(end),
            (Direction::Out(_), None) => Routed::Done(IoOutcome::Written),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uart::LINE_CAP;

    const BOCHS: BusConfig = BusConfig {
        pm1a_control: 0xb004,
        reset_register: None,
        com2_reserved: true,
    };

    fn io(port: u16, size: AccessSize, direction: Direction) -> IoAccess {
        IoAccess {
            port,
            size,
            direction,
        }
    }

    fn inb(bus: &mut PortBus, port: u16) -> IoOutcome<'static> {
        let dispatch = bus.access(io(port, AccessSize::Byte, Direction::In));
        assert_eq!(dispatch.raise_irq, None);
        match dispatch.outcome {
            IoOutcome::Read(value) => IoOutcome::Read(value),
            IoOutcome::PassToHardware => IoOutcome::PassToHardware,
            other => panic!("IN gave {other:?}"),
        }
    }

    /// An OUT's outcome when it is not a line (lines are checked where they are expected).
    fn out(bus: &mut PortBus, port: u16, size: AccessSize, value: u32) -> IoOutcome<'static> {
        match bus.access(io(port, size, Direction::Out(value))).outcome {
            IoOutcome::Line(line) => panic!("unexpected line {line:?}"),
            IoOutcome::Read(value) => IoOutcome::Read(value),
            IoOutcome::Written => IoOutcome::Written,
            IoOutcome::Power(event) => IoOutcome::Power(event),
            IoOutcome::PassToHardware => IoOutcome::PassToHardware,
        }
    }

    fn outb(bus: &mut PortBus, port: u16, value: u8) -> IoOutcome<'static> {
        out(bus, port, AccessSize::Byte, value.into())
    }

    fn read(bus: &mut PortBus, port: u16, size: AccessSize) -> u32 {
        match bus.access(io(port, size, Direction::In)).outcome {
            IoOutcome::Read(value) => value,
            other => panic!("IN {port:#x} gave {other:?}"),
        }
    }

    fn reset(how: ResetMethod) -> IoOutcome<'static> {
        IoOutcome::Power(PowerEvent::Reset { how })
    }

    #[test]
    fn trapped_ranges_cover_each_device() {
        let bus = PortBus::new(BusConfig {
            reset_register: Some(IoResetRegister {
                port: 0x1234,
                value: 1,
            }),
            ..BOCHS
        });
        let trapped = |port: u16| bus.trapped_ranges().any(|range| range.contains(&port));
        for port in [
            0x3f8, 0x3ff, 0x2f8, 0x2ff, 0xb004, 0xb005, 0xf4, 0xcf9, 0x64, 0x92, 0x8900, 0x8a00,
            0x8a01, 0x1234,
        ] {
            assert!(trapped(port), "{port:#x}");
        }
        for port in [
            0x3f7, 0x400, 0x2f7, 0xb000, 0xb006, 0xcf8, 0xcfc, 0x60, 0x20, 0x40, 0x80,
        ] {
            assert!(!trapped(port), "{port:#x}");
        }
        let bus = PortBus::new(BusConfig {
            com2_reserved: false,
            ..BOCHS
        });
        assert!(!bus.trapped_ranges().any(|range| range.contains(&0x2f8)));
    }

    #[test]
    fn absent_ports_read_all_ones_of_the_width() {
        let mut bus = PortBus::new(BOCHS);
        assert_eq!(read(&mut bus, 0x2f8, AccessSize::Byte), 0xff);
        assert_eq!(read(&mut bus, 0x2fd, AccessSize::Word), 0xffff);
        assert_eq!(read(&mut bus, 0x2fc, AccessSize::Dword), 0xffff_ffff);
        assert_eq!(outb(&mut bus, 0x2f8, b'x'), IoOutcome::Written);
        assert_eq!(
            read(&mut bus, 0x2ff, AccessSize::Byte),
            0xff,
            "COM2's SCR holds nothing"
        );
        assert_eq!(read(&mut bus, 0x8900, AccessSize::Byte), 0xff);
        assert_eq!(read(&mut bus, 0xf4, AccessSize::Dword), 0xffff_ffff);
        assert_eq!(
            read(&mut bus, 0x1000, AccessSize::Word),
            0xffff,
            "a port the bus lacks"
        );
        assert_eq!(outb(&mut bus, 0x1000, 0), IoOutcome::Written);
        // The top of the port space: lanes past 0xffff are all ones.
        assert_eq!(read(&mut bus, 0xffff, AccessSize::Dword), 0xffff_ffff);
    }

    #[test]
    fn wide_uart_accesses_are_split_into_bytes() {
        let mut bus = PortBus::new(BOCHS);
        // LCR = 0x03 and MCR = 0x0b in one word.
        assert_eq!(
            out(&mut bus, 0x3fb, AccessSize::Word, 0x0b03),
            IoOutcome::Written
        );
        assert_eq!(read(&mut bus, 0x3fb, AccessSize::Byte), 0x03);
        assert_eq!(read(&mut bus, 0x3fc, AccessSize::Byte), 0x0b);
        // LSR (THRE, TEMT), MSR (CTS, DSR, DCD), SCR, then two ports beyond COM1.
        assert_eq!(outb(&mut bus, 0x3ff, 0x5a), IoOutcome::Written);
        assert_eq!(read(&mut bus, 0x3fd, AccessSize::Dword), 0xff5a_b060);
        // A dword write to 0x3fe sets SCR from its second lane and drops the lanes past COM1.
        assert_eq!(
            out(&mut bus, 0x3fe, AccessSize::Dword, 0x1122_3344),
            IoOutcome::Written
        );
        assert_eq!(read(&mut bus, 0x3ff, AccessSize::Byte), 0x33);
        // A word starting below COM1 (0x3f7 is the floppy controller's) reaches THR by lane 1.
        let dispatch = bus.access(io(0x3f7, AccessSize::Word, Direction::Out(0x0a00)));
        assert!(matches!(dispatch.outcome, IoOutcome::Line(line) if line.text.is_empty()));
        assert_eq!(
            read(&mut bus, 0x3f7, AccessSize::Word),
            0x00ff,
            "RBR empty: 0"
        );
    }

    #[test]
    fn com1_output_is_relayed_by_lines() {
        let mut bus = PortBus::new(BOCHS);
        for byte in *b"Linux\r" {
            assert_eq!(outb(&mut bus, 0x3f8, byte), IoOutcome::Written);
        }
        let dispatch = bus.access(io(
            0x3f8,
            AccessSize::Byte,
            Direction::Out(u32::from(b'\n')),
        ));
        match dispatch.outcome {
            IoOutcome::Line(line) => {
                assert_eq!(line.text, b"Linux");
                assert_eq!(line.end, LineEnd::Newline);
            }
            other => panic!("{other:?}"),
        }
        for _ in 0..LINE_CAP - 1 {
            outb(&mut bus, 0x3f8, b'y');
        }
        let dispatch = bus.access(io(0x3f8, AccessSize::Byte, Direction::Out(u32::from(b'y'))));
        assert!(matches!(dispatch.outcome, IoOutcome::Line(line) if line.text.len() == LINE_CAP));
        outb(&mut bus, 0x3f8, b'z');
        assert_eq!(bus.flush_com1().map(|line| line.text), Some(&b"z"[..]));
    }

    #[test]
    fn com1_interrupt_edges() {
        let mut bus = PortBus::new(BOCHS);
        assert_eq!(outb(&mut bus, 0x3fc, 0x08), IoOutcome::Written); // OUT2
        let enable = bus.access(io(0x3f9, AccessSize::Byte, Direction::Out(0x07)));
        assert_eq!(enable.raise_irq, Some(COM1_IRQ), "ETBEI with THR empty");
        // Still high: another write that keeps it pending is no new edge.
        assert_eq!(
            bus.access(io(0x3ff, AccessSize::Byte, Direction::Out(0)))
                .raise_irq,
            None
        );
        assert_eq!(inb(&mut bus, 0x3fa), IoOutcome::Read(0x02));
        assert!(!bus.com1().irq_level());
        let write = bus.access(io(0x3f8, AccessSize::Byte, Direction::Out(u32::from(b'a'))));
        assert_eq!(write.raise_irq, Some(COM1_IRQ), "THR empty again");
        assert_eq!(inb(&mut bus, 0x3fa), IoOutcome::Read(0x02));
        // Input with ERBFI: a rising edge; a second byte while high: none.
        assert_eq!(bus.push_com1_input(b'k'), Some(COM1_IRQ));
        assert_eq!(bus.push_com1_input(b'l'), None);
        assert_eq!(
            inb(&mut bus, 0x3fa),
            IoOutcome::Read(0x06),
            "the second byte overran"
        );
        // OUT2 off: pending sources, no line.
        assert_eq!(
            bus.access(io(0x3fc, AccessSize::Byte, Direction::Out(0)))
                .raise_irq,
            None
        );
        assert!(!bus.com1().irq_level());
        assert_eq!(
            bus.access(io(0x3fc, AccessSize::Byte, Direction::Out(8)))
                .raise_irq,
            Some(COM1_IRQ)
        );
    }

    #[test]
    fn pm1a_control_powers_off_and_passes_the_rest() {
        let mut bus = PortBus::new(BOCHS);
        let off = |sleep_type| IoOutcome::Power(PowerEvent::PoweredOff { sleep_type });
        assert_eq!(out(&mut bus, 0xb004, AccessSize::Word, 0x2000), off(0));
        assert_eq!(out(&mut bus, 0xb004, AccessSize::Word, 0x3401), off(5));
        // The high byte alone, and a dword from the PM1a event block below it.
        assert_eq!(outb(&mut bus, 0xb005, 0x34), off(5));
        assert_eq!(
            out(&mut bus, 0xb002, AccessSize::Dword, 0x2000_0000),
            off(0)
        );
        assert_eq!(
            out(&mut bus, 0xb004, AccessSize::Word, 0x0001),
            IoOutcome::PassToHardware
        );
        assert_eq!(outb(&mut bus, 0xb004, 0x01), IoOutcome::PassToHardware);
        let read = bus.access(io(0xb004, AccessSize::Word, Direction::In));
        assert_eq!(
            read.outcome,
            IoOutcome::PassToHardware,
            "the ACPI driver reads SCI_EN"
        );
    }

    #[test]
    fn debug_exit_device_ends_the_run() {
        let mut bus = PortBus::new(BOCHS);
        let exited = |status| IoOutcome::Power(PowerEvent::Exited { status });
        assert_eq!(out(&mut bus, 0xf4, AccessSize::Dword, 0), exited(1));
        assert_eq!(
            out(&mut bus, 0xf4, AccessSize::Byte, 0x1ff),
            exited(0x1ff),
            "byte lane only"
        );
        assert_eq!(out(&mut bus, 0xf4, AccessSize::Word, 0x0102), exited(0x205));
    }

    #[test]
    fn reset_requests_and_what_passes_to_hardware() {
        let mut bus = PortBus::new(BOCHS);
        let full = reset(ResetMethod::ResetControl { full: true });
        assert_eq!(outb(&mut bus, 0xcf9, 0x02), IoOutcome::PassToHardware);
        assert_eq!(outb(&mut bus, 0xcf9, 0x06), full);
        assert_eq!(inb(&mut bus, 0xcf9), IoOutcome::PassToHardware);
        // PCI CONFIG_ADDRESS covers 0xcf9: a dword there is the hardware's.
        let config_address = out(&mut bus, 0xcf8, AccessSize::Dword, 0x8000_0004);
        assert_eq!(config_address, IoOutcome::PassToHardware);
        assert_eq!(
            outb(&mut bus, 0x64, 0xfe),
            reset(ResetMethod::KeyboardController)
        );
        assert_eq!(outb(&mut bus, 0x64, 0xad), IoOutcome::PassToHardware);
        assert_eq!(inb(&mut bus, 0x64), IoOutcome::PassToHardware);
        assert_eq!(
            outb(&mut bus, 0x92, 0x01),
            reset(ResetMethod::SystemControlPortA)
        );
        assert_eq!(outb(&mut bus, 0x92, 0x02), IoOutcome::PassToHardware);
    }

    #[test]
    fn fadt_reset_register() {
        let on = |port, value| {
            PortBus::new(BusConfig {
                reset_register: Some(IoResetRegister { port, value }),
                ..BOCHS
            })
        };
        let mut bus = on(0xcf9, 0x06);
        assert_eq!(
            outb(&mut bus, 0xcf9, 0x06),
            reset(ResetMethod::AcpiResetRegister)
        );
        assert_eq!(outb(&mut bus, 0xcf9, 0x02), IoOutcome::PassToHardware);
        let mut bus = on(0x1234, 0x0f);
        assert_eq!(
            outb(&mut bus, 0x1234, 0x0f),
            reset(ResetMethod::AcpiResetRegister)
        );
        assert_eq!(outb(&mut bus, 0x1234, 0x0e), IoOutcome::PassToHardware);
        assert_eq!(inb(&mut bus, 0x1234), IoOutcome::PassToHardware);
    }

    #[test]
    fn bochs_ports_are_swallowed() {
        let mut bus = PortBus::new(BOCHS);
        for byte in *b"Shutdown" {
            assert_eq!(outb(&mut bus, 0x8900, byte), IoOutcome::Written);
        }
        assert_eq!(
            out(&mut bus, 0x8a00, AccessSize::Word, 0x8ae0),
            IoOutcome::Written
        );
        assert_eq!(outb(&mut bus, 0x8a01, 0), IoOutcome::Written);
    }
}
