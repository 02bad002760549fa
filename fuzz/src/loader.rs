//! Target `loader`: arbitrary kernel images for the guest kernel loader (crate `loader`), each
//! shaped as one format so the fuzzer gets past detection: raw bytes; a multiboot1 header
//! (checksum made to hold) with address fields or an ELF32/ELF64 body of arbitrary program
//! headers; a multiboot2 header of arbitrary tags; a bzImage setup header of arbitrary fields.
//! Command line, modules, memory map, RSDP and RAM size (up to 8 GiB, never allocated) vary too.
//!
//! Properties (docs/loaders.md): no panic; every write lies inside `[0, ram_size)` and below
//! 4 GiB; no two writes overlap (each byte has one owner); a refused image wrote nothing; an
//! accepted one was detected, enters at EIP < 4 GiB with the format's EAX/EBX/ESI, the boot GDT
//! and selectors 0x10/0x18, and wrote the GDT.

use arbitrary::Arbitrary;
use loader::{
    detect, load, Entry32, Format, GuestMemory, LoadError, MemoryError, MemoryRegion, Module,
    RegionKind,
};

/// The image, in one of the shapes.
#[derive(Arbitrary, Debug)]
pub enum Shape {
    Raw(Vec<u8>),
    Multiboot1 {
        /// Header offset in 4-byte units (within the first 8 KiB).
        slot: u16,
        flags: u32,
        address_fields: [u32; 5],
        elf: Option<Elf>,
        tail: Vec<u8>,
    },
    Multiboot2 {
        /// Header offset in 8-byte units (within the first 32 KiB).
        slot: u16,
        architecture: u32,
        tags: Vec<Tag>,
        elf: Option<Elf>,
        tail: Vec<u8>,
    },
    Linux(Setup),
}

/// An ELF file header and program headers around the multiboot header.
#[derive(Arbitrary, Debug)]
pub struct Elf {
    pub class64: bool,
    pub machine: u16,
    pub entry: u32,
    pub segments: Vec<ProgramHeader>,
}

#[derive(Arbitrary, Debug)]
pub struct ProgramHeader {
    pub load: bool,
    pub offset: u16,
    pub paddr: u32,
    pub vaddr: u32,
    pub filesz: u16,
    pub memsz: u32,
}

/// A multiboot2 header tag; `size` replaces the true size when given.
#[derive(Arbitrary, Debug)]
pub struct Tag {
    pub tag: u8,
    pub flags: u16,
    pub size: Option<u32>,
    pub body: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
pub struct Setup {
    pub setup_sects: u8,
    pub jump_offset: u8,
    pub boot_flag_ok: bool,
    /// 2.00 + this (mod 0x20).
    pub minor: u8,
    pub loadflags: u8,
    pub code32_start: u32,
    pub syssize: u32,
    pub relocatable: bool,
    /// In MiB.
    pub pref_mib: u16,
    pub init_size: u32,
    pub cmdline_size: u16,
    pub initrd_addr_max: u32,
    pub kernel: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    pub shape: Shape,
    pub cmdline: String,
    pub modules: Vec<(u32, String)>,
    pub map: Vec<(u32, u32, u8)>,
    pub rsdp: Option<Vec<u8>>,
    /// RAM in 64 KiB units, up to 8 GiB.
    pub ram_units: u32,
}

/// Records writes instead of keeping bytes: sizes up to 8 GiB cost nothing, and the
/// properties are about where writes go.
struct Recorder {
    ram_size: u64,
    writes: Vec<(u64, u64)>,
}

impl Recorder {
    fn record(&mut self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        let end = gpa.checked_add(len).expect("write range overflows");
        assert!(
            end <= self.ram_size,
            "write [{gpa:#x}, {end:#x}) outside RAM {:#x}",
            self.ram_size
        );
        assert!(end <= 1 << 32, "write [{gpa:#x}, {end:#x}) above 4 GiB");
        self.writes.push((gpa, len));
        Ok(())
    }
}

impl GuestMemory for Recorder {
    fn ram_size(&self) -> u64 {
        self.ram_size
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        self.record(gpa, bytes.len() as u64)
    }

    fn fill(&mut self, gpa: u64, len: u64, _byte: u8) -> Result<(), MemoryError> {
        self.record(gpa, len)
    }
}

fn le32(out: &mut Vec<u8>, words: &[u32]) {
    out.extend(words.iter().flat_map(|w| w.to_le_bytes()));
}

/// Writes `header` at `at` (growing the file as needed).
fn place(file: &mut Vec<u8>, at: usize, header: &[u8]) {
    if file.len() < at + header.len() {
        file.resize(at + header.len(), 0);
    }
    file[at..at + header.len()].copy_from_slice(header);
}

/// An ELF file whose program headers start right after the ELF header; the multiboot header
/// goes in later at its slot.
fn elf_file(elf: &Elf) -> Vec<u8> {
    let mut file = b"\x7fELF".to_vec();
    file.extend_from_slice(&[
        if elf.class64 { 2 } else { 1 },
        1,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&elf.machine.to_le_bytes());
    le32(&mut file, &[1]);
    let (ehsize, phentsize): (u16, u16) = if elf.class64 { (64, 56) } else { (52, 32) };
    let segments = &elf.segments[..elf.segments.len().min(16)];
    if elf.class64 {
        for v in [u64::from(elf.entry), u64::from(ehsize), 0] {
            file.extend_from_slice(&v.to_le_bytes());
        }
    } else {
        le32(&mut file, &[elf.entry, ehsize.into(), 0]);
    }
    le32(&mut file, &[0]);
    for v in [ehsize, phentsize, segments.len() as u16, 0, 0, 0] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    for s in segments {
        let p_type = u32::from(s.load);
        let (offset, filesz) = (u64::from(s.offset), u64::from(s.filesz));
        let (paddr, vaddr, memsz) = (u64::from(s.paddr), u64::from(s.vaddr), u64::from(s.memsz));
        if elf.class64 {
            le32(&mut file, &[p_type, 7]);
            for v in [offset, vaddr, paddr, filesz, memsz, 0x1000] {
                file.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            let fields = [
                p_type as u64,
                offset,
                vaddr,
                paddr,
                filesz,
                memsz,
                7,
                0x1000,
            ];
            le32(&mut file, &fields.map(|v| v as u32));
        }
    }
    file
}

fn multiboot1(slot: u16, flags: u32, fields: &[u32; 5], elf: &Option<Elf>, tail: &[u8]) -> Vec<u8> {
    let mut file = elf.as_ref().map(elf_file).unwrap_or_default();
    let mut header = Vec::new();
    le32(
        &mut header,
        &[
            0x1BAD_B002,
            flags,
            0u32.wrapping_sub(0x1BAD_B002).wrapping_sub(flags),
        ],
    );
    le32(&mut header, fields);
    let at = usize::from(slot % 2048) * 4;
    let at = at.max(file.len().next_multiple_of(4)).min(8192 - 4);
    place(&mut file, at, &header);
    file.extend_from_slice(tail);
    file
}

fn multiboot2(
    slot: u16,
    architecture: u32,
    tags: &[Tag],
    elf: &Option<Elf>,
    tail: &[u8],
) -> Vec<u8> {
    let mut file = elf.as_ref().map(elf_file).unwrap_or_default();
    let mut body = Vec::new();
    for tag in tags.iter().take(16) {
        body.extend_from_slice(&u16::from(tag.tag % 12).to_le_bytes());
        body.extend_from_slice(&tag.flags.to_le_bytes());
        le32(&mut body, &[tag.size.unwrap_or(8 + tag.body.len() as u32)]);
        body.extend_from_slice(&tag.body);
        body.resize(body.len().next_multiple_of(8), 0);
    }
    le32(&mut body, &[0, 8]);
    let length = 16 + body.len() as u32;
    let mut header = Vec::new();
    let checksum = 0u32
        .wrapping_sub(0xE852_50D6)
        .wrapping_sub(architecture)
        .wrapping_sub(length);
    le32(&mut header, &[0xE852_50D6, architecture, length, checksum]);
    header.extend(body);
    let at = (usize::from(slot % 4096) * 8)
        .max(file.len().next_multiple_of(8))
        .min(32768 - 8);
    place(&mut file, at, &header);
    file.extend_from_slice(tail);
    file
}

fn bzimage(s: &Setup) -> Vec<u8> {
    let sects = if s.setup_sects == 0 {
        4
    } else {
        usize::from(s.setup_sects % 16)
    };
    let mut file = vec![0u8; (sects + 1) * 512];
    let mut put = |at: usize, bytes: &[u8]| place(&mut file, at, bytes);
    put(0x1F1, &[s.setup_sects % 16]);
    put(0x1F4, &s.syssize.to_le_bytes());
    put(
        0x1FE,
        &(if s.boot_flag_ok { 0xAA55u16 } else { 0 }).to_le_bytes(),
    );
    put(0x200, &[0xEB, s.jump_offset]);
    put(0x202, b"HdrS");
    put(0x206, &(0x200 + u16::from(s.minor % 0x20)).to_le_bytes());
    put(0x211, &[s.loadflags]);
    put(0x214, &s.code32_start.to_le_bytes());
    put(0x22C, &s.initrd_addr_max.to_le_bytes());
    put(0x234, &[u8::from(s.relocatable)]);
    put(0x238, &u32::from(s.cmdline_size).to_le_bytes());
    put(0x258, &(u64::from(s.pref_mib) << 20).to_le_bytes());
    put(0x260, &s.init_size.to_le_bytes());
    file.extend_from_slice(&s.kernel);
    file
}

const KINDS: [RegionKind; 4] = [
    RegionKind::Ram,
    RegionKind::Reserved,
    RegionKind::Acpi,
    RegionKind::Nvs,
];

/// Module bytes: modules of arbitrary length share this buffer.
static BACKING: [u8; 1 << 18] = [0x4D; 1 << 18];

fn image(input: &Input) -> Vec<u8> {
    match &input.shape {
        Shape::Raw(bytes) => bytes.clone(),
        Shape::Multiboot1 {
            slot,
            flags,
            address_fields,
            elf,
            tail,
        } => multiboot1(*slot, *flags, address_fields, elf, tail),
        Shape::Multiboot2 {
            slot,
            architecture,
            tags,
            elf,
            tail,
        } => multiboot2(*slot, *architecture, tags, elf, tail),
        Shape::Linux(setup) => bzimage(setup),
    }
}

/// Loads the input's image into a [`Recorder`].
fn run(input: &Input, image: &[u8]) -> (Result<Entry32, LoadError>, Recorder) {
    let modules: Vec<Module> = input
        .modules
        .iter()
        .take(8)
        .map(|(len, cmdline)| Module {
            bytes: &BACKING[..*len as usize % BACKING.len()],
            cmdline,
        })
        .collect();
    let map: Vec<MemoryRegion> = input
        .map
        .iter()
        .take(160)
        .map(|&(start, len, kind)| MemoryRegion {
            start: u64::from(start) << 8,
            len: u64::from(len) << 8,
            kind: KINDS[usize::from(kind % 4)],
        })
        .collect();
    let ram_size = u64::from(input.ram_units % (1 << 17)) << 16;
    let mut mem = Recorder {
        ram_size,
        writes: Vec::new(),
    };
    let result = load(
        image,
        &input.cmdline,
        &modules,
        &map,
        input.rsdp.as_deref(),
        &mut mem,
    );
    (result, mem)
}

/// The seeds' behaviour class: the shape, and the format loaded or the refusal's kind.
pub fn classify(input: &Input) -> String {
    let shape = match input.shape {
        Shape::Raw(_) => "raw",
        Shape::Multiboot1 { .. } => "mb1",
        Shape::Multiboot2 { .. } => "mb2",
        Shape::Linux(_) => "linux",
    };
    let image = image(input);
    match run(input, &image).0 {
        Ok(_) => format!("{shape}-ok-{:?}", detect(&image)),
        Err(e) => {
            let debug = format!("{e:?}");
            let kind = debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string();
            format!("{shape}-{kind}")
        }
    }
}

pub fn check(input: &Input) {
    let image = image(input);
    let (result, mem) = run(input, &image);
    let Ok(entry) = result else {
        assert!(
            mem.writes.is_empty(),
            "refused ({}) after writing",
            result.unwrap_err()
        );
        return;
    };
    let format = detect(&image).expect("loaded an undetected image");
    let (eax, esi) = match format {
        Format::Linux => (0, 0x7000),
        Format::Multiboot2 => (0x36D7_6289, 0),
        Format::Multiboot1 => (0x2BAD_B002, 0),
    };
    assert_eq!((entry.eax, entry.esi), (eax, esi));
    assert_eq!(
        (
            entry.gdt_base,
            entry.gdt_limit,
            entry.code_selector,
            entry.data_selector
        ),
        (0x1000, 31, 0x10, 0x18)
    );
    assert!(
        mem.writes
            .iter()
            .any(|&(gpa, len)| gpa == 0x1000 && len == 32),
        "no GDT"
    );
    let mut writes: Vec<(u64, u64)> = mem
        .writes
        .iter()
        .copied()
        .filter(|&(_, len)| len > 0)
        .collect();
    writes.sort_unstable();
    for pair in writes.windows(2) {
        assert!(
            pair[0].0 + pair[0].1 <= pair[1].0,
            "overlapping writes {:x?}",
            pair
        );
    }
}
