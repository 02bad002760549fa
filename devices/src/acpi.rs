//! Finds, in the firmware's ACPI tables, the two ports through which a guest powers off or
//! resets the machine: PM1a control and the FADT's reset register, so that l1-hv traps those.
//!
//! Reads go through a caller's closure, `read(physical_address, buffer) -> bool` (false: not
//! readable), into small stack buffers; every length and offset is checked before use and
//! nothing is trusted from the tables, so malformed tables give an [`AcpiError`].

/// Longest table this module will checksum. Real RSDTs, XSDTs and FADTs are a few hundred bytes
/// (ACPI 6.5 FADT: 276); anything near this is a corrupt length field.
const MAX_TABLE_LEN: u32 = 64 * 1024;

/// Size of the common table header (ACPI 6.5 §5.2.6, Table 5.4).
const HEADER_LEN: u32 = 36;

/// ACPI 1.0 FADT length: up to and including FLAGS (offset 112).
const FADT_MIN_LEN: u32 = 116;

/// FADT field offsets (ACPI 6.5 §5.2.9, Table 5.9).
mod fadt {
    /// PM1a_CNT_BLK: 32-bit I/O port of the PM1a control register.
    pub const PM1A_CNT_BLK: u64 = 64;
    /// Fixed feature flags (Table 5.10).
    pub const FLAGS: u64 = 112;
    /// RESET_REG: generic address structure of the reset register.
    pub const RESET_REG: u64 = 116;
    /// RESET_VALUE: the byte to write to RESET_REG.
    pub const RESET_VALUE: u64 = 128;
    /// X_PM1a_CNT_BLK: generic address structure, preferred over PM1A_CNT_BLK when usable.
    pub const X_PM1A_CNT_BLK: u64 = 172;
    /// FLAGS bit 10, RESET_REG_SUP: the reset register is supported.
    pub const RESET_REG_SUP: u32 = 1 << 10;
}

/// Size of a generic address structure (ACPI 6.5 §5.2.3.2, Table 5.1).
const GAS_LEN: u64 = 12;

/// RSDP signature, checksummed length of its ACPI 1.0 part, and its layout (ACPI 6.5
/// §5.2.5.3, Table 5.3).
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
const RSDP_V1_LEN: u32 = 20;
const RSDP_V2_LEN: u32 = 36;

/// The RSDP search areas of ACPI 6.5 §5.2.5.1: the first KiB of the EBDA, whose real-mode
/// segment the BIOS data area holds at 0x40e, then the BIOS read-only area.
const EBDA_POINTER: u64 = 0x40e;
const EBDA_SEARCH_LEN: u64 = 1024;
const BIOS_AREA: core::ops::Range<u64> = 0xe0000..0x100000;
/// The RSDP sits on a 16-byte boundary in those areas.
const RSDP_ALIGN: u64 = 16;

/// The structures this module reads, for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Rsdp,
    Rsdt,
    Xsdt,
    Fadt,
}

impl Table {
    fn signature(self) -> &'static [u8; 4] {
        match self {
            Table::Rsdp => b"RSD ",
            Table::Rsdt => b"RSDT",
            Table::Xsdt => b"XSDT",
            Table::Fadt => b"FACP",
        }
    }
}

/// Why the ports could not be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP with a valid checksum in the search areas.
    RsdpNotFound,
    /// The closure could not read `len` bytes at `address` (or the address overflowed).
    Unreadable { address: u64, len: usize },
    /// The table at `address` is not the one its pointer promised.
    BadSignature { table: Table, address: u64 },
    /// A length field too short for the table's fixed fields, too long to be real, or (RSDT,
    /// XSDT) not a whole number of entries.
    BadLength {
        table: Table,
        address: u64,
        length: u32,
    },
    /// The bytes of the table do not sum to 0 (mod 256).
    BadChecksum { table: Table, address: u64 },
    /// Neither the XSDT nor the RSDT lists an FADT ("FACP").
    NoFadt,
    /// The FADT gives no PM1a control port (e.g. hardware-reduced ACPI).
    NoPm1aControl,
    /// The FADT's PM1a control block is an I/O port beyond 0xffff.
    PortOutOfRange { address: u64 },
}

/// Address space of a generic address structure (ACPI 6.5 Table 5.1, Address Space ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpace {
    SystemMemory,
    SystemIo,
    PciConfig,
    Other(u8),
}

impl From<u8> for AddressSpace {
    fn from(id: u8) -> Self {
        match id {
            0 => AddressSpace::SystemMemory,
            1 => AddressSpace::SystemIo,
            2 => AddressSpace::PciConfig,
            other => AddressSpace::Other(other),
        }
    }
}

/// A generic address structure (ACPI 6.5 §5.2.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericAddress {
    pub space: AddressSpace,
    pub bit_width: u8,
    pub bit_offset: u8,
    pub access_size: u8,
    pub address: u64,
}

impl GenericAddress {
    fn parse(bytes: [u8; GAS_LEN as usize]) -> Self {
        let mut address = [0; 8];
        address.copy_from_slice(&bytes[4..12]);
        GenericAddress {
            space: AddressSpace::from(bytes[0]),
            bit_width: bytes[1],
            bit_offset: bytes[2],
            access_size: bytes[3],
            address: u64::from_le_bytes(address),
        }
    }

    /// The I/O port, when this is an I/O-space address within the 64 KiB port space.
    fn io_port(&self) -> Option<u16> {
        match self.space {
            AddressSpace::SystemIo => u16::try_from(self.address).ok(),
            _ => None,
        }
    }
}

/// The FADT's reset register and the value that resets (ACPI 6.5 §4.8.3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    pub register: GenericAddress,
    pub value: u8,
}

impl ResetRegister {
    /// The register as an I/O port l1-hv can trap; `None` for memory or PCI configuration
    /// space, which the I/O bitmap cannot intercept.
    pub fn io(&self) -> Option<IoResetRegister> {
        self.register.io_port().map(|port| IoResetRegister {
            port,
            value: self.value,
        })
    }
}

/// A reset register in I/O space: writing `value` to `port` resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoResetRegister {
    pub port: u16,
    pub value: u8,
}

/// What the FADT says about powering off and resetting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerPorts {
    /// The PM1a control register's port (X_PM1a_CNT_BLK when it is a usable I/O address, else
    /// PM1a_CNT_BLK: ACPI 6.5 Table 5.9 says OSPM ignores the latter then).
    pub pm1a_control: u16,
    /// Only when the FADT is long enough to hold it and FLAGS.RESET_REG_SUP is set.
    pub reset: Option<ResetRegister>,
}

/// Bounded reads through the caller's closure.
struct Memory<F> {
    read: F,
}

impl<F: FnMut(u64, &mut [u8]) -> bool> Memory<F> {
    /// Fills `buffer` from `base + offset`.
    fn read_into(&mut self, base: u64, offset: u64, buffer: &mut [u8]) -> Result<(), AcpiError> {
        let address = base.wrapping_add(offset);
        let unreadable = AcpiError::Unreadable {
            address,
            len: buffer.len(),
        };
        let in_range = base
            .checked_add(offset)
            .and_then(|a| a.checked_add(buffer.len() as u64));
        if in_range.is_some() && (self.read)(address, buffer) {
            Ok(())
        } else {
            Err(unreadable)
        }
    }

    fn bytes<const N: usize>(&mut self, base: u64, offset: u64) -> Result<[u8; N], AcpiError> {
        let mut bytes = [0; N];
        self.read_into(base, offset, &mut bytes)?;
        Ok(bytes)
    }

    fn u16(&mut self, base: u64, offset: u64) -> Result<u16, AcpiError> {
        self.bytes(base, offset).map(u16::from_le_bytes)
    }

    fn u32(&mut self, base: u64, offset: u64) -> Result<u32, AcpiError> {
        self.bytes(base, offset).map(u32::from_le_bytes)
    }

    fn u64(&mut self, base: u64, offset: u64) -> Result<u64, AcpiError> {
        self.bytes(base, offset).map(u64::from_le_bytes)
    }

    /// The byte sum (mod 256) of `len` bytes at `address`, read in small pieces.
    fn sum(&mut self, address: u64, len: u32) -> Result<u8, AcpiError> {
        let mut chunk = [0u8; 64];
        let mut sum = 0u8;
        let mut done = 0;
        while done < len {
            let piece = &mut chunk[..(len - done).min(64) as usize];
            self.read_into(address, u64::from(done), piece)?;
            sum = piece.iter().fold(sum, |sum, byte| sum.wrapping_add(*byte));
            done += piece.len() as u32;
        }
        Ok(sum)
    }

    /// Checks the table at `address`: signature, a length of at least `min_len` and at most
    /// [`MAX_TABLE_LEN`], checksum. Returns the length.
    fn table(&mut self, table: Table, address: u64, min_len: u32) -> Result<u32, AcpiError> {
        if &self.bytes::<4>(address, 0)? != table.signature() {
            return Err(AcpiError::BadSignature { table, address });
        }
        let length = self.u32(address, 4)?;
        if !(min_len..=MAX_TABLE_LEN).contains(&length) {
            return Err(AcpiError::BadLength {
                table,
                address,
                length,
            });
        }
        if self.sum(address, length)? != 0 {
            return Err(AcpiError::BadChecksum { table, address });
        }
        Ok(length)
    }
}

/// The RSDP's pointers.
struct Rsdp {
    rsdt: u32,
    /// Revision ≥ 2 with a non-zero XSDT address.
    xsdt: Option<u64>,
}

/// Finds the RSDP by the BIOS search of ACPI 6.5 §5.2.5.1 and returns its address.
pub fn find_rsdp(read: impl FnMut(u64, &mut [u8]) -> bool) -> Result<u64, AcpiError> {
    let mut memory = Memory { read };
    let ebda = u64::from(memory.u16(EBDA_POINTER, 0)?) << 4;
    let ebda_area = if ebda == 0 {
        0..0
    } else {
        ebda..ebda + EBDA_SEARCH_LEN
    };
    for area in [ebda_area, BIOS_AREA] {
        for address in area.step_by(RSDP_ALIGN as usize) {
            if &memory.bytes::<8>(address, 0)? == RSDP_SIGNATURE
                && parse_rsdp(&mut memory, address).is_ok()
            {
                return Ok(address);
            }
        }
    }
    Err(AcpiError::RsdpNotFound)
}

/// Checks the RSDP at `address` (signature, the ACPI 1.0 checksum over 20 bytes and, from
/// revision 2, the extended checksum over its length).
fn parse_rsdp<F: FnMut(u64, &mut [u8]) -> bool>(
    memory: &mut Memory<F>,
    address: u64,
) -> Result<Rsdp, AcpiError> {
    let table = Table::Rsdp;
    if &memory.bytes::<8>(address, 0)? != RSDP_SIGNATURE {
        return Err(AcpiError::BadSignature { table, address });
    }
    if memory.sum(address, RSDP_V1_LEN)? != 0 {
        return Err(AcpiError::BadChecksum { table, address });
    }
    let revision = memory.bytes::<1>(address, 15)?[0];
    let rsdt = memory.u32(address, 16)?;
    if revision < 2 {
        return Ok(Rsdp { rsdt, xsdt: None });
    }
    let length = memory.u32(address, 20)?;
    if !(RSDP_V2_LEN..=MAX_TABLE_LEN).contains(&length) {
        return Err(AcpiError::BadLength {
            table,
            address,
            length,
        });
    }
    if memory.sum(address, length)? != 0 {
        return Err(AcpiError::BadChecksum { table, address });
    }
    let xsdt = memory.u64(address, 24)?;
    Ok(Rsdp {
        rsdt,
        xsdt: (xsdt != 0).then_some(xsdt),
    })
}

/// The power ports from the RSDP at `rsdp` (e.g. one a boot loader handed over).
///
/// The XSDT is used when the RSDP has one (ACPI 6.5 §5.2.8: an OS uses it when present); when it
/// is malformed or lists no FADT, the RSDT is tried, as a firmware bug should not cost the guest
/// its power-off.
pub fn power_ports_from_rsdp(
    read: impl FnMut(u64, &mut [u8]) -> bool,
    rsdp: u64,
) -> Result<PowerPorts, AcpiError> {
    let mut memory = Memory { read };
    let rsdp = parse_rsdp(&mut memory, rsdp)?;
    let from_xsdt = match rsdp.xsdt {
        Some(xsdt) => find_fadt(&mut memory, Table::Xsdt, xsdt),
        None => Err(AcpiError::NoFadt),
    };
    let fadt = match from_xsdt {
        Ok(fadt) => fadt,
        Err(error) if rsdp.rsdt == 0 => return Err(error),
        Err(_) => find_fadt(&mut memory, Table::Rsdt, u64::from(rsdp.rsdt))?,
    };
    parse_fadt(&mut memory, fadt)
}

/// [`find_rsdp`] then [`power_ports_from_rsdp`].
pub fn find_power_ports(
    mut read: impl FnMut(u64, &mut [u8]) -> bool,
) -> Result<PowerPorts, AcpiError> {
    let rsdp = find_rsdp(&mut read)?;
    power_ports_from_rsdp(read, rsdp)
}

/// The address of the FADT listed in the RSDT or XSDT at `address` (4- or 8-byte entries).
fn find_fadt<F: FnMut(u64, &mut [u8]) -> bool>(
    memory: &mut Memory<F>,
    table: Table,
    address: u64,
) -> Result<u64, AcpiError> {
    let length = memory.table(table, address, HEADER_LEN)?;
    let entry_len = if table == Table::Xsdt { 8 } else { 4 };
    if !(length - HEADER_LEN).is_multiple_of(entry_len) {
        return Err(AcpiError::BadLength {
            table,
            address,
            length,
        });
    }
    for offset in (HEADER_LEN..length).step_by(entry_len as usize) {
        let entry = if table == Table::Xsdt {
            memory.u64(address, u64::from(offset))?
        } else {
            u64::from(memory.u32(address, u64::from(offset))?)
        };
        // Entries for tables l1-hv does not need may point anywhere: skip unreadable ones.
        if memory.bytes::<4>(entry, 0).ok().as_ref() == Some(Table::Fadt.signature()) {
            return Ok(entry);
        }
    }
    Err(AcpiError::NoFadt)
}

fn parse_fadt<F: FnMut(u64, &mut [u8]) -> bool>(
    memory: &mut Memory<F>,
    address: u64,
) -> Result<PowerPorts, AcpiError> {
    let length = u64::from(memory.table(Table::Fadt, address, FADT_MIN_LEN)?);
    let x_pm1a = if length >= fadt::X_PM1A_CNT_BLK + GAS_LEN {
        Some(GenericAddress::parse(
            memory.bytes(address, fadt::X_PM1A_CNT_BLK)?,
        ))
    } else {
        None
    };
    let pm1a_control = match x_pm1a {
        Some(gas) if gas.space == AddressSpace::SystemIo && gas.address != 0 => {
            gas.io_port().ok_or(AcpiError::PortOutOfRange {
                address: gas.address,
            })?
        }
        _ => match memory.u32(address, fadt::PM1A_CNT_BLK)? {
            0 => return Err(AcpiError::NoPm1aControl),
            port => u16::try_from(port).map_err(|_| AcpiError::PortOutOfRange {
                address: u64::from(port),
            })?,
        },
    };
    let flags = memory.u32(address, fadt::FLAGS)?;
    let reset = if flags & fadt::RESET_REG_SUP != 0 && length > fadt::RESET_VALUE {
        Some(ResetRegister {
            register: GenericAddress::parse(memory.bytes(address, fadt::RESET_REG)?),
            value: memory.bytes::<1>(address, fadt::RESET_VALUE)?[0],
        })
    } else {
        None
    };
    Ok(PowerPorts {
        pm1a_control,
        reset,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Physical memory up to 1 MiB + 64 KiB.
    struct Ram(Vec<u8>);

    const RSDT_AT: u64 = 0x8_0000;
    const XSDT_AT: u64 = 0x8_1000;
    const FADT_AT: u64 = 0x8_2000;
    const OTHER_AT: u64 = 0x8_3000;
    const RSDP_AT: u64 = 0xf_5a40;

    impl Ram {
        fn new() -> Self {
            Ram(vec![0; 0x11_0000])
        }

        fn reader(&self) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
            |address, buffer| {
                let Ok(start) = usize::try_from(address) else {
                    return false;
                };
                match self.0.get(start..start.saturating_add(buffer.len())) {
                    Some(bytes) => {
                        buffer.copy_from_slice(bytes);
                        true
                    }
                    None => false,
                }
            }
        }

        fn put(&mut self, address: u64, bytes: &[u8]) {
            self.0[address as usize..address as usize + bytes.len()].copy_from_slice(bytes);
        }

        fn fix_checksum(&mut self, address: u64, len: usize, at: usize) {
            let start = address as usize;
            self.0[start + at] = 0;
            let sum = self.0[start..start + len]
                .iter()
                .fold(0u8, |s, b| s.wrapping_add(*b));
            self.0[start + at] = 0u8.wrapping_sub(sum);
        }

        fn rsdp(&mut self, address: u64, revision: u8, xsdt: u64) {
            let mut bytes = Vec::from(&RSDP_SIGNATURE[..]);
            bytes.extend([0; 1]); // checksum
            bytes.extend(b"L1TEST");
            bytes.push(revision);
            bytes.extend((RSDT_AT as u32).to_le_bytes());
            bytes.extend(36u32.to_le_bytes());
            bytes.extend(xsdt.to_le_bytes());
            bytes.extend([0; 4]); // extended checksum, reserved
            self.put(address, &bytes);
            self.fix_checksum(address, 20, 8);
            if revision >= 2 {
                self.fix_checksum(address, 36, 32);
            }
        }

        /// A table: header with `signature` and `body` after it, checksum fixed.
        fn table(&mut self, address: u64, signature: &[u8; 4], body: &[u8]) {
            let length = 36 + body.len();
            let mut bytes = Vec::from(&signature[..]);
            bytes.extend((length as u32).to_le_bytes());
            bytes.extend([1, 0]); // revision, checksum
            bytes.extend([0; 26]);
            bytes.extend(body);
            self.put(address, &bytes);
            self.fix_checksum(address, length, 9);
        }

        fn rsdt(&mut self, entries: &[u64]) {
            let body: Vec<u8> = entries
                .iter()
                .flat_map(|e| (*e as u32).to_le_bytes())
                .collect();
            self.table(RSDT_AT, b"RSDT", &body);
        }

        fn xsdt(&mut self, entries: &[u64]) {
            let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
            self.table(XSDT_AT, b"XSDT", &body);
        }

        /// An FADT of `length` bytes with PM1a_CNT_BLK, FLAGS, RESET_REG in I/O space and
        /// RESET_VALUE, and X_PM1a_CNT_BLK when given.
        fn fadt(&mut self, length: usize, pm1a: u32, flags: u32, x_pm1a: Option<(u8, u64)>) {
            let mut body = vec![0u8; length - 36];
            let mut at = |offset: usize, bytes: &[u8]| {
                if offset + bytes.len() <= length {
                    body[offset - 36..offset - 36 + bytes.len()].copy_from_slice(bytes);
                }
            };
            at(64, &pm1a.to_le_bytes());
            at(112, &flags.to_le_bytes());
            at(116, &[1, 8, 0, 1]);
            at(120, &0xcf9u64.to_le_bytes());
            at(128, &[0x06]);
            if let Some((space, address)) = x_pm1a {
                at(172, &[space, 16, 0, 2]);
                at(176, &address.to_le_bytes());
            }
            self.table(FADT_AT, b"FACP", &body);
        }

        /// Bochs-like: ACPI 1.0 RSDP in the BIOS area, RSDT with another table and the FADT.
        fn bochs() -> Self {
            let mut ram = Ram::new();
            ram.rsdp(RSDP_AT, 0, 0);
            ram.table(OTHER_AT, b"APIC", &[0; 8]);
            ram.rsdt(&[OTHER_AT, FADT_AT]);
            ram.fadt(116, 0xb004, 0, None);
            ram
        }

        fn find(&self) -> Result<PowerPorts, AcpiError> {
            find_power_ports(self.reader())
        }
    }

    const CF9_RESET: Option<IoResetRegister> = Some(IoResetRegister {
        port: 0xcf9,
        value: 6,
    });

    #[test]
    fn bochs_tables_give_pm1a_and_no_reset_register() {
        let ram = Ram::bochs();
        assert_eq!(find_rsdp(ram.reader()), Ok(RSDP_AT));
        assert_eq!(
            ram.find(),
            Ok(PowerPorts {
                pm1a_control: 0xb004,
                reset: None
            })
        );
    }

    #[test]
    fn xsdt_and_reset_register_from_an_acpi_2_fadt() {
        let mut ram = Ram::bochs();
        ram.rsdp(RSDP_AT, 2, XSDT_AT);
        ram.xsdt(&[FADT_AT]);
        // The RSDT points elsewhere: only the XSDT leads to this FADT.
        ram.rsdt(&[OTHER_AT]);
        ram.fadt(276, 0x604, fadt::RESET_REG_SUP, None);
        let ports = ram.find().unwrap();
        assert_eq!(ports.pm1a_control, 0x604);
        assert_eq!(ports.reset.and_then(|reset| reset.io()), CF9_RESET);
    }

    #[test]
    fn reset_register_needs_the_flag_and_the_length() {
        let mut ram = Ram::bochs();
        ram.fadt(128, 0xb004, fadt::RESET_REG_SUP, None);
        assert_eq!(
            ram.find().unwrap().reset,
            None,
            "RESET_VALUE beyond a 128-byte FADT"
        );
        ram.fadt(129, 0xb004, fadt::RESET_REG_SUP, None);
        assert_eq!(
            ram.find().unwrap().reset.and_then(|reset| reset.io()),
            CF9_RESET
        );
        ram.fadt(129, 0xb004, 0, None);
        assert_eq!(ram.find().unwrap().reset, None, "RESET_REG_SUP clear");
    }

    #[test]
    fn x_pm1a_is_preferred_when_it_is_an_io_port() {
        let mut ram = Ram::bochs();
        ram.fadt(244, 0xb004, 0, Some((1, 0x1804)));
        assert_eq!(ram.find().unwrap().pm1a_control, 0x1804);
        // In memory space the I/O bitmap cannot trap it: the 32-bit field is used.
        ram.fadt(244, 0xb004, 0, Some((0, 0xfee0_0000)));
        assert_eq!(ram.find().unwrap().pm1a_control, 0xb004);
        ram.fadt(244, 0xb004, 0, Some((1, 0x1_0000)));
        assert_eq!(
            ram.find(),
            Err(AcpiError::PortOutOfRange { address: 0x1_0000 })
        );
        ram.fadt(244, 0, 0, None);
        assert_eq!(ram.find(), Err(AcpiError::NoPm1aControl));
    }

    #[test]
    fn rsdp_in_the_ebda() {
        let mut ram = Ram::bochs();
        ram.put(RSDP_AT, &[0; 36]);
        ram.put(EBDA_POINTER, &0x9fc0u16.to_le_bytes());
        ram.rsdp(0x9_fc00 + 0x30, 0, 0);
        assert_eq!(find_rsdp(ram.reader()), Ok(0x9_fc30));
        assert_eq!(ram.find().unwrap().pm1a_control, 0xb004);
        // Beyond the first KiB of the EBDA it is not looked for.
        ram.put(0x9_fc30, &[0; 36]);
        ram.rsdp(0x9_fc00 + 0x400, 0, 0);
        assert_eq!(find_rsdp(ram.reader()), Err(AcpiError::RsdpNotFound));
    }

    #[test]
    fn rsdp_with_a_bad_checksum_or_alignment_is_not_found() {
        let mut ram = Ram::bochs();
        ram.0[RSDP_AT as usize + 16] ^= 1;
        assert_eq!(find_rsdp(ram.reader()), Err(AcpiError::RsdpNotFound));
        let mut ram = Ram::bochs();
        ram.put(RSDP_AT, &[0; 36]);
        ram.rsdp(RSDP_AT + 8, 0, 0);
        assert_eq!(ram.find(), Err(AcpiError::RsdpNotFound));
        // A revision-2 RSDP whose extended checksum is wrong.
        let mut ram = Ram::bochs();
        ram.rsdp(RSDP_AT, 2, XSDT_AT);
        ram.0[RSDP_AT as usize + 33] ^= 1;
        assert_eq!(
            power_ports_from_rsdp(ram.reader(), RSDP_AT),
            Err(AcpiError::BadChecksum {
                table: Table::Rsdp,
                address: RSDP_AT
            })
        );
    }

    #[test]
    fn bad_tables_are_refused() {
        let mut ram = Ram::bochs();
        ram.0[RSDT_AT as usize + 20] ^= 1;
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadChecksum {
                table: Table::Rsdt,
                address: RSDT_AT
            })
        );
        let mut ram = Ram::bochs();
        ram.0[FADT_AT as usize + 64] ^= 1;
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadChecksum {
                table: Table::Fadt,
                address: FADT_AT
            })
        );
        // A truncated FADT, checksummed as it is.
        let mut ram = Ram::bochs();
        ram.fadt(100, 0xb004, 0, None);
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadLength {
                table: Table::Fadt,
                address: FADT_AT,
                length: 100
            })
        );
        // An RSDT with half an entry.
        let mut ram = Ram::bochs();
        ram.table(RSDT_AT, b"RSDT", &[0; 6]);
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadLength {
                table: Table::Rsdt,
                address: RSDT_AT,
                length: 42
            })
        );
        // No FADT listed.
        let mut ram = Ram::bochs();
        ram.rsdt(&[OTHER_AT, 0xffff_fff0]);
        assert_eq!(ram.find(), Err(AcpiError::NoFadt));
        // The RSDP's RSDT pointer leads to something else.
        let mut ram = Ram::bochs();
        ram.put(RSDT_AT, b"XXXX");
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadSignature {
                table: Table::Rsdt,
                address: RSDT_AT
            })
        );
    }

    #[test]
    fn lengths_beyond_memory_are_unreadable_not_a_panic() {
        let mut ram = Ram::bochs();
        // An FADT 100 bytes below the end of RAM claims 60,000 bytes.
        let moved = ram.0.len() as u64 - 100;
        ram.rsdt(&[moved]);
        ram.put(moved, b"FACP");
        ram.put(moved + 4, &60_000u32.to_le_bytes());
        assert!(matches!(ram.find(), Err(AcpiError::Unreadable { .. })));
        // A length beyond the sanity cap is refused before reading.
        ram.put(moved + 4, &0x8000_0000u32.to_le_bytes());
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadLength {
                table: Table::Fadt,
                address: moved,
                length: 0x8000_0000
            })
        );
        // A pointer at the very top of the address space.
        assert!(matches!(
            power_ports_from_rsdp(ram.reader(), u64::MAX - 3),
            Err(AcpiError::Unreadable { .. })
        ));
    }

    #[test]
    fn a_broken_xsdt_falls_back_to_the_rsdt() {
        let mut ram = Ram::bochs();
        ram.rsdp(RSDP_AT, 2, XSDT_AT);
        ram.xsdt(&[FADT_AT]);
        ram.0[XSDT_AT as usize + 36] ^= 1;
        assert_eq!(ram.find().unwrap().pm1a_control, 0xb004);
        // With no RSDT to fall back on, the XSDT's error.
        ram.put(RSDP_AT + 16, &[0; 4]);
        ram.fix_checksum(RSDP_AT, 20, 8);
        ram.fix_checksum(RSDP_AT, 36, 32);
        assert_eq!(
            ram.find(),
            Err(AcpiError::BadChecksum {
                table: Table::Xsdt,
                address: XSDT_AT
            })
        );
    }
}
