//! A Vec-backed guest memory and builders of small synthetic kernel images.

use loader::{GuestMemory, MemoryError, MemoryRegion, RegionKind};

/// Guest RAM in a Vec, pre-filled with a pattern so zeroed BSS and untouched bytes show.
pub struct VecMemory {
    pub ram: Vec<u8>,
    pub writes: usize,
}

pub const PATTERN: u8 = 0xA5;

impl VecMemory {
    pub fn new(size: usize) -> Self {
        Self {
            ram: vec![PATTERN; size],
            writes: 0,
        }
    }

    pub fn at(&self, gpa: u64, len: usize) -> &[u8] {
        &self.ram[gpa as usize..gpa as usize + len]
    }

    pub fn u32(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(self.at(gpa, 4).try_into().unwrap())
    }

    pub fn u64(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(self.at(gpa, 8).try_into().unwrap())
    }

    /// The NUL-terminated string at `gpa`.
    pub fn c_str(&self, gpa: u64) -> &str {
        let bytes = &self.ram[gpa as usize..];
        let len = bytes.iter().position(|&b| b == 0).expect("NUL");
        std::str::from_utf8(&bytes[..len]).unwrap()
    }

    pub fn untouched(&self) -> bool {
        self.writes == 0 && self.ram.iter().all(|&b| b == PATTERN)
    }

    fn range(&mut self, gpa: u64, len: u64) -> Result<&mut [u8], MemoryError> {
        let end = gpa
            .checked_add(len)
            .filter(|&end| end <= self.ram.len() as u64);
        end.ok_or(MemoryError { gpa, len })?;
        self.writes += 1;
        Ok(&mut self.ram[gpa as usize..(gpa + len) as usize])
    }
}

impl GuestMemory for VecMemory {
    fn ram_size(&self) -> u64 {
        self.ram.len() as u64
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        self.range(gpa, bytes.len() as u64)?.copy_from_slice(bytes);
        Ok(())
    }

    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError> {
        self.range(gpa, len)?.fill(byte);
        Ok(())
    }
}

pub const MIB: u64 = 1 << 20;

/// The map l1-hv describes for `ram` bytes of RAM: conventional memory, the BIOS hole,
/// RAM from 1 MiB, an ACPI range and NVS above it.
pub fn memory_map(ram: u64) -> Vec<MemoryRegion> {
    vec![
        MemoryRegion {
            start: 0,
            len: 0x9F000,
            kind: RegionKind::Ram,
        },
        MemoryRegion {
            start: 0x9F000,
            len: 0x61000,
            kind: RegionKind::Reserved,
        },
        MemoryRegion {
            start: MIB,
            len: ram - MIB,
            kind: RegionKind::Ram,
        },
        MemoryRegion {
            start: 0xFED0_0000,
            len: 0x1000,
            kind: RegionKind::Acpi,
        },
        MemoryRegion {
            start: 0xFEE0_0000,
            len: 0x1000,
            kind: RegionKind::Nvs,
        },
    ]
}

/// A revision-0 RSDP: signature, checksum, OEM ID, revision, RSDT address.
pub fn rsdp() -> Vec<u8> {
    let mut bytes = b"RSD PTR ".to_vec();
    bytes.push(0);
    bytes.extend_from_slice(b"L1HVOE");
    bytes.push(0);
    bytes.extend_from_slice(&0xBFFE_0000u32.to_le_bytes());
    let sum = bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    bytes[8] = sum.wrapping_neg();
    bytes
}

pub fn le32(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A loadable segment: physical address, file bytes, memory size.
pub struct Segment {
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
}

/// Where segment data starts in the file: 4 KiB in, inside the first 8 KiB multiboot1 scans.
pub const FIRST_SEGMENT_OFFSET: usize = 0x1000;

/// An x86 executable ELF (32- or 64-bit), segments at consecutive 4 KiB-aligned offsets.
pub fn elf(class64: bool, entry: u64, segments: &[Segment]) -> Vec<u8> {
    let (ehsize, phentsize) = if class64 { (64, 56) } else { (52, 32) };
    let mut file = vec![0u8; FIRST_SEGMENT_OFFSET];
    let mut offsets = Vec::new();
    for segment in segments {
        offsets.push(file.len() as u64);
        file.extend_from_slice(&segment.data);
        file.resize(file.len().next_multiple_of(0x1000), 0);
    }
    let mut header = Vec::new();
    header.extend_from_slice(b"\x7fELF");
    header.extend_from_slice(&[if class64 { 2 } else { 1 }, 1, 1, 0]);
    header.resize(16, 0);
    header.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    header.extend_from_slice(&(if class64 { 62u16 } else { 3 }).to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    let word = |v: u64, out: &mut Vec<u8>| {
        if class64 {
            out.extend_from_slice(&v.to_le_bytes())
        } else {
            out.extend_from_slice(&(v as u32).to_le_bytes())
        }
    };
    word(entry, &mut header);
    word(ehsize as u64, &mut header); // e_phoff
    word(0, &mut header); // e_shoff
    header.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    header.extend_from_slice(&(ehsize as u16).to_le_bytes());
    header.extend_from_slice(&(phentsize as u16).to_le_bytes());
    header.extend_from_slice(&(segments.len() as u16).to_le_bytes());
    header.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    assert_eq!(header.len(), ehsize);
    for (segment, offset) in segments.iter().zip(offsets) {
        let filesz = segment.data.len() as u64;
        if class64 {
            header.extend_from_slice(&le32(&[1, 7])); // PT_LOAD, RWX
            for v in [
                offset,
                segment.paddr,
                segment.paddr,
                filesz,
                segment.memsz,
                0x1000,
            ] {
                header.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            let fields = [
                1,
                offset,
                segment.paddr,
                segment.paddr,
                filesz,
                segment.memsz,
                7,
                0x1000,
            ];
            header.extend_from_slice(&le32(&fields.map(|v| v as u32)));
        }
    }
    assert!(header.len() <= FIRST_SEGMENT_OFFSET);
    file[..header.len()].copy_from_slice(&header);
    file
}

/// A multiboot1 header: magic, flags, checksum, then `address_fields` when given (flag 16 set).
pub fn multiboot1_header(flags: u32, address_fields: Option<[u32; 5]>) -> Vec<u8> {
    let flags = flags | if address_fields.is_some() { 1 << 16 } else { 0 };
    let checksum = 0u32.wrapping_sub(0x1BAD_B002).wrapping_sub(flags);
    let mut header = le32(&[0x1BAD_B002, flags, checksum]);
    header.extend(address_fields.iter().flat_map(|f| le32(f)));
    header
}

/// A multiboot2 header tag: type, flags, size, body, padded to 8 bytes.
pub fn mb2_tag(tag: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut bytes = tag.to_le_bytes().to_vec();
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    bytes
}

/// A multiboot2 header holding `tags` and the end tag.
pub fn multiboot2_header(tags: &[Vec<u8>]) -> Vec<u8> {
    let mut body: Vec<u8> = tags.concat();
    body.extend(mb2_tag(0, 0, &[]));
    let length = 16 + body.len() as u32;
    let checksum = 0u32.wrapping_sub(0xE852_50D6).wrapping_sub(length);
    let mut header = le32(&[0xE852_50D6, 0, length, checksum]);
    header.extend(body);
    header
}

/// Setup-header fields of a synthetic bzImage.
pub struct BzImage {
    pub version: u16,
    pub setup_sects: u8,
    pub loadflags: u8,
    pub relocatable: bool,
    pub pref_address: u64,
    pub init_size: u32,
    pub cmdline_size: u32,
    pub initrd_addr_max: u32,
    pub kernel: Vec<u8>,
}

impl Default for BzImage {
    fn default() -> Self {
        Self {
            version: 0x20F,
            setup_sects: 0,
            loadflags: 1,
            relocatable: true,
            pref_address: 0x100_0000,
            init_size: 0x40_0000,
            cmdline_size: 2047,
            initrd_addr_max: 0x7FFF_FFFF,
            kernel: (0..0x3000u32).map(|i| (i % 251) as u8).collect(),
        }
    }
}

/// The setup header ends at 0x202 + this (the jump offset at 0x201): through init_size.
pub const JUMP_OFFSET: u8 = (0x264 - 0x202) as u8;

impl BzImage {
    pub fn build(&self) -> Vec<u8> {
        let sects = if self.setup_sects == 0 {
            4
        } else {
            self.setup_sects as usize
        };
        let mut image = vec![0u8; (sects + 1) * 512];
        let mut put = |at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
        put(0x1F1, &[self.setup_sects]);
        put(0x1F4, &((self.kernel.len() / 16) as u32).to_le_bytes());
        put(0x1FE, &0xAA55u16.to_le_bytes());
        put(0x200, &[0xEB, JUMP_OFFSET]);
        put(0x202, b"HdrS");
        put(0x206, &self.version.to_le_bytes());
        put(0x211, &[self.loadflags]);
        put(0x214, &0x10_0000u32.to_le_bytes());
        put(0x22C, &self.initrd_addr_max.to_le_bytes());
        put(0x230, &0x20_0000u32.to_le_bytes());
        put(0x234, &[self.relocatable as u8]);
        put(0x238, &self.cmdline_size.to_le_bytes());
        put(0x258, &self.pref_address.to_le_bytes());
        put(0x260, &self.init_size.to_le_bytes());
        image.extend_from_slice(&self.kernel);
        image
    }
}

/// RAM of any size that records where writes go instead of keeping bytes.
pub struct Sparse {
    pub ram_size: u64,
    pub writes: Vec<(u64, u64)>,
}

impl GuestMemory for Sparse {
    fn ram_size(&self) -> u64 {
        self.ram_size
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        self.writes.push((gpa, bytes.len() as u64));
        Ok(())
    }

    fn fill(&mut self, gpa: u64, len: u64, _byte: u8) -> Result<(), MemoryError> {
        self.writes.push((gpa, len));
        Ok(())
    }
}
