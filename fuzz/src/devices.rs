//! Target `devices`: the `devices` crate (docs/devices.md). Random port-access sequences through
//! one [`PortBus`] (ports drawn near COM1, COM2, PM1a control and the fixed power/reset ports,
//! or anywhere), interleaved with console input; and the ACPI lookup over a memory image built
//! from the input (RSDP, up to four tables with checksums fixed or not, then raw byte pokes),
//! plus over the input's raw bytes.
//!
//! Properties of the bus:
//! - no panic;
//! - an IN of a port no device owns reads all ones of its width, and so does every byte lane
//!   of an access to COM1/COM2 that is not on COM1; OUTs there are absorbed;
//! - no access that touches COM1 or COM2 ever reaches the hardware (l1-hv's own console), nor
//!   one that touches no trapped port;
//! - a console line is at most `LINE_CAP` bytes and holds no `'\r'` or `'\n'`;
//! - IIR never reports a source that IER does not enable, its bits 5:4 read 0 and bits 7:6 are
//!   0b00 or 0b11 (16550A datasheet, Table IV); LSR always has THRE and TEMT;
//! - a rising edge is reported only when the line is high after the access;
//! - power events come only from OUTs that touch their ports: power-off from PM1a control,
//!   exit from 0xf4, reset from 0xcf9, 0x64, 0x92 or the reset register.
//!
//! Properties of the ACPI lookup: no panic; a bounded amount of memory read; a found PM1a
//! control port is not 0; the same memory gives the same answer.

use arbitrary::Arbitrary;
use devices::acpi::{find_power_ports, power_ports_from_rsdp, IoResetRegister};
use devices::bus::{
    AccessSize, BusConfig, Direction, IoAccess, IoOutcome, PortBus, COM1_BASE, COM2_BASE,
};
use devices::power::{PowerEvent, ResetMethod};
use devices::uart::{InterruptSource, LINE_CAP};

/// The whole input.
#[derive(Arbitrary, Clone, Debug)]
pub struct Input {
    /// PM1a control port.
    pub pm1a_control: u16,
    /// FADT reset register (port, value).
    pub reset_register: Option<(u16, u8)>,
    /// COM2 reserved.
    pub com2_reserved: bool,
    /// The accesses, in order.
    pub steps: Vec<Step>,
    /// The ACPI memory image.
    pub acpi: AcpiInput,
}

/// One step on the bus.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Step {
    /// An IN (`value` None) or OUT; `size % 3` picks 1, 2 or 4 bytes.
    Access {
        /// Where.
        port: PortChoice,
        /// Width.
        size: u8,
        /// OUT value.
        value: Option<u32>,
    },
    /// A byte of console input.
    Input(u8),
    /// The unfinished line.
    Flush,
}

/// A port, mostly near the devices.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum PortChoice {
    /// COM1's base - 3 + `n % 14` (straddling both ends).
    Com1(u8),
    /// COM2's base - 3 + `n % 14`.
    Com2(u8),
    /// PM1a control - 3 + `n % 6`.
    Pm1a(u8),
    /// One of [`KNOWN_PORTS`].
    Known(u8),
    /// Anywhere.
    Raw(u16),
}

/// Ports with a role, and their neighbours.
const KNOWN_PORTS: [u16; 16] = [
    0xf4, 0xf3, 0xf5, 0xcf8, 0xcf9, 0xcfa, 0x64, 0x63, 0x92, 0x91, 0x8900, 0x88ff, 0x8a00, 0x8a01,
    0xfffe, 0xffff,
];

/// The ACPI image: an RSDP and tables, laid out by [`AcpiInput::image`].
#[derive(Arbitrary, Clone, Debug)]
pub struct AcpiInput {
    /// RSDP revision.
    pub revision: u8,
    /// RSDP in the EBDA (first KiB, at 0x9fc00) or the BIOS area; 16-byte slot.
    pub in_ebda: bool,
    /// Slot index.
    pub slot: u16,
    /// Bit 0 misaligns the RSDP by 8; bit 1 corrupts its checksums; bits 2–5 leave table `i`'s
    /// checksum unfixed; bit 6 gives the RSDP a wild extended length.
    pub flags: u8,
    /// RSDT and XSDT pointers: table indexes (`% 4`), or raw when ≥ 4.
    pub rsdt: u8,
    /// See `rsdt`.
    pub xsdt: u8,
    /// Up to four tables at [`TABLE_BASE`] + `i` × 0x1000.
    pub tables: Vec<TableInput>,
    /// (offset, byte) written over the image last.
    pub pokes: Vec<(u32, u8)>,
    /// Raw memory for the second lookup, with the RSDP offset in it.
    pub raw: Vec<u8>,
    /// RSDP offset in `raw`.
    pub raw_rsdp: u16,
}

/// One table.
#[derive(Arbitrary, Clone, Debug)]
pub struct TableInput {
    /// `% 5`: RSDT, XSDT, FACP, APIC, anything else from `body`.
    pub kind: u8,
    /// Length override (else 36 + body).
    pub length: Option<u32>,
    /// Entries (table indexes or raw pointers) for an RSDT/XSDT.
    pub entries: Vec<u8>,
    /// The rest of the table after the header (and entries).
    pub body: Vec<u8>,
}

/// Where tables go.
const TABLE_BASE: u64 = 0x10_0000;
/// The image: the first MiB and four 4 KiB table slots.
const IMAGE_END: u64 = TABLE_BASE + 4 * 0x1000;
const EBDA: u64 = 0x9_fc00;

fn table_address(index: u8) -> u64 {
    if index < 4 {
        TABLE_BASE + u64::from(index) * 0x1000
    } else {
        u64::from(index) << 12
    }
}

fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    bytes[at] = 0u8.wrapping_sub(sum);
}

/// Memory below [`IMAGE_END`] that reads as zeros except for a few regions (cheaper per run
/// than a 1 MiB buffer).
pub struct Image {
    regions: Vec<(u64, Vec<u8>)>,
}

impl Image {
    fn read(&self, address: u64, buffer: &mut [u8]) -> bool {
        let Some(end) = address.checked_add(buffer.len() as u64) else {
            return false;
        };
        if end > IMAGE_END {
            return false;
        }
        buffer.fill(0);
        for (base, bytes) in &self.regions {
            let (from, to) = (address.max(*base), end.min(base + bytes.len() as u64));
            if from < to {
                let source = &bytes[(from - base) as usize..(to - base) as usize];
                buffer[(from - address) as usize..(to - address) as usize].copy_from_slice(source);
            }
        }
        true
    }
}

impl AcpiInput {
    /// The memory image.
    pub fn image(&self) -> Image {
        let mut regions = Vec::new();
        let rsdp = if self.in_ebda {
            regions.push((0x40e, ((EBDA >> 4) as u16).to_le_bytes().to_vec()));
            EBDA + u64::from(self.slot % 64) * 16
        } else {
            0xe_0000 + u64::from(self.slot % 8192) * 16
        } + u64::from(self.flags & 1) * 8;
        let mut header = [0u8; 36];
        header[..8].copy_from_slice(b"RSD PTR ");
        header[15] = self.revision;
        header[16..20].copy_from_slice(&(table_address(self.rsdt) as u32).to_le_bytes());
        let length: u32 = if self.flags & 0x40 != 0 {
            u32::from(self.slot) << 8
        } else {
            36
        };
        header[20..24].copy_from_slice(&length.to_le_bytes());
        header[24..32].copy_from_slice(&table_address(self.xsdt).to_le_bytes());
        fix_checksum(&mut header[..20], 8);
        fix_checksum(&mut header, 32);
        if self.flags & 2 != 0 {
            header[9] ^= 0x5a;
        }
        regions.push((rsdp, header.to_vec()));
        for (index, table) in self.tables.iter().take(4).enumerate() {
            let mut bytes = vec![0u8; 36];
            let signature: &[u8; 4] = match table.kind % 5 {
                0 => b"RSDT",
                1 => b"XSDT",
                2 => b"FACP",
                3 => b"APIC",
                _ => b"????",
            };
            bytes[..4].copy_from_slice(signature);
            for entry in &table.entries {
                let address = table_address(*entry);
                match table.kind % 5 {
                    0 => bytes.extend((address as u32).to_le_bytes()),
                    1 => bytes.extend(address.to_le_bytes()),
                    _ => {}
                }
            }
            bytes.extend(&table.body);
            bytes.truncate(0x1000);
            if table.kind % 5 == 4 && table.body.len() >= 4 {
                bytes[..4].copy_from_slice(&table.body[..4]);
            }
            let length = table.length.unwrap_or(bytes.len() as u32);
            bytes[4..8].copy_from_slice(&length.to_le_bytes());
            if self.flags & (4 << index) == 0 {
                fix_checksum(&mut bytes, 9);
            }
            regions.push((table_address(index as u8), bytes));
        }
        // Pokes land in the RSDP and the tables (the only non-zero bytes).
        let total: usize = regions.iter().map(|(_, bytes)| bytes.len()).sum();
        for &(offset, byte) in &self.pokes {
            let mut offset = offset as usize % total;
            for (_, bytes) in regions.iter_mut() {
                if offset < bytes.len() {
                    bytes[offset] = byte;
                    break;
                }
                offset -= bytes.len();
            }
        }
        Image { regions }
    }
}

/// A reader over `memory` at physical address 0 that counts the bytes it is asked for.
fn reader<'a>(memory: &'a [u8], read: &'a mut u64) -> impl FnMut(u64, &mut [u8]) -> bool + 'a {
    move |address, buffer| {
        *read += buffer.len() as u64;
        let Ok(start) = usize::try_from(address) else {
            return false;
        };
        match start
            .checked_add(buffer.len())
            .and_then(|end| memory.get(start..end))
        {
            Some(bytes) => {
                buffer.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

/// The ACPI lookup properties.
fn check_acpi(acpi: &AcpiInput) {
    let image = acpi.image();
    let mut read = 0;
    let found = find_power_ports(|address, buffer: &mut [u8]| {
        read += buffer.len() as u64;
        image.read(address, buffer)
    });
    // The RSDP search (129 KiB) plus a few tables of at most 64 KiB each, checksummed once.
    assert!(read < 1 << 20, "read {read} bytes");
    if let Ok(ports) = found {
        assert_ne!(ports.pm1a_control, 0);
    }
    assert_eq!(
        find_power_ports(|address, buffer| image.read(address, buffer)),
        found
    );
    let mut read = 0;
    let raw = power_ports_from_rsdp(reader(&acpi.raw, &mut read), u64::from(acpi.raw_rsdp));
    assert!(
        read <= 8 * acpi.raw.len() as u64 + 1024,
        "read {read} bytes of {}",
        acpi.raw.len()
    );
    if let Ok(ports) = raw {
        assert_ne!(ports.pm1a_control, 0);
    }
}

impl PortChoice {
    fn port(self, pm1a: u16) -> u16 {
        let near =
            |base: u16, n: u8, span: u8| base.wrapping_sub(3).wrapping_add(u16::from(n % span));
        match self {
            PortChoice::Com1(n) => near(COM1_BASE, n, 14),
            PortChoice::Com2(n) => near(COM2_BASE, n, 14),
            PortChoice::Pm1a(n) => near(pm1a, n, 6),
            PortChoice::Known(n) => KNOWN_PORTS[usize::from(n) % KNOWN_PORTS.len()],
            PortChoice::Raw(port) => port,
        }
    }
}

/// The ports an access covers (lanes past 0xffff do not exist).
fn lanes(access: IoAccess) -> impl Iterator<Item = (u32, u16)> {
    (0..u32::from(access.size.bytes()))
        .filter_map(move |lane| Some((lane, u16::try_from(u32::from(access.port) + lane).ok()?)))
}

/// Runs the input.
pub fn check(input: &Input) {
    check_acpi(&input.acpi);
    let config = BusConfig {
        pm1a_control: input.pm1a_control,
        reset_register: input
            .reset_register
            .map(|(port, value)| IoResetRegister { port, value }),
        com2_reserved: input.com2_reserved,
    };
    let mut bus = PortBus::new(config);
    let trapped: Vec<_> = bus.trapped_ranges().collect();
    let com1 = COM1_BASE..=COM1_BASE + 7;
    let com2 = COM2_BASE..=COM2_BASE + 7;
    for step in &input.steps {
        let (port, size, value) = match *step {
            Step::Access { port, size, value } => (port, size, value),
            Step::Input(byte) => {
                let raised = bus.push_com1_input(byte);
                assert!(raised.is_none() || bus.com1().irq_level());
                continue;
            }
            Step::Flush => {
                if let Some(line) = bus.flush_com1() {
                    check_line(line.text);
                }
                continue;
            }
        };
        let size = [AccessSize::Byte, AccessSize::Word, AccessSize::Dword][usize::from(size % 3)];
        let direction = value.map_or(Direction::In, Direction::Out);
        let access = IoAccess {
            port: port.port(input.pm1a_control),
            size,
            direction,
        };
        let touches = |range: &std::ops::RangeInclusive<u16>| {
            lanes(access).any(|(_, port)| range.contains(&port))
        };
        let on_serial = touches(&com1) || (input.com2_reserved && touches(&com2));
        let on_trapped = trapped.iter().any(touches);
        let ier = bus.com1().interrupt_enable();
        let dispatch = bus.access(access);
        let (outcome, raised) = (dispatch.outcome, dispatch.raise_irq);
        match outcome {
            IoOutcome::Read(value) => {
                assert_eq!(value & !size.all_ones(), 0, "read wider than the access");
                if !on_trapped {
                    assert_eq!(value, size.all_ones(), "absent port");
                }
                for (lane, port) in lanes(access) {
                    let byte = (value >> (8 * lane)) as u8;
                    if on_serial && !com1.contains(&port) {
                        assert_eq!(byte, 0xff, "lane {port:#x} of a serial access");
                    }
                    if port == COM1_BASE + 2 {
                        check_iir(byte, ier);
                    }
                    if port == COM1_BASE + 5 {
                        assert_eq!(byte & 0x60, 0x60, "LSR THRE and TEMT");
                    }
                }
            }
            IoOutcome::Line(line) => {
                assert!(touches(&com1));
                check_line(line.text);
            }
            IoOutcome::Written => assert!(value.is_some()),
            IoOutcome::PassToHardware => {
                assert!(on_trapped && !on_serial, "{access:?} reached the hardware");
            }
            IoOutcome::Power(event) => {
                assert!(value.is_some() && !on_serial);
                let port_touched = |port: u16| touches(&(port..=port));
                let pm1a = input.pm1a_control;
                let ok = match event {
                    PowerEvent::PoweredOff { sleep_type } => {
                        sleep_type < 8 && touches(&(pm1a..=pm1a.saturating_add(1)))
                    }
                    PowerEvent::Exited { status } => status & 1 == 1 && port_touched(0xf4),
                    PowerEvent::Reset { how } => match how {
                        ResetMethod::ResetControl { .. } => access.port == 0xcf9,
                        ResetMethod::KeyboardController => access.port == 0x64,
                        ResetMethod::SystemControlPortA => access.port == 0x92,
                        ResetMethod::AcpiResetRegister => {
                            Some(access.port) == input.reset_register.map(|(port, _)| port)
                        }
                    },
                };
                assert!(ok, "{event:?} from {access:?}");
            }
        }
        assert!(
            raised.is_none() || bus.com1().irq_level(),
            "edge without a high line"
        );
    }
}

fn check_line(text: &[u8]) {
    assert!(text.len() <= LINE_CAP, "line of {} bytes", text.len());
    assert!(!text.contains(&b'\n') && !text.contains(&b'\r'));
}

fn check_iir(iir: u8, ier: devices::uart::InterruptEnable) {
    assert_eq!(iir & 0x30, 0, "IIR bits 5:4");
    assert!(iir & 0xc0 == 0 || iir & 0xc0 == 0xc0, "IIR bits 7:6");
    if let Some(source) = InterruptSource::from_iir(iir) {
        assert!(
            ier.contains(source.enable_bit()),
            "IIR {iir:#x} with IER {ier:?}"
        );
    } else {
        assert_eq!(iir & 0x0f, 0x01, "IIR: a source or 'none'");
    }
}
