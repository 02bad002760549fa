use loader::{load, Entry32, Format, Item, LoadError, MemoryRegion, Module, RegionKind};

use crate::support::*;

const RAM: u64 = 64 * MIB;
/// l1-hv's default RAM for kernels, which Debian's kernel (init_size ~50 MiB at 16 MiB) needs.
const KERNEL_RAM: u64 = 256 * MIB;
const BOOT_PARAMS: u64 = 0x7000;

fn load_bz(
    image: &[u8],
    cmdline: &str,
    modules: &[Module],
    mem: &mut VecMemory,
) -> Result<Entry32, LoadError> {
    load(
        image,
        cmdline,
        modules,
        &memory_map(mem.ram.len() as u64),
        Some(&rsdp()),
        mem,
    )
}

#[test]
fn relocatable_bzimage_with_initrd() {
    let bz = BzImage::default();
    let image = bz.build();
    assert_eq!(loader::detect(&image), Some(Format::Linux));
    let initrd = vec![0x5A; 0x2345];
    let mut mem = VecMemory::new(RAM as usize);
    let cmdline = "console=ttyS0 earlyprintk=serial";
    let entry = load_bz(
        &image,
        cmdline,
        &[Module {
            bytes: &initrd,
            cmdline: "ignored",
        }],
        &mut mem,
    )
    .unwrap();
    assert_eq!(
        entry,
        Entry32 {
            eip: 0x100_0000,
            eax: 0,
            ebx: 0,
            esi: BOOT_PARAMS as u32,
            gdt_base: 0x1000,
            gdt_limit: 31,
            code_selector: 0x10,
            data_selector: 0x18
        }
    );
    // The protected-mode kernel (setup_sects 0 = 4, so from (4 + 1) * 512) at pref_address;
    // the rest of its init_size room is the kernel's own business.
    assert_eq!(mem.at(0x100_0000, bz.kernel.len()), &bz.kernel[..]);
    assert_eq!(mem.at(0x100_0000 + bz.kernel.len() as u64, 1), [PATTERN]);

    let params = mem.at(BOOT_PARAMS, 4096).to_vec();
    // Setup header copied from 0x1F1 to 0x202 + the jump offset, the rest zeroed.
    let header_end = 0x202 + JUMP_OFFSET as usize;
    assert!(params[..0x70]
        .iter()
        .chain(&params[0x78..0x1E8])
        .all(|&b| b == 0));
    assert_eq!(&params[0x202..0x206], b"HdrS");
    assert_eq!(params[0x201], JUMP_OFFSET);
    assert_eq!(mem.u32(BOOT_PARAMS + 0x238), 2047);
    assert_eq!(mem.u32(BOOT_PARAMS + 0x260), bz.init_size);
    assert_eq!(params[0x210], 0xFF, "type_of_loader");
    assert_eq!(
        mem.u32(BOOT_PARAMS + 0x214),
        0x100_0000,
        "code32_start moved with the kernel"
    );
    let cmd_line_ptr = mem.u32(BOOT_PARAMS + 0x228);
    assert_eq!(mem.c_str(cmd_line_ptr.into()), cmdline);
    assert!(u64::from(cmd_line_ptr) + (cmdline.len() as u64) < 0xA0000);
    assert!(params[header_end..0x2D0].iter().all(|&b| b == 0) || header_end >= 0x2D0);

    // initrd: page-aligned, as high as possible below the end of RAM.
    let (ramdisk, size) = (mem.u32(BOOT_PARAMS + 0x218), mem.u32(BOOT_PARAMS + 0x21C));
    assert_eq!(size, initrd.len() as u32);
    assert_eq!(u64::from(ramdisk), (RAM - initrd.len() as u64) & !0xFFF);
    assert_eq!(mem.at(ramdisk.into(), initrd.len()), &initrd[..]);

    // e820 from the caller's map.
    let map = memory_map(RAM);
    assert_eq!(params[0x1E8] as usize, map.len());
    for (i, region) in map.iter().enumerate() {
        let entry = BOOT_PARAMS + 0x2D0 + 20 * i as u64;
        assert_eq!(
            (mem.u64(entry), mem.u64(entry + 8), mem.u32(entry + 16)),
            (region.start, region.len, region.kind as u32)
        );
    }
    assert!(params[0x2D0 + 20 * map.len()..].iter().all(|&b| b == 0));
    // The RSDP: copied to the BIOS area and named in acpi_rsdp_addr (protocol 2.14+).
    assert_eq!(mem.u64(BOOT_PARAMS + 0x70), 0xE_0000);
    assert_eq!(mem.at(0xE_0000, 20), &rsdp()[..]);
}

#[test]
fn non_relocatable_loads_at_one_mib_and_initrd_respects_addr_max() {
    let bz = BzImage {
        relocatable: false,
        setup_sects: 2,
        initrd_addr_max: 0x3FF_FFFF,
        ..BzImage::default()
    };
    let initrd = vec![1; 0x1000];
    let mut mem = VecMemory::new(RAM as usize);
    let entry = load_bz(
        &bz.build(),
        "",
        &[Module {
            bytes: &initrd,
            cmdline: "",
        }],
        &mut mem,
    )
    .unwrap();
    assert_eq!(entry.eip, 0x10_0000);
    assert_eq!(mem.at(0x10_0000, bz.kernel.len()), &bz.kernel[..]);
    assert_eq!(mem.u32(BOOT_PARAMS + 0x218), 0x400_0000 - 0x1000);
    assert_eq!(mem.u32(BOOT_PARAMS + 0x214), 0x10_0000);
}

#[test]
fn refuses_old_protocol_and_zimage() {
    let mut mem = VecMemory::new(RAM as usize);
    let old = BzImage {
        version: 0x204,
        ..BzImage::default()
    }
    .build();
    assert_eq!(loader::detect(&old), Some(Format::Linux));
    let err = load_bz(&old, "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::LinuxProtocolTooOld(0x204)),
        "{err}"
    );
    assert!(err.to_string().contains("2.04 is older than 2.06"), "{err}");
    let zimage = BzImage {
        loadflags: 0,
        ..BzImage::default()
    }
    .build();
    let err = load_bz(&zimage, "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::NotLoadedHigh), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_command_line_too_long() {
    let mut mem = VecMemory::new(RAM as usize);
    let image = BzImage {
        cmdline_size: 16,
        ..BzImage::default()
    }
    .build();
    load_bz(&image, &"x".repeat(16), &[], &mut mem).unwrap();
    let mut mem = VecMemory::new(RAM as usize);
    let err = load_bz(&image, &"x".repeat(17), &[], &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::CmdlineTooLong { len: 17, max: 16 }),
        "{err}"
    );
    // Bounded by the layout too, whatever cmdline_size says.
    let image = BzImage {
        cmdline_size: u32::MAX,
        ..BzImage::default()
    }
    .build();
    let err = load_bz(&image, &"x".repeat(0x8000), &[], &mut mem).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::CmdlineTooLong {
                len: 0x8000,
                max: 0x7FFF
            }
        ),
        "{err}"
    );
    assert!(mem.untouched());
}

#[test]
fn refuses_what_does_not_fit() {
    let mut mem = VecMemory::new(32 * MIB as usize);
    // init_size reaching past RAM.
    let image = BzImage {
        init_size: 0x100_0001,
        ..BzImage::default()
    }
    .build();
    let err = load_bz(&image, "", &[], &mut mem).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::OutsideRam {
                item: Item::Kernel,
                ..
            }
        ),
        "{err}"
    );
    // An initrd that fits only over the kernel's init_size room.
    let image = BzImage::default().build();
    let initrd = vec![0; 12 * MIB as usize + 1];
    let err = load_bz(
        &image,
        "",
        &[Module {
            bytes: &initrd,
            cmdline: "",
        }],
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::NoRoom(Item::Initrd)), "{err}");
    // Two initrds.
    let one = [Module {
        bytes: b"x",
        cmdline: "",
    }; 2];
    let err = load_bz(&image, "", &one, &mut mem).unwrap_err();
    assert!(
        matches!(err, LoadError::TooManyModules { got: 2, max: 1 }),
        "{err}"
    );
    // More than 128 e820 entries.
    let map = vec![
        MemoryRegion {
            start: 0,
            len: 0x1000,
            kind: RegionKind::Ram
        };
        129
    ];
    let err = load(&image, "", &[], &map, None, &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::TooManyRegions(129)), "{err}");
    assert!(mem.untouched());
}

#[test]
fn refuses_truncated_bzimages() {
    let mut mem = VecMemory::new(RAM as usize);
    let image = BzImage::default().build();
    // syssize says more than the file holds.
    let err = load_bz(&image[..image.len() - 16], "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::Truncated(_)), "{err}");
    // No protected-mode kernel after the setup sectors.
    let err = load_bz(&image[..5 * 512], "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::Truncated(_)), "{err}");
    // Cut inside the setup header.
    let err = load_bz(&image[..0x240], "", &[], &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::Truncated(_)), "{err}");
    assert!(mem.untouched());
}

/// Debian's cloud kernel, when installed: its real setup header.
#[test]
fn real_vmlinuz_from_boot() {
    let Some(path) = std::fs::read_dir("/boot").ok().and_then(|dir| {
        dir.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
    }) else {
        println!("note: no /boot/vmlinuz-*; real-kernel test skipped");
        return;
    };
    let Ok(image) = std::fs::read(&path) else {
        println!(
            "note: {} unreadable; real-kernel test skipped",
            path.display()
        );
        return;
    };
    assert_eq!(
        loader::detect(&image),
        Some(Format::Linux),
        "{}",
        path.display()
    );
    let version = u16::from_le_bytes([image[0x206], image[0x207]]);
    let pref_address = u64::from_le_bytes(image[0x258..0x260].try_into().unwrap());
    let init_size = u32::from_le_bytes(image[0x260..0x264].try_into().unwrap());
    println!(
        "{}: boot protocol {:x}, pref_address {pref_address:#x}, init_size {init_size:#x}",
        path.display(),
        version
    );
    let initrd = vec![0x42; 0x10_0000];
    let mut mem = VecMemory::new(KERNEL_RAM as usize);
    let entry = load_bz(
        &image,
        "console=ttyS0",
        &[Module {
            bytes: &initrd,
            cmdline: "",
        }],
        &mut mem,
    )
    .unwrap();
    // A relocatable x86-64 kernel (all of Debian's) loads at pref_address.
    assert_eq!(u64::from(entry.eip), pref_address);
    let setup_sects = match image[0x1F1] {
        0 => 4,
        n => n as usize,
    };
    let kernel = &image[(setup_sects + 1) * 512..];
    assert_eq!(mem.at(pref_address, kernel.len()), kernel);
    let header_end = 0x202 + image[0x201] as usize;
    let params = mem.at(BOOT_PARAMS, 4096);
    assert_eq!(&params[0x1F1..0x210], &image[0x1F1..0x210]);
    assert_eq!(&params[0x240..header_end], &image[0x240..header_end]);
    let ramdisk = u64::from(mem.u32(BOOT_PARAMS + 0x218));
    assert!(ramdisk >= pref_address + u64::from(init_size) && ramdisk % 0x1000 == 0);
}
