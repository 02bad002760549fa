use loader::{load, Entry32, Format, Item, LoadError, Module};

use crate::support::*;

const RAM: u64 = 64 * MIB;
const INFO: u64 = 0x1_0000;

/// A kvm-unit-tests-shaped kernel: ELF32 linked at 4 MiB, 16 MiB of BSS, the multiboot1
/// header at the start of its text.
fn kvm_unit_test(class64: bool) -> Vec<u8> {
    let mut text = multiboot1_header(0b11, None);
    text.extend_from_slice(&[0x90; 100]);
    let data = vec![0x11; 0x800];
    elf(
        class64,
        0x40_0000 + 12,
        &[
            Segment {
                paddr: 0x40_0000,
                data: text,
                memsz: 0x1000,
            },
            Segment {
                paddr: 0x40_1000,
                data,
                memsz: 16 * MIB,
            },
        ],
    )
}

fn load_into(
    image: &[u8],
    cmdline: &str,
    modules: &[Module],
    mem: &mut VecMemory,
) -> Result<Entry32, LoadError> {
    load(image, cmdline, modules, &memory_map(RAM), None, mem)
}

#[test]
fn elf32_kernel_with_environment_module() {
    let image = kvm_unit_test(false);
    assert_eq!(loader::detect(&image), Some(Format::Multiboot1));
    let env = b"KEY=VAL\nOTHER=1\n";
    let modules = [Module {
        bytes: env,
        cmdline: "env",
    }];
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load_into(&image, "x86/apic.flat -smp 1", &modules, &mut mem).unwrap();

    assert_eq!(
        entry,
        Entry32 {
            eip: 0x40_000C,
            eax: 0x2BAD_B002,
            ebx: INFO as u32,
            esi: 0,
            gdt_base: 0x1000,
            gdt_limit: 31,
            code_selector: 0x10,
            data_selector: 0x18
        }
    );
    // Segments by physical address, BSS zeroed up to p_memsz, nothing past it.
    assert_eq!(mem.u32(0x40_0000), 0x1BAD_B002);
    assert!(mem.at(0x40_0000 + 12, 100).iter().all(|&b| b == 0x90));
    assert!(mem
        .at(0x40_0000 + 112, 0x1000 - 112)
        .iter()
        .all(|&b| b == 0));
    assert!(mem.at(0x40_1000, 0x800).iter().all(|&b| b == 0x11));
    assert!(mem
        .at(0x40_1800, 16 * MIB as usize - 0x800)
        .iter()
        .all(|&b| b == 0));

    // Boot information (spec 3.3).
    assert_eq!(mem.u32(INFO), 1 | 1 << 2 | 1 << 3 | 1 << 6 | 1 << 9);
    assert_eq!(mem.u32(INFO + 4), 640);
    assert_eq!(mem.u32(INFO + 8), (RAM - MIB) as u32 / 1024);
    assert_eq!(mem.c_str(mem.u32(INFO + 16).into()), "x86/apic.flat -smp 1");
    assert_eq!(mem.c_str(mem.u32(INFO + 64).into()), "l1-hv");
    assert_eq!(mem.u32(INFO + 20), 1);
    let module = u64::from(mem.u32(INFO + 24));
    let (start, end) = (mem.u32(module), mem.u32(module + 4));
    // Page-aligned after the image's end (BSS included).
    assert_eq!(
        u64::from(start),
        (0x40_1000 + 16 * MIB).next_multiple_of(0x1000)
    );
    assert_eq!(end - start, env.len() as u32);
    assert_eq!(mem.at(start.into(), env.len()), env);
    assert_eq!(mem.c_str(mem.u32(module + 8).into()), "env");

    let map = memory_map(RAM);
    assert_eq!(mem.u32(INFO + 44), 24 * map.len() as u32);
    let mmap = u64::from(mem.u32(INFO + 48));
    for (i, region) in map.iter().enumerate() {
        let entry = mmap + 24 * i as u64;
        assert_eq!(mem.u32(entry), 20);
        assert_eq!(mem.u64(entry + 4), region.start);
        assert_eq!(mem.u64(entry + 12), region.len);
        assert_eq!(mem.u32(entry + 20), region.kind as u32);
    }
    // The boot GDT: null, null, flat code, flat data.
    assert_eq!(mem.u64(0x1010), 0x00CF_9B00_0000_FFFF);
    assert_eq!(mem.u64(0x1018), 0x00CF_9300_0000_FFFF);
}

#[test]
fn elf64_kernel() {
    let image = kvm_unit_test(true);
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load_into(&image, "", &[], &mut mem).unwrap();
    assert_eq!(entry.eip, 0x40_000C);
    assert_eq!(mem.u32(0x40_0000), 0x1BAD_B002);
    assert_eq!(mem.u32(INFO + 20), 0);
    assert_eq!(mem.c_str(mem.u32(INFO + 16).into()), "");
}

/// The a.out kludge: header 8 bytes into the file, text+data loaded from the file's start.
fn aout_image(load_addr: u32, bss_end: u32) -> Vec<u8> {
    let header_addr = load_addr + 8;
    let mut image = vec![0xF4; 8];
    let fields = [
        header_addr,
        load_addr,
        load_addr + 0x400,
        bss_end,
        load_addr + 0x40,
    ];
    image.extend(multiboot1_header(0, Some(fields)));
    image.resize(0x400, 0xCC);
    // Past load_end_addr: not loaded.
    image.extend_from_slice(&[0xEE; 0x100]);
    image
}

#[test]
fn aout_kludge_loads_text_data_and_bss() {
    let image = aout_image(0x20_0000, 0x20_2000);
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load_into(&image, "a", &[], &mut mem).unwrap();
    assert_eq!(entry.eip, 0x20_0040);
    assert_eq!(mem.at(0x20_0000, 8), [0xF4; 8]);
    assert_eq!(mem.u32(0x20_0008), 0x1BAD_B002);
    assert!(mem.at(0x20_0400, 0x1C00).iter().all(|&b| b == 0));
    assert_eq!(mem.at(0x20_2000, 1), [PATTERN]);
}

#[test]
fn refuses_bad_checksum() {
    let mut image = kvm_unit_test(false);
    image[FIRST_SEGMENT_OFFSET + 8] ^= 1;
    let mut mem = VecMemory::new(RAM as usize);
    let err = load_into(&image, "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::BadChecksum(Format::Multiboot1)),
        "{err}"
    );
    assert!(mem.untouched());
}

#[test]
fn refuses_video_mode_requirement() {
    let image = [multiboot1_header(1 << 2, None), vec![0; 64]].concat();
    let mut mem = VecMemory::new(RAM as usize);
    let err = load_into(&image, "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::UnsupportedMultiboot1Flags(4)),
        "{err}"
    );
    assert!(mem.untouched());
}

#[test]
fn refuses_segment_outside_ram_and_image_larger_than_ram() {
    // BSS reaching past the end of RAM.
    let image = aout_image(0x20_0000, RAM as u32 + 0x1000);
    let mut mem = VecMemory::new(RAM as usize);
    let err = load_into(&image, "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::OutsideRam {
                item: Item::Segment(0),
                ..
            }
        ),
        "{err}"
    );
    assert!(mem.untouched());
    // The kvm-unit-tests image (20 MiB with BSS) in 16 MiB of RAM.
    let mut small = VecMemory::new(16 * MIB as usize);
    let err = load(
        &kvm_unit_test(false),
        "",
        &[],
        &memory_map(16 * MIB),
        None,
        &mut small,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::OutsideRam {
                item: Item::Segment(1),
                ..
            }
        ),
        "{err}"
    );
    assert!(small.untouched());
}

#[test]
fn refuses_truncated_images() {
    let image = kvm_unit_test(false);
    let mut mem = VecMemory::new(RAM as usize);
    // Cut inside the second segment's file part.
    let err = load_into(&image[..0x2400], "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::BadSegment(1)), "{err}");
    // Cut inside the program headers... and the ELF header itself.
    for len in [FIRST_SEGMENT_OFFSET + 16, 60] {
        let mut cut = image[..len].to_vec();
        cut.extend(multiboot1_header(0, None));
        let err = load_into(&cut, "", &[], &mut mem).unwrap_err();
        assert!(
            matches!(err, LoadError::BadSegment(_) | LoadError::Elf(_)),
            "{err}"
        );
    }
    // Address fields cut off after the checksum.
    let header = multiboot1_header(0, Some([0x20_0000; 5]));
    let err = load_into(&header[..20], "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::Truncated(_)), "{err}");
    // load_end_addr past the end of the file.
    let err = load_into(&aout_image(0x20_0000, 0)[..0x300], "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::Truncated(_)), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_overlaps() {
    let mut mem = VecMemory::new(RAM as usize);
    // A kernel loaded low, whose module runs into the boot information.
    let big = vec![1; 0x1_0000];
    let modules = [Module {
        bytes: &big,
        cmdline: "",
    }];
    let err = load_into(&aout_image(0x2000, 0), "", &modules, &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::Overlap(Item::Module(0), Item::BootInfo)),
        "{err}"
    );
    // A kernel over the boot GDT.
    let err = load_into(&aout_image(0xE00, 0), "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::Overlap(Item::Segment(0), Item::Gdt)),
        "{err}"
    );
    // Two ELF segments over each other.
    let header = multiboot1_header(0, None);
    let overlapping = elf(
        false,
        0x40_0000,
        &[
            Segment {
                paddr: 0x40_0000,
                data: header,
                memsz: 0x2000,
            },
            Segment {
                paddr: 0x40_1000,
                data: vec![2; 16],
                memsz: 16,
            },
        ],
    );
    let err = load_into(&overlapping, "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::Overlap(Item::Segment(0), Item::Segment(1))),
        "{err}"
    );
    assert!(mem.untouched());
}

#[test]
fn refuses_nul_in_strings_and_bad_entry() {
    let mut mem = VecMemory::new(RAM as usize);
    let err = load_into(&kvm_unit_test(false), "a\0b", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::NulInString), "{err}");
    let mut image = aout_image(0x20_0000, 0);
    // entry_addr outside text+data.
    image[8 + 28..8 + 32].copy_from_slice(&0x30_0000u32.to_le_bytes());
    let err = load_into(&image, "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::BadEntry(0x30_0000)), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_boot_information_past_conventional_memory() {
    let mut mem = VecMemory::new(RAM as usize);
    let cmdline = "x".repeat(0x9_0000);
    let err = load_into(&kvm_unit_test(false), &cmdline, &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::NoRoom(Item::BootInfo)), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_module_ending_at_4_gib() {
    // 5 GiB of RAM: the limit is mod_end's 32 bits, not RAM.
    let mut mem = Sparse {
        ram_size: 5 << 30,
        writes: Vec::new(),
    };
    let image = aout_image(0xFFFF_D000, 0);
    let page = vec![3; 0x1000];
    let fits = [Module {
        bytes: &page,
        cmdline: "",
    }];
    load(&image, "", &fits, &memory_map(64 * MIB), None, &mut mem).unwrap();
    assert!(mem.writes.contains(&(0xFFFF_E000, 0x1000)));
    let two_pages = vec![3; 0x2000];
    let reaches = [Module {
        bytes: &two_pages,
        cmdline: "",
    }];
    let mut mem = Sparse {
        ram_size: 5 << 30,
        writes: Vec::new(),
    };
    let err = load(&image, "", &reaches, &memory_map(64 * MIB), None, &mut mem).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::OutsideRam {
                item: Item::Module(0),
                end: 0x1_0000_0000,
                ..
            }
        ),
        "{err}"
    );
    assert!(mem.writes.is_empty());
}
