use loader::{detect, load, Format, LoadError};

use crate::support::*;

#[test]
fn detects_each_format_by_its_aligned_magic() {
    assert_eq!(detect(&BzImage::default().build()), Some(Format::Linux));
    assert_eq!(detect(&multiboot2_header(&[])), Some(Format::Multiboot2));
    assert_eq!(
        detect(&multiboot1_header(0, None)),
        Some(Format::Multiboot1)
    );
    // Misaligned: a multiboot1 header at 2 bytes in, a multiboot2 header at 4.
    assert_eq!(
        detect(&[vec![0; 2], multiboot1_header(0, None)].concat()),
        None
    );
    assert_eq!(detect(&[vec![0; 4], multiboot2_header(&[])].concat()), None);
    // Beyond the first 8 KiB / 32 KiB.
    assert_eq!(
        detect(&[vec![0; 8192], multiboot1_header(0, None)].concat()),
        None
    );
    assert_eq!(
        detect(&[vec![0; 32768], multiboot2_header(&[])].concat()),
        None
    );
    // A kernel with both headers boots by multiboot2, as GRUB does.
    assert_eq!(
        detect(&[multiboot2_header(&[]), multiboot1_header(0, None)].concat()),
        Some(Format::Multiboot2)
    );
}

#[test]
fn refuses_non_kernels_with_a_reason() {
    let mut mem = VecMemory::new(MIB as usize * 4);
    let map = memory_map(4 * MIB);
    let plain_elf = elf(
        true,
        0x20_0000,
        &[Segment {
            paddr: 0x20_0000,
            data: vec![0x90; 16],
            memsz: 16,
        }],
    );
    assert_eq!(detect(&plain_elf), None);
    let err = load(&plain_elf, "", &[], &map, None, &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::ElfWithoutMultiboot), "{err}");
    let err = load(b"just some bytes", "", &[], &map, None, &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::UnknownFormat), "{err}");
    let err = load(&[], "", &[], &map, None, &mut mem).unwrap_err();
    assert!(matches!(err, LoadError::UnknownFormat), "{err}");
    assert!(mem.untouched());
}

#[test]
fn error_messages_are_one_line() {
    let errors = [
        LoadError::UnknownFormat,
        LoadError::ElfWithoutMultiboot,
        LoadError::BadChecksum(Format::Multiboot2),
        LoadError::Truncated("setup header"),
        LoadError::BadHeader("x"),
        LoadError::NotX86Executable,
        LoadError::BadSegment(1),
        LoadError::BadEntry(5),
        LoadError::UnsupportedMultiboot1Flags(4),
        LoadError::UnsupportedTag {
            tag: 9,
            name: "EFI amd64 entry address",
        },
        LoadError::UnsupportedInfoRequest {
            tag: 8,
            name: "framebuffer info",
        },
        LoadError::LinuxProtocolTooOld(0x205),
        LoadError::NotLoadedHigh,
        LoadError::TooManyModules { got: 2, max: 1 },
        LoadError::CmdlineTooLong { len: 3, max: 2 },
        LoadError::EmptyModule(0),
        LoadError::NulInString,
        LoadError::TooManyRegions(129),
        LoadError::BadRsdp,
        LoadError::OutsideRam {
            item: loader::Item::Module(1),
            start: 0,
            end: 1,
            limit: 0,
        },
        LoadError::Overlap(loader::Item::Kernel, loader::Item::Initrd),
        LoadError::NoRoom(loader::Item::Initrd),
        LoadError::Memory(loader::MemoryError { gpa: 1, len: 2 }),
    ];
    for err in errors {
        let text = err.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
    }
}
