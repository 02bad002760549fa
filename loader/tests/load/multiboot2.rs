use loader::{load, Entry32, Format, Item, LoadError, Module};
use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

use crate::support::*;

const RAM: u64 = 64 * MIB;
const INFO: u64 = 0x1_0000;

fn information_request(flags: u16, tags: &[u32]) -> Vec<u8> {
    mb2_tag(1, flags, &le32(tags))
}

/// An ELF kernel at 2 MiB whose multiboot2 header (with `tags`) opens its text.
fn elf_kernel(class64: bool, tags: &[Vec<u8>]) -> Vec<u8> {
    let mut text = multiboot2_header(tags);
    text.extend_from_slice(&[0x90; 64]);
    elf(
        class64,
        0x20_0000,
        &[Segment {
            paddr: 0x20_0000,
            data: text,
            memsz: 0x3000,
        }],
    )
}

/// Copies the boot information out of guest memory into an 8-byte-aligned buffer and parses
/// it with the multiboot2 crate.
fn with_boot_information(mem: &VecMemory, check: impl FnOnce(&BootInformation)) {
    let size = mem.u32(INFO) as usize;
    let mut words = vec![0u64; size.div_ceil(8)];
    // SAFETY: `words` holds at least `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size) };
    bytes.copy_from_slice(mem.at(INFO, size));
    // SAFETY: an 8-byte-aligned buffer of `size` bytes, which the header says it is.
    let info =
        unsafe { BootInformation::load(words.as_ptr().cast::<BootInformationHeader>()) }.unwrap();
    check(&info);
}

#[test]
fn elf64_kernel_boot_information_parses_back() {
    let tags = [
        information_request(0, &[1, 3, 6, 14]),
        mb2_tag(3, 0, &le32(&[0x20_0100])),
    ];
    let image = elf_kernel(true, &tags);
    assert_eq!(loader::detect(&image), Some(Format::Multiboot2));
    let (initrd, env) = (vec![7u8; 0x1800], b"A=1\n".to_vec());
    let modules = [
        Module {
            bytes: &initrd,
            cmdline: "initrd",
        },
        Module {
            bytes: &env,
            cmdline: "env file",
        },
    ];
    let map = memory_map(RAM);
    let rsdp = rsdp();
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load(
        &image,
        "console=ttyS0",
        &modules,
        &map,
        Some(&rsdp),
        &mut mem,
    )
    .unwrap();
    assert_eq!(
        entry,
        Entry32 {
            // The entry address tag overrides e_entry.
            eip: 0x20_0100,
            eax: 0x36D7_6289,
            ebx: INFO as u32,
            esi: 0,
            gdt_base: 0x1000,
            gdt_limit: 31,
            code_selector: 0x10,
            data_selector: 0x18
        }
    );
    assert_eq!(mem.u32(0x20_0000), 0xE852_50D6);
    // BSS: the text is under a page, p_memsz is three.
    assert!(mem.at(0x20_1000, 0x2000).iter().all(|&b| b == 0));
    // The RSDP copy in the BIOS area.
    assert_eq!(mem.at(0xE_0000, 20), &rsdp[..]);

    with_boot_information(&mem, |info| {
        assert_eq!(
            info.command_line_tag().unwrap().cmdline().unwrap(),
            "console=ttyS0"
        );
        assert_eq!(
            info.boot_loader_name_tag().unwrap().name().unwrap(),
            "l1-hv"
        );
        let meminfo = info.basic_memory_info_tag().unwrap();
        assert_eq!(
            (meminfo.memory_lower(), meminfo.memory_upper()),
            (640, (RAM - MIB) as u32 / 1024)
        );
        let found: Vec<_> = info
            .module_tags()
            .map(|m| {
                (
                    m.start_address(),
                    m.end_address(),
                    m.cmdline().unwrap().to_string(),
                )
            })
            .collect();
        // Page-aligned after the image (2 MiB + 0x3000), one after the other.
        assert_eq!(
            found,
            [
                (0x20_3000, 0x20_4800, "initrd".to_string()),
                (0x20_5000, 0x20_5004, "env file".to_string())
            ]
        );
        assert_eq!(mem.at(0x20_3000, initrd.len()), &initrd[..]);
        assert_eq!(mem.at(0x20_5000, 4), b"A=1\n");
        let areas = info.memory_map_tag().unwrap().memory_areas();
        assert_eq!(areas.len(), map.len());
        for (area, region) in areas.iter().zip(&map) {
            assert_eq!(
                (area.start_address(), area.size()),
                (region.start, region.len)
            );
            assert_eq!(area.typ(), MemoryAreaType::from(region.kind as u32));
        }
        let rsdp_tag = info.rsdp_v1_tag().unwrap();
        assert_eq!(rsdp_tag.oem_id().unwrap(), "L1HVOE");
        assert_eq!(rsdp_tag.rsdt_address(), 0xBFFE_0000);
        assert!(rsdp_tag.checksum_is_valid());
    });
}

#[test]
fn elf32_kernel_ignores_optional_tags() {
    // An optional EFI amd64 entry tag and framebuffer tag, module alignment, relocatable.
    let tags = [
        mb2_tag(9, 1, &le32(&[0x20_0040])),
        mb2_tag(5, 1, &le32(&[1024, 768, 32])),
        mb2_tag(6, 0, &[]),
        mb2_tag(10, 0, &le32(&[0x10_0000, 0x1000_0000, 0x1000, 0])),
    ];
    let image = elf_kernel(false, &tags);
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap();
    assert_eq!(entry.eip, 0x20_0000);
    with_boot_information(&mem, |info| {
        assert_eq!(info.module_tags().count(), 0);
        assert!(info.rsdp_v1_tag().is_none());
    });
}

#[test]
fn address_tag_kernel() {
    // The header at file offset 16; text+data from the file's start at 3 MiB.
    let load_addr = 0x30_0000u32;
    let tags = [
        mb2_tag(
            2,
            0,
            &le32(&[
                load_addr + 16,
                load_addr,
                load_addr + 0x200,
                load_addr + 0x1000,
            ]),
        ),
        mb2_tag(3, 0, &le32(&[load_addr + 0x100])),
    ];
    let mut image = vec![0xF4; 16];
    image.extend(multiboot2_header(&tags));
    image.resize(0x200, 0xCC);
    image.extend_from_slice(&[0xEE; 0x40]);
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap();
    assert_eq!(entry.eip, load_addr + 0x100);
    assert_eq!(mem.at(load_addr.into(), 16), [0xF4; 16]);
    assert_eq!(mem.u32(u64::from(load_addr) + 16), 0xE852_50D6);
    assert!(mem
        .at(u64::from(load_addr) + 0x200, 0xE00)
        .iter()
        .all(|&b| b == 0));

    // load_addr -1: from the start of the file, placed by header_addr.
    let tags = [
        mb2_tag(2, 0, &le32(&[load_addr + 16, u32::MAX, 0, 0])),
        mb2_tag(3, 0, &le32(&[load_addr + 0x100])),
    ];
    let mut image = vec![0xF4; 16];
    image.extend(multiboot2_header(&tags));
    image.resize(0x200, 0xCC);
    let mut mem = VecMemory::new(RAM as usize);
    load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap();
    assert_eq!(mem.at(load_addr.into(), 16), [0xF4; 16]);
    assert_eq!(mem.at(u64::from(load_addr) + 0x1FF, 2), [0xCC, PATTERN]);

    // An address tag without an entry address tag.
    let mut image = vec![0xF4; 16];
    image.extend(multiboot2_header(&tags[..1]));
    image.resize(0x200, 0xCC);
    let err = load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::BadHeader(_)), "{err}");
}

#[test]
fn refuses_required_unsupported_tags() {
    let mut mem = VecMemory::new(RAM as usize);
    let cases: [(Vec<u8>, &str); 4] = [
        (
            mb2_tag(9, 0, &le32(&[0x20_0040])),
            "multiboot2 header tag 9 (EFI amd64 entry address) is required but not supported",
        ),
        (
            mb2_tag(8, 0, &le32(&[0x20_0040])),
            "multiboot2 header tag 8 (EFI i386 entry address) is required but not supported",
        ),
        (
            mb2_tag(5, 0, &le32(&[1024, 768, 32])),
            "multiboot2 header tag 5 (framebuffer) is required but not supported",
        ),
        (
            information_request(0, &[1, 8]),
            "multiboot2 kernel requires boot information tag 8 (framebuffer info), not provided",
        ),
    ];
    for (tag, message) in cases {
        let err = load(
            &elf_kernel(true, &[tag]),
            "",
            &[],
            &memory_map(RAM),
            None,
            &mut mem,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), message);
    }
    // The old RSDP only when the caller gives one.
    let image = elf_kernel(true, &[information_request(0, &[14])]);
    let err = load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::UnsupportedInfoRequest { tag: 14, .. }),
        "{err}"
    );
    // ... and an optional request for what is not provided is fine.
    let image = elf_kernel(true, &[information_request(1, &[8, 14])]);
    assert!(mem.untouched());
    load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap();
}

#[test]
fn refuses_bad_headers() {
    let mut mem = VecMemory::new(RAM as usize);
    let mut image = elf_kernel(true, &[]);
    image[FIRST_SEGMENT_OFFSET + 12] ^= 1;
    let err = load(&image, "", &[], &memory_map(RAM), None, &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::BadChecksum(Format::Multiboot2)),
        "{err}"
    );
    // A tag whose size runs past header_length (checksum fixed up).
    let mut header = multiboot2_header(&[mb2_tag(3, 0, &le32(&[0x20_0000]))]);
    header[16 + 4..16 + 8].copy_from_slice(&64u32.to_le_bytes());
    let err = load(&header, "", &[], &memory_map(RAM), None, &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::BadHeader(_)), "{err}");
    // header_length past the end of the file.
    let header = multiboot2_header(&[mb2_tag(3, 0, &le32(&[0x20_0000]))]);
    let err = load(
        &header[..header.len() - 8],
        "",
        &[],
        &memory_map(RAM),
        None,
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Truncated(_)), "{err}");
    // A bad RSDP.
    let err = load(
        &elf_kernel(true, &[]),
        "",
        &[],
        &memory_map(RAM),
        Some(b"RSD PTR short"),
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::BadRsdp), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_boot_information_past_conventional_memory() {
    let mut mem = VecMemory::new(RAM as usize);
    let cmdline = "x".repeat(0x9_0000);
    let err = load(
        &elf_kernel(true, &[]),
        &cmdline,
        &[],
        &memory_map(RAM),
        None,
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::NoRoom(Item::BootInfo)), "{err}");
    // Just under the area's bound for the strings, over it with the tags' headers.
    let cmdline = "x".repeat(0x8_F000 - 24 * 5);
    let err = load(
        &elf_kernel(true, &[]),
        &cmdline,
        &[],
        &memory_map(RAM),
        None,
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::NoRoom(Item::BootInfo)), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_empty_module() {
    let mut mem = VecMemory::new(RAM as usize);
    let modules = [
        Module {
            bytes: b"x",
            cmdline: "",
        },
        Module {
            bytes: b"",
            cmdline: "",
        },
    ];
    let err = load(
        &elf_kernel(true, &[]),
        "",
        &modules,
        &memory_map(RAM),
        None,
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::EmptyModule(1)), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_module_past_ram() {
    let mut mem = VecMemory::new(4 * MIB as usize);
    let big = vec![0; 2 * MIB as usize];
    let modules = [Module {
        bytes: &big,
        cmdline: "",
    }];
    let err = load(
        &elf_kernel(true, &[]),
        "",
        &modules,
        &memory_map(4 * MIB),
        None,
        &mut mem,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::OutsideRam {
                item: Item::Module(0),
                ..
            }
        ),
        "{err}"
    );
    assert!(mem.untouched());
}
