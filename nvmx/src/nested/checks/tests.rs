use super::super::test_support::*;
use super::*;
use shadow_vmcs::{SoftVmcs, VMCS12_REVISION_ID};
use x86::vmx::vmcs::control::{
    EntryControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{control, guest, host};

const CONTROLS: Result<(), EntryFailure> = Err(EntryFailure::VmFailValid(
    VmInstructionError::EntryInvalidControls,
));
const HOST_STATE: Result<(), EntryFailure> = Err(EntryFailure::VmFailValid(
    VmInstructionError::EntryInvalidHostState,
));

fn guest_state(qualification: u64) -> Result<(), EntryFailure> {
    Err(EntryFailure::Exit {
        reason: 33 | 1 << 31,
        qualification,
    })
}
const GUEST_STATE: Result<(), EntryFailure> = Err(EntryFailure::Exit {
    reason: 33 | 1 << 31,
    qualification: 0,
});

fn check_in(v: &SoftVmcs, ram: &Ram, ia32e_mode: bool) -> Result<(), EntryFailure> {
    let caps = guest_caps();
    let ctx = EntryContext {
        caps: &caps,
        phys_addr_bits: PHYS_ADDR_BITS,
        ia32e_mode,
        l2_debugctl: 0,
    };
    check_vmcs12(v, ram, &ctx)
}

fn check(v: &SoftVmcs) -> Result<(), EntryFailure> {
    check_in(v, &Ram::new(), true)
}

fn with(changes: &[(u32, u64)]) -> SoftVmcs {
    let mut v = good_vmcs12();
    for &(field, value) in changes {
        v.write(field, value);
    }
    v
}

fn or_bits(field: u32, bits: u32) -> (u32, u64) {
    (field, good_vmcs12().read(field) | u64::from(bits))
}

fn cleared_bits(field: u32, bits: u32) -> (u32, u64) {
    (field, good_vmcs12().read(field) & !u64::from(bits))
}

fn inject(info: u32, error_code: u64, length: u64) -> [(u32, u64); 3] {
    [
        (control::VMENTRY_INTERRUPTION_INFO_FIELD, info.into()),
        (control::VMENTRY_EXCEPTION_ERR_CODE, error_code),
        (control::VMENTRY_INSTRUCTION_LEN, length),
    ]
}

const VALID: u32 = 1 << 31;
const DELIVER_EC: u32 = 1 << 11;
const HW_EXCEPTION: u32 = 3 << 8;

#[test]
fn known_good_64bit_vmcs12_passes() {
    assert_eq!(check(&good_vmcs12()), Ok(()));
}

#[test]
fn saving_the_preemption_timer_needs_the_timer_activated() {
    // SDM 27.2.1.2.
    let save = or_bits(
        control::VMEXIT_CONTROLS,
        control::ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits(),
    );
    let timer = or_bits(
        control::PINBASED_EXEC_CONTROLS,
        PinbasedControls::VMX_PREEMPTION_TIMER.bits(),
    );
    assert_eq!(check(&with(&[save])), CONTROLS);
    assert_eq!(check(&with(&[save, timer])), Ok(()));
    assert_eq!(check(&with(&[timer])), Ok(()));
}

#[test]
fn control_words_must_respect_the_offered_capabilities() {
    // Posted interrupts are not offered; a must-be-1 pin bit (bit 1) is missing.
    let posted = or_bits(
        control::PINBASED_EXEC_CONTROLS,
        PinbasedControls::POSTED_INTERRUPTS.bits(),
    );
    assert_eq!(check(&with(&[posted])), CONTROLS);
    assert_eq!(
        check(&with(&[cleared_bits(
            control::PINBASED_EXEC_CONTROLS,
            1 << 1
        )])),
        CONTROLS
    );
    // PML (secondary bit 17) is not offered; the secondary word counts only when activated.
    let pml = (control::SECONDARY_PROCBASED_EXEC_CONTROLS, 1 << 17 | 0x22);
    assert_eq!(check(&with(&[pml])), CONTROLS);
    let inactive = cleared_bits(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::SECONDARY_CONTROLS.bits(),
    );
    assert_eq!(check(&with(&[pml, inactive])), Ok(()));
    // Exit and entry controls: perf-global-ctrl loading is not offered.
    assert_eq!(
        check(&with(&[or_bits(control::VMEXIT_CONTROLS, 1 << 12)])),
        CONTROLS
    );
    assert_eq!(
        check(&with(&[or_bits(control::VMENTRY_CONTROLS, 1 << 13)])),
        CONTROLS
    );
}

#[test]
fn cr3_target_count_is_at_most_four() {
    assert_eq!(check(&with(&[(control::CR3_TARGET_COUNT, 4)])), Ok(()));
    assert_eq!(check(&with(&[(control::CR3_TARGET_COUNT, 5)])), CONTROLS);
}

#[test]
fn bitmap_addresses_are_aligned_and_within_the_address_width() {
    assert_eq!(
        check(&with(&[(
            control::IO_BITMAP_B_ADDR_FULL,
            IO_BITMAP_B | 0x10
        )])),
        CONTROLS
    );
    assert_eq!(
        check(&with(&[(
            control::MSR_BITMAPS_ADDR_FULL,
            1 << PHYS_ADDR_BITS
        )])),
        CONTROLS
    );
    // Unused bitmaps are not checked.
    let no_io = cleared_bits(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::USE_IO_BITMAPS.bits(),
    );
    assert_eq!(
        check(&with(&[no_io, (control::IO_BITMAP_A_ADDR_FULL, 0x123)])),
        Ok(())
    );
}

#[test]
fn ept_vpid_and_unrestricted_guest_rules() {
    assert_eq!(
        check(&with(&[(control::EPTP_FULL, EPT_PML4 | 2 << 3 | 6)])),
        CONTROLS,
        "3-level walk"
    );
    assert_eq!(check(&with(&[(control::VPID, 0)])), CONTROLS);
    let ug_without_ept = (
        control::SECONDARY_PROCBASED_EXEC_CONTROLS,
        u64::from(SecondaryControls::UNRESTRICTED_GUEST.bits()),
    );
    assert_eq!(check(&with(&[ug_without_ept])), CONTROLS);
}

#[test]
fn virtual_nmi_rules() {
    let pin = control::PINBASED_EXEC_CONTROLS;
    let vnmi_no_nmi_exiting = (pin, (good_vmcs12().read(pin) | 1 << 5) & !(1 << 3));
    assert_eq!(check(&with(&[vnmi_no_nmi_exiting])), CONTROLS);
    let nmi_window = or_bits(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::NMI_WINDOW_EXITING.bits(),
    );
    assert_eq!(check(&with(&[nmi_window])), CONTROLS);
    assert_eq!(
        check(&with(&[
            nmi_window,
            or_bits(pin, PinbasedControls::VIRTUAL_NMIS.bits())
        ])),
        Ok(())
    );
}

fn use_tpr_shadow() -> (u32, u64) {
    or_bits(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PrimaryControls::USE_TPR_SHADOW.bits(),
    )
}

/// `vmcs12` checked against the host's capabilities, which offer what the guest's do not
/// (virtual-interrupt delivery).
fn check_host_caps(v: &SoftVmcs, ram: &Ram) -> Result<(), EntryFailure> {
    let caps = host_caps();
    let ctx = EntryContext {
        caps: &caps,
        phys_addr_bits: PHYS_ADDR_BITS,
        ia32e_mode: true,
        l2_debugctl: 0,
    };
    check_vmcs12(v, ram, &ctx)
}

#[test]
fn virtual_apic_address_is_checked_for_alignment_and_width_only() {
    // kvm-unit-tests' "virtual-APIC address = 2^n" sweep: every single-bit address, most of them
    // beyond RAM (which ends at 64 KiB here). VM entry asks for bits 11:0 clear and no bit at or
    // above the physical-address width, not for RAM (SDM 27.2.1.1).
    for bit in 0..64 {
        let page = (control::VIRT_APIC_ADDR_FULL, 1u64 << bit);
        let expected = if (12..u32::from(PHYS_ADDR_BITS)).contains(&bit) {
            Ok(())
        } else {
            CONTROLS
        };
        assert_eq!(
            check(&with(&[use_tpr_shadow(), page])),
            expected,
            "bit {bit}"
        );
    }
    // Without "use TPR shadow" the address is not checked at all.
    assert_eq!(check(&with(&[(control::VIRT_APIC_ADDR_FULL, 1)])), Ok(()));
}

#[test]
fn vtpr_of_a_page_that_is_not_ram_reads_as_all_ones() {
    // Class 15: no threshold exceeds it, the largest included.
    let beyond_ram = (control::VIRT_APIC_ADDR_FULL, 0x10_0000);
    for threshold in [0, 1, 0xF] {
        assert_eq!(
            check(&with(&[
                use_tpr_shadow(),
                beyond_ram,
                (control::TPR_THRESHOLD, threshold)
            ])),
            Ok(()),
            "threshold {threshold:#x}"
        );
    }
    // The other rule still applies.
    assert_eq!(
        check(&with(&[
            use_tpr_shadow(),
            beyond_ram,
            (control::TPR_THRESHOLD, 0x10)
        ])),
        CONTROLS
    );
}

#[test]
fn tpr_threshold_may_not_exceed_vtpr() {
    let mut ram = Ram::new();
    ram.bytes[(VIRTUAL_APIC + 0x80) as usize] = 0x5F;
    let page = (control::VIRT_APIC_ADDR_FULL, VIRTUAL_APIC);
    let threshold = |t| (control::TPR_THRESHOLD, t);
    let tpr = use_tpr_shadow();
    assert_eq!(
        check_in(&with(&[tpr, page, threshold(5)]), &ram, true),
        Ok(())
    );
    assert_eq!(
        check_in(&with(&[tpr, page, threshold(6)]), &ram, true),
        CONTROLS
    );
    assert_eq!(
        check_in(&with(&[tpr, page, threshold(0x10)]), &ram, true),
        CONTROLS
    );
}

#[test]
fn apic_virtualization_controls_decide_which_tpr_threshold_rules_apply() {
    // VTPR class 4 against threshold 5 (exceeds it) and 0x10 (bits 31:4 set).
    let mut ram = Ram::new();
    ram.bytes[(VIRTUAL_APIC + 0x80) as usize] = 0x40;
    let page = (control::VIRT_APIC_ADDR_FULL, VIRTUAL_APIC);
    let secondary =
        |bits: SecondaryControls| or_bits(control::SECONDARY_PROCBASED_EXEC_CONTROLS, bits.bits());
    let vapic = secondary(SecondaryControls::VIRTUALIZE_APIC);
    let vid = secondary(SecondaryControls::VIRTUAL_INTERRUPT_DELIVERY);
    let inactive = (
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        use_tpr_shadow().1 & !u64::from(PrimaryControls::SECONDARY_CONTROLS.bits()),
    );
    let above = (control::TPR_THRESHOLD, 5);
    let wide = (control::TPR_THRESHOLD, 0x10);
    // "Virtualize APIC accesses": no VTPR comparison, bits 31:4 still 0.
    assert_eq!(
        check_in(&with(&[use_tpr_shadow(), page, vapic, above]), &ram, true),
        Ok(())
    );
    assert_eq!(
        check_in(&with(&[use_tpr_shadow(), page, vapic, wide]), &ram, true),
        CONTROLS
    );
    // Written but not activated, the secondary controls count as 0: both rules apply.
    assert_eq!(
        check_in(&with(&[inactive, page, vapic, above]), &ram, true),
        CONTROLS
    );
    // "Virtual-interrupt delivery" (offered by the host only): neither rule applies.
    assert_eq!(
        check_host_caps(&with(&[use_tpr_shadow(), page, vid, above]), &ram),
        Ok(())
    );
    assert_eq!(
        check_host_caps(&with(&[use_tpr_shadow(), page, vid, wide]), &ram),
        Ok(())
    );
    assert_eq!(
        check_host_caps(&with(&[use_tpr_shadow(), page, above]), &ram),
        CONTROLS
    );
}

#[test]
fn tpr_threshold_sweep_as_kvm_unit_tests_probes_it() {
    // vmx_controls_test's thresholds, each against VTPR all ones and the classes just below, at
    // and above it, for each setting of the APIC-virtualization controls the guest is offered.
    // Expected, from SDM 27.2.1.1: bits 31:4 clear; bits 3:0 at most VTPR's class unless
    // "virtualize APIC accesses" is active.
    let thresholds = (0..0x10u64)
        .chain((4..32).map(|n| 1 << n))
        .chain([0xFFFF_FFFF, 0x7FFF_FFFF]);
    let page = (control::VIRT_APIC_ADDR_FULL, VIRTUAL_APIC);
    let secondary_word = good_vmcs12().read(control::SECONDARY_PROCBASED_EXEC_CONTROLS);
    let vapic = u64::from(SecondaryControls::VIRTUALIZE_APIC.bits());
    let activate = u64::from(PrimaryControls::SECONDARY_CONTROLS.bits());
    let tpr = use_tpr_shadow().1;
    // (primary, secondary, whether the VTPR comparison applies)
    let settings = [
        (tpr & !activate, secondary_word, true),
        (tpr, secondary_word, true),
        (tpr & !activate, secondary_word | vapic, true),
        (tpr, secondary_word | vapic, false),
    ];
    for threshold in thresholds {
        let vtprs = [
            0xFF,
            threshold.wrapping_sub(1) << 4,
            threshold << 4,
            (threshold + 1) << 4,
        ];
        for (primary, secondary, compares) in settings {
            for vtpr in vtprs {
                let mut ram = Ram::new();
                ram.bytes[(VIRTUAL_APIC + 0x80) as usize] = vtpr as u8;
                let v = with(&[
                    (control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary),
                    (control::SECONDARY_PROCBASED_EXEC_CONTROLS, secondary),
                    page,
                    (control::TPR_THRESHOLD, threshold),
                ]);
                let class = (vtpr as u8 >> 4) as u64;
                let valid = threshold >> 4 == 0 && (!compares || threshold <= class);
                let expected = if valid { Ok(()) } else { CONTROLS };
                assert_eq!(
                    check_in(&v, &ram, true),
                    expected,
                    "threshold {threshold:#x}, VTPR {vtpr:#x}, primary {primary:#x}, \
                     secondary {secondary:#x}"
                );
            }
        }
    }
}

#[test]
fn msr_areas_are_16_byte_aligned() {
    let count = (control::VMEXIT_MSR_STORE_COUNT, 2);
    assert_eq!(
        check(&with(&[
            count,
            (control::VMEXIT_MSR_STORE_ADDR_FULL, 0x8010)
        ])),
        Ok(())
    );
    assert_eq!(
        check(&with(&[
            count,
            (control::VMEXIT_MSR_STORE_ADDR_FULL, 0x8008)
        ])),
        CONTROLS
    );
    let last_beyond_width = (
        control::VMENTRY_MSR_LOAD_ADDR_FULL,
        (1 << PHYS_ADDR_BITS) - 16,
    );
    assert_eq!(
        check(&with(&[
            (control::VMENTRY_MSR_LOAD_COUNT, 2),
            last_beyond_width
        ])),
        CONTROLS
    );
}

#[test]
fn valid_injections_pass() {
    let gp = VALID | DELIVER_EC | HW_EXCEPTION | 13;
    assert_eq!(check(&with(&inject(gp, 0xFFFF, 0))), Ok(()));
    assert_eq!(
        check(&with(&inject(VALID | 2 << 8 | 2, 0, 0))),
        Ok(()),
        "NMI"
    );
    assert_eq!(
        check(&with(&inject(VALID | 4 << 8 | 0x80, 0, 2))),
        Ok(()),
        "INT 0x80"
    );
    assert_eq!(
        check(&with(&inject(VALID | HW_EXCEPTION | 6, 0, 0))),
        Ok(()),
        "#UD"
    );
}

#[test]
fn malformed_injections_fail_with_7() {
    for (info, error_code, length, what) in [
        (VALID | 1 << 8 | 32, 0, 0, "reserved type 1"),
        (VALID | 2 << 8 | 3, 0, 0, "NMI with vector 3"),
        (VALID | HW_EXCEPTION | 32, 0, 0, "exception vector 32"),
        (
            VALID | HW_EXCEPTION | 13,
            0,
            0,
            "#GP without its error code",
        ),
        (
            VALID | DELIVER_EC | HW_EXCEPTION | 6,
            0,
            0,
            "#UD with an error code",
        ),
        (
            VALID | DELIVER_EC | 4 << 8 | 13,
            0,
            2,
            "INT 13 with an error code",
        ),
        (VALID | 1 << 12 | HW_EXCEPTION | 6, 0, 0, "reserved bit 12"),
        (
            VALID | DELIVER_EC | HW_EXCEPTION | 13,
            0x1_0000,
            0,
            "error code bit 16",
        ),
        (
            VALID | 4 << 8 | 0x80,
            0,
            0,
            "zero length without IA32_VMX_MISC bit 30",
        ),
        (VALID | 6 << 8 | 3, 0, 16, "length 16"),
        (VALID | 7 << 8 | 1, 0, 0, "pending MTF with vector 1"),
    ] {
        assert_eq!(
            check(&with(&inject(info, error_code, length))),
            CONTROLS,
            "{what}"
        );
    }
}

#[test]
fn real_mode_injection_pushes_no_error_code() {
    let real = real_mode_vmcs12();
    assert_eq!(check(&real), Ok(()));
    let mut gp = real.clone();
    for (field, value) in inject(VALID | DELIVER_EC | HW_EXCEPTION | 13, 0, 0) {
        gp.write(field, value);
    }
    assert_eq!(check(&gp), CONTROLS);
    gp.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        u64::from(VALID | HW_EXCEPTION | 13),
    );
    assert_eq!(check(&gp), Ok(()));
}

#[test]
fn pending_mtf_injection_needs_the_monitor_trap_flag() {
    assert_eq!(check(&with(&inject(VALID | 7 << 8, 0, 0))), Ok(()));
}

#[test]
fn host_control_registers_and_msrs() {
    assert_eq!(
        check(&with(&[(host::CR0, 0x8000_0011)])),
        HOST_STATE,
        "NE clear"
    );
    assert_eq!(check(&with(&[(host::CR4, 0x20)])), HOST_STATE, "VMXE clear");
    assert_eq!(
        check(&with(&[(host::CR3, 1 << PHYS_ADDR_BITS)])),
        HOST_STATE
    );
    assert_eq!(
        check(&with(&[(host::IA32_SYSENTER_EIP, 1 << 47)])),
        HOST_STATE
    );
    assert_eq!(
        check(&with(&[(host::IA32_EFER_FULL, 0x101)])),
        HOST_STATE,
        "LMA clear"
    );
    let load_pat = or_bits(control::VMEXIT_CONTROLS, 1 << 19);
    assert_eq!(
        check(&with(&[
            load_pat,
            (host::IA32_PAT_FULL, 0x0007_0406_0007_0406)
        ])),
        Ok(())
    );
    assert_eq!(
        check(&with(&[load_pat, (host::IA32_PAT_FULL, 2)])),
        HOST_STATE
    );
}

#[test]
fn host_selectors_and_bases() {
    assert_eq!(
        check(&with(&[(host::CS_SELECTOR, 0x0B)])),
        HOST_STATE,
        "CS RPL 3"
    );
    assert_eq!(
        check(&with(&[(host::DS_SELECTOR, 0x14)])),
        HOST_STATE,
        "DS TI"
    );
    assert_eq!(check(&with(&[(host::CS_SELECTOR, 0)])), HOST_STATE);
    assert_eq!(check(&with(&[(host::TR_SELECTOR, 0)])), HOST_STATE);
    assert_eq!(
        check(&with(&[(host::SS_SELECTOR, 0)])),
        Ok(()),
        "null SS in a 64-bit host"
    );
    assert_eq!(
        check(&with(&[(host::GS_BASE, 0x8000_0000_0000)])),
        HOST_STATE
    );
}

#[test]
fn host_address_space_size_follows_the_guest_hypervisor_mode() {
    assert_eq!(
        check(&with(&[(host::RIP, 0x0000_8000_0000_0000)])),
        HOST_STATE
    );
    assert_eq!(check_in(&good_vmcs12(), &Ram::new(), false), HOST_STATE);
    let no_pae = (host::CR4, 0x2000);
    assert_eq!(check(&with(&[no_pae])), HOST_STATE);
}

#[test]
fn guest_control_registers() {
    assert_eq!(
        check(&with(&[(guest::CR0, 0x8000_0030)])),
        GUEST_STATE,
        "PE clear, no UG"
    );
    assert_eq!(
        check(&with(&[(guest::CR4, 0x20)])),
        GUEST_STATE,
        "VMXE clear"
    );
    assert_eq!(
        check(&with(&[(guest::IA32_EFER_FULL, 0x100)])),
        GUEST_STATE,
        "LMA != IA-32e"
    );
    assert_eq!(
        check(&with(&[(guest::CR4, 0x2000)])),
        GUEST_STATE,
        "IA-32e without PAE"
    );
    assert_eq!(
        check(&with(&[(guest::CR3, 1 << PHYS_ADDR_BITS)])),
        GUEST_STATE
    );
    let load_debug = or_bits(
        control::VMENTRY_CONTROLS,
        EntryControls::LOAD_DEBUG_CONTROLS.bits(),
    );
    assert_eq!(
        check(&with(&[load_debug, (guest::DR7, 1 << 32 | 0x400)])),
        GUEST_STATE
    );
    assert_eq!(
        check(&with(&[load_debug, (guest::IA32_DEBUGCTL_FULL, 1 << 6)])),
        GUEST_STATE
    );
    // Not loaded, so not checked.
    assert_eq!(check(&with(&[(guest::DR7, 1 << 32)])), Ok(()));
}

/// A real-mode guest under "unrestricted guest": CR0.PE = CR0.PG = 0.
fn real_mode_vmcs12() -> SoftVmcs {
    let entry = control::VMENTRY_CONTROLS;
    let mut v = with(&[
        (
            entry,
            good_vmcs12().read(entry) & !u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
        ),
        (
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            (SecondaryControls::ENABLE_EPT
                | SecondaryControls::ENABLE_VPID
                | SecondaryControls::UNRESTRICTED_GUEST)
                .bits()
                .into(),
        ),
        (guest::CR0, 0x20),
        (guest::CR4, 0x2000),
        (guest::IA32_EFER_FULL, 0),
        (guest::RIP, 0x7C00),
        (guest::TR_ACCESS_RIGHTS, 0x8B),
    ]);
    for segment in [
        super::super::arch::CS,
        super::super::arch::SS,
        super::super::arch::DS,
    ] {
        v.write(segment.selector, 0);
        v.write(segment.limit, 0xFFFF);
        v.write(segment.access_rights, 0x93);
    }
    v
}

#[test]
fn unrestricted_guest_relaxes_pe_and_pg_but_not_pg_without_pe() {
    let real = real_mode_vmcs12();
    assert_eq!(check(&real), Ok(()));
    let mut paging_without_pe = real.clone();
    paging_without_pe.write(guest::CR0, 0x8000_0020);
    assert_eq!(check(&paging_without_pe), GUEST_STATE);
    // Outside IA-32e mode VM entry ignores CS.L (kvm-unit-tests' vmentry_unrestricted_guest_test
    // enters 32-bit code through its 64-bit code segment).
    let mut long_cs = real.clone();
    long_cs.write(guest::CS_ACCESS_RIGHTS, 0x209B);
    assert_eq!(check(&long_cs), Ok(()));
    // Real mode wants SS.DPL = 0.
    let mut ss_dpl3 = real;
    ss_dpl3.write(guest::SS_ACCESS_RIGHTS, 0xF3);
    assert_eq!(check(&ss_dpl3), GUEST_STATE);
}

#[test]
fn guest_segment_rules() {
    for (changes, what) in [
        (
            &[(guest::CS_ACCESS_RIGHTS, 0xA093)][..],
            "CS data type without UG",
        ),
        (&[(guest::TR_SELECTOR, 0x1C)][..], "TR TI"),
        (&[(guest::SS_SELECTOR, 0x13)][..], "SS RPL != CS RPL"),
        (&[(guest::CS_ACCESS_RIGHTS, 0xE09B)][..], "CS L and D/B"),
        (
            &[(guest::DS_LIMIT, 0xFFFF_F000)][..],
            "G with limit bits 11:0 clear",
        ),
        (&[(guest::ES_ACCESS_RIGHTS, 0xC092)][..], "ES not accessed"),
        (&[(guest::FS_ACCESS_RIGHTS, 0xC013)][..], "FS not present"),
        (
            &[(guest::TR_ACCESS_RIGHTS, 0x83)][..],
            "16-bit TSS in IA-32e mode",
        ),
        (
            &[(guest::LDTR_ACCESS_RIGHTS, 0x83)][..],
            "usable LDTR of TSS type",
        ),
        (&[(guest::CS_BASE, 1 << 32)][..], "CS base bits 63:32"),
        (&[(guest::FS_BASE, 1 << 47)][..], "non-canonical FS base"),
        (
            &[(guest::GDTR_LIMIT, 0x1_0000)][..],
            "GDTR limit bits 31:16",
        ),
    ] {
        assert_eq!(check(&with(changes)), GUEST_STATE, "{what}");
    }
    // Unusable data segments are not checked.
    assert_eq!(
        check(&with(&[
            (guest::GS_ACCESS_RIGHTS, 0x1_0000),
            (guest::GS_LIMIT, 0)
        ])),
        Ok(())
    );
}

#[test]
fn virtual_8086_mode_segments() {
    let entry = control::VMENTRY_CONTROLS;
    let mut v = with(&[
        (
            entry,
            good_vmcs12().read(entry) & !u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
        ),
        (guest::CR0, 0x8000_0031),
        (guest::CR4, 0x2000),
        (guest::IA32_EFER_FULL, 0),
        (guest::RFLAGS, 0x2_0002),
        (guest::RIP, 0x100),
    ]);
    for segment in [
        super::super::arch::ES,
        super::super::arch::CS,
        super::super::arch::SS,
        super::super::arch::DS,
        super::super::arch::FS,
        super::super::arch::GS,
    ] {
        v.write(segment.selector, 0x1234);
        v.write(segment.base, 0x12340);
        v.write(segment.limit, 0xFFFF);
        v.write(segment.access_rights, 0xF3);
    }
    // PAE paging without EPT in vmcs12 would read PDPTEs; keep paging 32-bit.
    assert_eq!(check(&v), Ok(()));
    v.write(guest::DS_BASE, 0x12350);
    assert_eq!(check(&v), GUEST_STATE);
    let mut in_ia32e = good_vmcs12();
    in_ia32e.write(guest::RFLAGS, 0x2_0002);
    assert_eq!(check(&in_ia32e), GUEST_STATE);
}

#[test]
fn rip_and_rflags() {
    assert_eq!(
        check(&with(&[(guest::RFLAGS, 0)])),
        GUEST_STATE,
        "bit 1 clear"
    );
    assert_eq!(
        check(&with(&[(guest::RFLAGS, 0xA)])),
        GUEST_STATE,
        "bit 3 set"
    );
    assert_eq!(
        check(&with(&[(guest::RIP, 0x0000_8000_0000_0000)])),
        GUEST_STATE
    );
    let intr = inject(VALID | 0x20, 0, 0);
    assert_eq!(
        check(&with(&intr)),
        GUEST_STATE,
        "INTR injection with IF = 0"
    );
    let mut intr_if = with(&intr);
    intr_if.write(guest::RFLAGS, 0x202);
    assert_eq!(check(&intr_if), Ok(()));
}

#[test]
fn activity_states() {
    assert_eq!(
        check(&with(&[(guest::ACTIVITY_STATE, 1)])),
        Ok(()),
        "HLT is offered"
    );
    assert_eq!(
        check(&with(&[(guest::ACTIVITY_STATE, 2)])),
        GUEST_STATE,
        "shutdown"
    );
    assert_eq!(
        check(&with(&[(guest::ACTIVITY_STATE, 3)])),
        GUEST_STATE,
        "wait-for-SIPI"
    );
    let gp = inject(VALID | DELIVER_EC | HW_EXCEPTION | 13, 0, 0);
    let mut halted_gp = with(&gp);
    halted_gp.write(guest::ACTIVITY_STATE, 1);
    assert_eq!(check(&halted_gp), GUEST_STATE, "#GP cannot wake HLT");
    let mut halted_nmi = with(&inject(VALID | 2 << 8 | 2, 0, 0));
    halted_nmi.write(guest::ACTIVITY_STATE, 1);
    assert_eq!(check(&halted_nmi), Ok(()));
}

#[test]
fn interruptibility_rules() {
    let state = guest::INTERRUPTIBILITY_STATE;
    assert_eq!(
        check(&with(&[(state, 3), (guest::RFLAGS, 0x202)])),
        GUEST_STATE,
        "STI and MOV SS"
    );
    assert_eq!(
        check(&with(&[(state, 1)])),
        GUEST_STATE,
        "STI blocking with IF = 0"
    );
    assert_eq!(check(&with(&[(state, 2)])), Ok(()), "MOV SS blocking");
    assert_eq!(
        check(&with(&[(state, 4)])),
        GUEST_STATE,
        "SMI blocking outside SMM"
    );
    assert_eq!(
        check(&with(&[(state, 1 << 4)])),
        GUEST_STATE,
        "enclave interruption"
    );
    let mut nmi = with(&inject(VALID | 2 << 8 | 2, 0, 0));
    nmi.write(state, 2);
    assert_eq!(
        check(&nmi),
        GUEST_STATE,
        "NMI injection with MOV SS blocking"
    );
    let vnmi = or_bits(
        control::PINBASED_EXEC_CONTROLS,
        PinbasedControls::VIRTUAL_NMIS.bits(),
    );
    let mut blocked = with(&inject(VALID | 2 << 8 | 2, 0, 0));
    blocked.write(state, 8);
    assert_eq!(check(&blocked), Ok(()), "NMI blocking without virtual NMIs");
    blocked.write(vnmi.0, vnmi.1);
    assert_eq!(
        check(&blocked),
        GUEST_STATE,
        "virtual-NMI blocking with NMI injection"
    );
}

#[test]
fn pending_debug_exceptions() {
    let pending = guest::PENDING_DBG_EXCEPTIONS;
    assert_eq!(
        check(&with(&[(pending, 1 << 4)])),
        GUEST_STATE,
        "reserved bit 4"
    );
    // Single-stepping with MOV SS blocking: BS must be pending.
    let tf_blocked = [(guest::RFLAGS, 0x102), (guest::INTERRUPTIBILITY_STATE, 2)];
    assert_eq!(check(&with(&tf_blocked)), GUEST_STATE);
    let mut with_bs = with(&tf_blocked);
    with_bs.write(pending, 1 << 14);
    assert_eq!(check(&with_bs), Ok(()));
    // The DEBUGCTL L3 inherits has BTF set: then BS must not be pending.
    let caps = guest_caps();
    let ctx = EntryContext {
        caps: &caps,
        phys_addr_bits: PHYS_ADDR_BITS,
        ia32e_mode: true,
        l2_debugctl: 2,
    };
    assert_eq!(check_vmcs12(&with_bs, &Ram::new(), &ctx), GUEST_STATE);
}

#[test]
fn vmcs_link_pointer() {
    let mut ram = Ram::new();
    ram.put_u32(VMCS_REGION, VMCS12_REVISION_ID);
    let link = (guest::LINK_PTR_FULL, VMCS_REGION);
    assert_eq!(check_in(&with(&[link]), &ram, true), Ok(()));
    assert_eq!(
        check_in(
            &with(&[(guest::LINK_PTR_FULL, VMCS_REGION + 8)]),
            &ram,
            true
        ),
        guest_state(4)
    );
    assert_eq!(
        check_in(&with(&[(guest::LINK_PTR_FULL, 0x10_0000)]), &ram, true),
        guest_state(4)
    );
    // With VMCS shadowing the region must be a shadow VMCS.
    let shadowing = or_bits(
        control::SECONDARY_PROCBASED_EXEC_CONTROLS,
        SecondaryControls::VMCS_SHADOWING.bits(),
    );
    let bitmaps = [
        (control::VMREAD_BITMAP_ADDR_FULL, 0x8000),
        (control::VMWRITE_BITMAP_ADDR_FULL, 0x9000),
    ];
    let mut shadowed = with(&[link, shadowing]);
    for (field, value) in bitmaps {
        shadowed.write(field, value);
    }
    assert_eq!(check_in(&shadowed, &ram, true), guest_state(4));
    ram.put_u32(VMCS_REGION, VMCS12_REVISION_ID | 1 << 31);
    assert_eq!(check_in(&shadowed, &ram, true), Ok(()));
    // A misaligned VMREAD bitmap is a control error, found first.
    shadowed.write(control::VMREAD_BITMAP_ADDR_FULL, 0x8008);
    assert_eq!(check_in(&shadowed, &ram, true), CONTROLS);
}

#[test]
fn pae_pdptes_without_ept_come_from_memory() {
    let entry = control::VMENTRY_CONTROLS;
    let pae = with(&[
        (
            entry,
            good_vmcs12().read(entry) & !u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
        ),
        (
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            u64::from(SecondaryControls::ENABLE_VPID.bits()),
        ),
        (guest::IA32_EFER_FULL, 0),
        (guest::CS_ACCESS_RIGHTS, 0xC09B),
        (guest::CR3, PDPT),
    ]);
    let mut ram = Ram::new();
    ram.put_u64(PDPT, 0xB001);
    assert_eq!(check_in(&pae, &ram, true), Ok(()));
    ram.put_u64(PDPT + 8, 0xC001 | 1 << 5);
    assert_eq!(check_in(&pae, &ram, true), guest_state(2));
    let mut beyond = pae.clone();
    beyond.write(guest::CR3, 0x10_0000);
    assert_eq!(check_in(&beyond, &Ram::new(), true), guest_state(2));
}

#[test]
fn failures_are_recorded_in_vmcs12() {
    let mut v = good_vmcs12();
    v.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        u64::from(VALID | HW_EXCEPTION | 6),
    );
    EntryFailure::VmFailValid(VmInstructionError::EntryInvalidHostState).write_to(&mut v);
    assert_eq!(v.read(x86::vmx::vmcs::ro::VM_INSTRUCTION_ERROR), 8);
    EntryFailure::Exit {
        reason: 33 | 1 << 31,
        qualification: 4,
    }
    .write_to(&mut v);
    assert_eq!(v.read(x86::vmx::vmcs::ro::EXIT_REASON), 0x8000_0021);
    assert_eq!(v.read(x86::vmx::vmcs::ro::EXIT_QUALIFICATION), 4);
    assert_eq!(
        v.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
        u64::from(VALID | HW_EXCEPTION | 6),
        "an entry failure leaves the injection valid"
    );
}
