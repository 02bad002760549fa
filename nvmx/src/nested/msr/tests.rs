use super::super::arch::{CR0_PG, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE};
use super::super::test_support::AnyVmcs;
use super::*;

/// vmcs02 as `prepare_vmcs02` builds it for a kernel guest: EFER, PAT and the debug controls
/// loaded and saved, TSC offsetting off.
fn vmcs02() -> AnyVmcs {
    let mut v = AnyVmcs::new();
    v.write(
        control::VMENTRY_CONTROLS,
        (EntryControls::LOAD_IA32_EFER
            | EntryControls::LOAD_IA32_PAT
            | EntryControls::LOAD_DEBUG_CONTROLS)
            .bits()
            .into(),
    );
    v.write(
        control::VMEXIT_CONTROLS,
        (ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER
            | ExitControls::SAVE_IA32_PAT
            | ExitControls::LOAD_IA32_PAT
            | ExitControls::SAVE_DEBUG_CONTROLS)
            .bits()
            .into(),
    );
    v
}

fn clear_bits(v: &mut AnyVmcs, field: u32, bits: u32) {
    let value = v.read(field) & !u64::from(bits);
    v.write(field, value);
}

/// l1-hv's bitmap for a kernel guest: only IA32_APIC_BASE (1BH) exits, both ways.
fn kernel_bitmap() -> [u8; 4096] {
    let mut bitmap = [0u8; 4096];
    for write in [false, true] {
        let bit = msr_bitmap_bit(0x1B, write).unwrap();
        bitmap[bit as usize / 8] |= 1 << (bit % 8);
    }
    bitmap
}

#[test]
fn the_bitmap_has_read_and_write_halves_for_the_low_and_high_ranges() {
    assert_eq!(msr_bitmap_bit(0x10, false), Some(0x10));
    assert_eq!(msr_bitmap_bit(0x10, true), Some(0x800 * 8 + 0x10));
    assert_eq!(msr_bitmap_bit(0x1FFF, false), Some(0x1FFF));
    assert_eq!(msr_bitmap_bit(0xC000_0080, false), Some(0x400 * 8 + 0x80));
    assert_eq!(msr_bitmap_bit(0xC000_0080, true), Some(0xC00 * 8 + 0x80));
    for outside in [0x2000, 0x4000_0000, 0xBFFF_FFFF, 0xC000_2000] {
        assert_eq!(msr_bitmap_bit(outside, false), None);
        assert_eq!(msr_bitmap_bit(outside, true), None);
    }
}

#[test]
fn segment_bases_and_sysenter_are_always_in_vmcs02() {
    let bare = AnyVmcs::new();
    for (msr, held) in [
        (IA32_SYSENTER_CS, VmcsMsr::SysenterCs),
        (IA32_SYSENTER_ESP, VmcsMsr::SysenterEsp),
        (IA32_SYSENTER_EIP, VmcsMsr::SysenterEip),
        (IA32_FS_BASE, VmcsMsr::FsBase),
        (IA32_GS_BASE, VmcsMsr::GsBase),
    ] {
        assert_eq!(VmcsMsr::of(msr, &bare), Some(held), "{msr:#x}");
    }
    // KERNEL_GS_BASE is not switched by VM entry or exit.
    assert_eq!(VmcsMsr::of(0xC000_0102, &vmcs02()), None);
}

#[test]
fn efer_pat_and_debugctl_are_in_vmcs02_only_when_it_loads_and_saves_them() {
    let v = vmcs02();
    assert_eq!(VmcsMsr::of(IA32_EFER, &v), Some(VmcsMsr::Efer));
    assert_eq!(VmcsMsr::of(IA32_PAT, &v), Some(VmcsMsr::Pat));
    assert_eq!(VmcsMsr::of(IA32_DEBUGCTL, &v), Some(VmcsMsr::DebugCtl));
    for (msr, entry, exit) in [
        (
            IA32_EFER,
            EntryControls::LOAD_IA32_EFER,
            ExitControls::SAVE_IA32_EFER,
        ),
        (
            IA32_PAT,
            EntryControls::LOAD_IA32_PAT,
            ExitControls::SAVE_IA32_PAT,
        ),
        (
            IA32_DEBUGCTL,
            EntryControls::LOAD_DEBUG_CONTROLS,
            ExitControls::SAVE_DEBUG_CONTROLS,
        ),
    ] {
        let mut no_load = vmcs02();
        clear_bits(&mut no_load, control::VMENTRY_CONTROLS, entry.bits());
        assert_eq!(VmcsMsr::of(msr, &no_load), None, "{msr:#x} not loaded");
        let mut no_save = vmcs02();
        clear_bits(&mut no_save, control::VMEXIT_CONTROLS, exit.bits());
        assert_eq!(VmcsMsr::of(msr, &no_save), None, "{msr:#x} not saved");
    }
}

#[test]
fn vmcs02_comes_before_l2s_bitmap() {
    // A test image's bitmap: every access exits; still L3's PAT is vmcs02's.
    let all = [0xFF; 4096];
    assert_eq!(
        l3_msr(IA32_PAT, false, &vmcs02(), &all),
        L3Msr::Vmcs02(VmcsMsr::Pat)
    );
    assert_eq!(
        l3_msr(IA32_FS_BASE, true, &vmcs02(), &all),
        L3Msr::Vmcs02(VmcsMsr::FsBase)
    );
}

#[test]
fn what_l2_cannot_reach_directly_is_answered_as_for_l2() {
    let bitmap = kernel_bitmap();
    let v = vmcs02();
    assert_eq!(l3_msr(0x1B, false, &v, &bitmap), L3Msr::AsForL2);
    assert_eq!(l3_msr(0x1B, true, &v, &bitmap), L3Msr::AsForL2);
    // Outside the bitmap's ranges every access exits for L2 as well.
    assert_eq!(l3_msr(0x4000_0000, false, &v, &bitmap), L3Msr::AsForL2);
    // A PAT vmcs02 does not switch is the processor's, shared with L2: by L2's bitmap.
    let mut unswitched = vmcs02();
    clear_bits(
        &mut unswitched,
        control::VMENTRY_CONTROLS,
        EntryControls::LOAD_IA32_PAT.bits(),
    );
    assert_eq!(
        l3_msr(IA32_PAT, true, &unswitched, &bitmap),
        L3Msr::Hardware
    );
    assert_eq!(
        l3_msr(IA32_PAT, true, &unswitched, &[0xFF; 4096]),
        L3Msr::AsForL2
    );
}

#[test]
fn what_l2_reaches_directly_runs_on_the_processor_with_the_tsc_offset_on_reads() {
    let bitmap = kernel_bitmap();
    let mut v = vmcs02();
    assert_eq!(l3_msr(0xC000_0102, true, &v, &bitmap), L3Msr::Hardware);
    assert_eq!(
        l3_msr(IA32_TIME_STAMP_COUNTER, false, &v, &bitmap),
        L3Msr::Hardware
    );
    v.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::USE_TSC_OFFSETTING.bits().into(),
    );
    v.write(control::TSC_OFFSET_FULL, 0x1234);
    assert_eq!(
        l3_msr(IA32_TIME_STAMP_COUNTER, false, &v, &bitmap),
        L3Msr::OffsetTsc { offset: 0x1234 }
    );
    // WRMSR of the TSC is not offset (SDM 26.3 names only RDMSR).
    assert_eq!(
        l3_msr(IA32_TIME_STAMP_COUNTER, true, &v, &bitmap),
        L3Msr::Hardware
    );
}

#[test]
fn efer_wrmsr_faults_on_reserved_bits_and_lme_under_paging_and_ignores_lma() {
    let long = EFER_LME | EFER_LMA;
    assert_eq!(
        efer_after_wrmsr(long, long | EFER_NXE, CR0_PG),
        Some(long | EFER_NXE)
    );
    assert_eq!(efer_after_wrmsr(long, long | 1 << 12, CR0_PG), None);
    assert_eq!(
        efer_after_wrmsr(long, EFER_LMA, CR0_PG),
        None,
        "LME off, paging on"
    );
    assert_eq!(
        efer_after_wrmsr(0, EFER_LME, 0),
        Some(EFER_LME),
        "LME on, paging off"
    );
    assert_eq!(
        efer_after_wrmsr(0, EFER_LME, CR0_PG),
        None,
        "LME on, paging on"
    );
    // LMA is the processor's: a write neither sets nor clears it.
    assert_eq!(
        efer_after_wrmsr(long, EFER_LME | EFER_SCE, CR0_PG),
        Some(long | EFER_SCE)
    );
    assert_eq!(efer_after_wrmsr(0, EFER_LMA, 0), Some(0));
}

#[test]
fn writes_to_vmcs02_check_what_wrmsr_checks_and_change_nothing_on_a_fault() {
    let mut v = vmcs02();
    v.write(guest::CR0, CR0_PG);
    v.write(guest::IA32_EFER_FULL, EFER_LME | EFER_LMA);
    v.write(guest::IA32_PAT_FULL, 0x0007_0406_0007_0406);

    assert_eq!(VmcsMsr::Efer.write(&mut v, EFER_LME | EFER_NXE), Ok(()));
    assert_eq!(VmcsMsr::Efer.read(&v), EFER_LME | EFER_LMA | EFER_NXE);
    assert_eq!(VmcsMsr::Efer.write(&mut v, 0), Err(MsrFault));
    assert_eq!(VmcsMsr::Efer.read(&v), EFER_LME | EFER_LMA | EFER_NXE);

    assert_eq!(VmcsMsr::Pat.write(&mut v, 0x6), Ok(()));
    assert_eq!(VmcsMsr::Pat.read(&v), 0x6);
    for bad in [0x2, 0x3 << 8, 0x8 << 56] {
        assert_eq!(VmcsMsr::Pat.write(&mut v, bad), Err(MsrFault), "{bad:#x}");
    }
    assert_eq!(VmcsMsr::Pat.read(&v), 0x6);

    assert_eq!(VmcsMsr::DebugCtl.write(&mut v, 0b11), Ok(()));
    assert_eq!(VmcsMsr::DebugCtl.write(&mut v, 1 << 6), Err(MsrFault));
    assert_eq!(VmcsMsr::DebugCtl.read(&v), 0b11);

    let non_canonical = 0x0000_8000_0000_0000;
    for held in [
        VmcsMsr::SysenterEsp,
        VmcsMsr::SysenterEip,
        VmcsMsr::FsBase,
        VmcsMsr::GsBase,
    ] {
        assert_eq!(held.write(&mut v, 0xFFFF_8000_0000_1000), Ok(()));
        assert_eq!(held.write(&mut v, non_canonical), Err(MsrFault), "{held:?}");
        assert_eq!(held.read(&v), 0xFFFF_8000_0000_1000, "{held:?}");
    }
    assert_eq!(VmcsMsr::GsBase.read(&v), v.read(guest::GS_BASE));

    assert_eq!(VmcsMsr::SysenterCs.write(&mut v, 0x1_0000_0010), Ok(()));
    assert_eq!(VmcsMsr::SysenterCs.read(&v), 0x10);
}
