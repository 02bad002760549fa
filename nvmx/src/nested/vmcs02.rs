//! Building vmcs02, the VMCS l1-hv runs L3 with, from vmcs12 (the guest hypervisor's wishes) and
//! l1-hv's own needs.
//!
//! The rule everywhere: L3 must see exactly what vmcs12 describes, and exit to l1-hv at least
//! whenever vmcs12 *or* l1-hv wants an exit. Exiting controls are therefore united; controls that
//! change what the guest sees (TPR shadow, unrestricted guest, RDTSCP/INVPCID enables, virtual
//! NMIs) come from vmcs12 alone; EPT, VPID, the MSR and I/O bitmaps and the host state are
//! l1-hv's. [`super::decide_l3_exit`] then sorts each exit into "the guest hypervisor asked for
//! it" and "l1-hv's own".

use super::arch::{CR0_PG, EFER_LMA, EFER_LME, PDPTE_FIELDS, PLAIN_GUEST_FIELDS};
use super::controls::{Controls, RawControls};
use super::dirty::INJECTION_FIELDS;
use super::pdpte::{guest_uses_pae_paging, read_pdpt};
use super::timer::vmcs02_timer;
use crate::insn::GuestMemory;
use shadow_vmcs::Vmcs;
use x86::irq::PAGE_FAULT_VECTOR;
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::guest;

/// Registers a VM entry leaves as they are when vmcs12 does not load them, so that L3 inherits
/// the guest hypervisor's values (SDM 27.3.2). vmcs02 always loads them (l1-hv's own values are
/// in the registers when it resumes L3), so the kernel supplies L2's: vmcs01's guest fields as
/// they were when the guest hypervisor executed VMLAUNCH/VMRESUME.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2Inherited {
    /// L2's IA32_EFER (its LMA/LME are replaced as the SDM prescribes).
    pub efer: u64,
    /// L2's IA32_PAT.
    pub pat: u64,
    /// L2's DR7.
    pub dr7: u64,
    /// L2's IA32_DEBUGCTL.
    pub debugctl: u64,
}

/// What l1-hv itself needs in every vmcs02, and the addresses only it can provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L1Needs {
    /// Pin-based exiting controls l1-hv needs for itself (external-interrupt and NMI exiting,
    /// the preemption timer). "Virtual NMIs" is vmcs12's alone and ignored here.
    pub pin: PinbasedControls,
    /// Primary exiting controls l1-hv needs (e.g. HLT exiting). Feature controls (TPR shadow,
    /// I/O and MSR bitmaps, TSC offsetting, secondary controls) are ignored here: they come from
    /// the fields below and vmcs12. Include CR3-load exiting only if l1-hv needs every CR3 load:
    /// it empties the CR3-target list. NMI-window exiting is dropped when vmcs12 does not use
    /// virtual NMIs (the combination is invalid, SDM 27.2.1.1).
    pub primary: PrimaryControls,
    /// Secondary exiting controls l1-hv needs: descriptor-table, WBINVD, RDRAND and RDSEED
    /// exiting. Other bits are ignored ("enable EPT"/"enable VPID" follow `eptp02`/`vpid02`).
    pub secondary: SecondaryControls,
    /// l1-hv's VM-exit controls (64-bit host, save/load EFER, acknowledge interrupt on exit,
    /// load PAT if it manages PAT). Default1 bits, which the `x86` crate's types cannot hold,
    /// are taken from vmcs12: it has the real must-be-1 bits (see
    /// [`crate::insn::VmxCapabilities::for_guest`]).
    pub exit: ExitControls,
    /// l1-hv's VM-entry controls (load EFER; load PAT if it manages PAT, which makes L3's PAT
    /// exact); "IA-32e mode guest" is replaced by vmcs12's, default1 bits come from vmcs12.
    pub entry: EntryControls,
    /// Exceptions l1-hv intercepts for itself (e.g. `1 << 14` for shadow paging, else 0).
    pub exception_bitmap: u32,
    /// CR0 bits l1-hv owns for itself.
    pub cr0_mask: u64,
    /// CR4 bits l1-hv owns for itself (e.g. CR4.VMXE).
    pub cr4_mask: u64,
    /// l1-hv's TSC offset for L2; L3's is this plus vmcs12's.
    pub tsc_offset: u64,
    /// The EPT pointer: the composed EPT02 when vmcs12 enables EPT, else l1-hv's EPT for L2 (L3
    /// then uses L2-physical addresses directly). See [`crate::ept`].
    pub eptp02: u64,
    /// The VPID L3 runs with (0: VPID off). When vmcs12 does not enable VPID, the guest
    /// hypervisor expects every VM entry and exit to flush: the kernel must flush `vpid02`
    /// before each nested entry.
    pub vpid02: u16,
    /// Host-physical MSR bitmap for vmcs02 (see [`merge_exit_bitmaps`]); `None`: every RDMSR and
    /// WRMSR of L3 exits.
    pub msr_bitmap: Option<u64>,
    /// Host-physical I/O bitmaps A and B for vmcs02 (see [`merge_exit_bitmaps`]); `None`:
    /// unconditional I/O exiting.
    pub io_bitmaps: Option<(u64, u64)>,
    /// Host-physical address of vmcs12's virtual-APIC page (see [`Vmcs12Pages`]); read only when
    /// vmcs12 uses the TPR shadow. Where vmcs12's page is not RAM, a page reading all ones at
    /// this entry, as the processor reads memory that is not there: the processor's VTPR check
    /// on vmcs02 must agree with nvmx's on vmcs12, which reads VTPR so (SDM 27.2.1.1).
    pub virtual_apic_page: u64,
    /// Host-physical address of vmcs12's APIC-access page; read only when vmcs12 virtualizes
    /// APIC accesses.
    pub apic_access_page: u64,
    /// l1-hv's VMX-preemption timer value for every entry of vmcs02, used when `pin` activates
    /// the timer; vmcs02 runs the smaller of it and the guest hypervisor's count.
    pub preemption_timer_value: u32,
    /// L2's registers L3 inherits.
    pub l2: L2Inherited,
}

/// The guest-hypervisor-physical pages vmcs12 makes vmcs02 refer to, which the kernel must
/// translate to host-physical addresses for [`L1Needs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vmcs12Pages {
    /// The virtual-APIC page, if vmcs12 uses the TPR shadow.
    pub virtual_apic: Option<u64>,
    /// The APIC-access page, if vmcs12 virtualizes APIC accesses.
    pub apic_access: Option<u64>,
}

impl Vmcs12Pages {
    /// The pages `vmcs12` refers to.
    pub fn of(vmcs12: &impl Vmcs) -> Self {
        let c = Controls::read(vmcs12);
        Vmcs12Pages {
            virtual_apic: c
                .primary
                .contains(PrimaryControls::USE_TPR_SHADOW)
                .then(|| vmcs12.read(control::VIRT_APIC_ADDR_FULL)),
            apic_access: c
                .secondary
                .contains(SecondaryControls::VIRTUALIZE_APIC)
                .then(|| vmcs12.read(control::APIC_ACCESS_ADDR_FULL)),
        }
    }
}

/// ORs two exit bitmaps (MSR bitmap, or I/O bitmap A or B; bit set = exit): l1-hv's and
/// vmcs12's, or all ones when vmcs12 does not use bitmaps of that kind (then every access
/// exits to the guest hypervisor).
pub fn merge_exit_bitmaps(l1: &[u8; 4096], l12: Option<&[u8; 4096]>) -> [u8; 4096] {
    let mut merged = [0xFF; 4096];
    if let Some(l12) = l12 {
        for ((out, a), b) in merged.iter_mut().zip(l1).zip(l12) {
            *out = a | b;
        }
    }
    merged
}

/// Primary controls vmcs02 takes from l1-hv's exiting needs.
const L1_PRIMARY: PrimaryControls = PrimaryControls::all()
    .difference(PrimaryControls::USE_TPR_SHADOW)
    .difference(PrimaryControls::USE_TSC_OFFSETTING)
    .difference(PrimaryControls::UNCOND_IO_EXITING)
    .difference(PrimaryControls::USE_IO_BITMAPS)
    .difference(PrimaryControls::USE_MSR_BITMAPS)
    .difference(PrimaryControls::SECONDARY_CONTROLS);
/// Primary controls vmcs02 replaces: I/O and MSR exiting follow l1-hv's merged bitmaps.
const REPLACED_PRIMARY: PrimaryControls = PrimaryControls::UNCOND_IO_EXITING
    .union(PrimaryControls::USE_IO_BITMAPS)
    .union(PrimaryControls::USE_MSR_BITMAPS);
/// Secondary controls l1-hv may add for itself: pure exiting controls.
const L1_SECONDARY: SecondaryControls = SecondaryControls::DTABLE_EXITING
    .union(SecondaryControls::WBINVD_EXITING)
    .union(SecondaryControls::RDRAND_EXITING)
    .union(SecondaryControls::RDSEED_EXITING);
/// Secondary controls vmcs02 never takes from vmcs12: EPT and VPID are l1-hv's, and L3's
/// VMREAD/VMWRITE always exit (a real shadow VMCS would need the real VMCS format).
const REPLACED_SECONDARY: SecondaryControls = SecondaryControls::ENABLE_EPT
    .union(SecondaryControls::ENABLE_VPID)
    .union(SecondaryControls::VMCS_SHADOWING);
/// VM-exit controls vmcs02 adds so that a nested exit finds L3's state in vmcs02.
const SAVED_ON_EXIT: ExitControls = ExitControls::SAVE_DEBUG_CONTROLS;
/// VM-exit controls vmcs02 takes from vmcs12: what it wants saved.
const SAVE_REQUESTS: ExitControls = ExitControls::SAVE_IA32_EFER;

/// Writes vmcs02's control and guest-state fields from `vmcs12` (which passed
/// [`super::check_vmcs12`]) and `l1`. Host-state fields are the kernel's: the same values as in
/// vmcs01, written once when vmcs02 is created. `mem` supplies the PDPTEs of a PAE-paging L3
/// when vmcs12 does not enable EPT.
pub fn prepare_vmcs02(
    vmcs12: &impl Vmcs,
    vmcs02: &mut impl Vmcs,
    l1: &L1Needs,
    mem: &impl GuestMemory,
) {
    let c12 = Controls::read(vmcs12);
    let controls = write_controls(vmcs12, vmcs02, l1, &c12);
    write_guest_state(vmcs12, vmcs02, l1, &c12, &controls, mem);
}

/// The control words and the control fields that go with them; returns vmcs02's controls.
fn write_controls(
    vmcs12: &impl Vmcs,
    vmcs02: &mut impl Vmcs,
    l1: &L1Needs,
    c12: &Controls,
) -> Controls {
    let pin = c12.pin | (l1.pin - PinbasedControls::VIRTUAL_NMIS);

    let mut l1_primary = l1.primary & L1_PRIMARY;
    if !pin.contains(PinbasedControls::VIRTUAL_NMIS) {
        l1_primary -= PrimaryControls::NMI_WINDOW_EXITING;
    }
    let mut primary =
        (c12.primary - REPLACED_PRIMARY) | l1_primary | PrimaryControls::SECONDARY_CONTROLS;
    primary |= match l1.io_bitmaps {
        Some(_) => PrimaryControls::USE_IO_BITMAPS,
        None => PrimaryControls::UNCOND_IO_EXITING,
    };
    if l1.msr_bitmap.is_some() {
        primary |= PrimaryControls::USE_MSR_BITMAPS;
    }
    let tsc12 = c12.primary.contains(PrimaryControls::USE_TSC_OFFSETTING);
    let tsc_l1 = l1.primary.contains(PrimaryControls::USE_TSC_OFFSETTING);
    if tsc12 || tsc_l1 {
        primary |= PrimaryControls::USE_TSC_OFFSETTING;
    }

    let mut secondary = (c12.secondary - REPLACED_SECONDARY)
        | (l1.secondary & L1_SECONDARY)
        | SecondaryControls::ENABLE_EPT;
    if l1.vpid02 != 0 {
        secondary |= SecondaryControls::ENABLE_VPID;
    }

    let loads_pat = c12.entry.contains(EntryControls::LOAD_IA32_PAT)
        || l1.entry.contains(EntryControls::LOAD_IA32_PAT);
    let mut entry = (l1.entry - EntryControls::IA32E_MODE_GUEST - EntryControls::LOAD_IA32_PAT)
        | (c12.entry & EntryControls::IA32E_MODE_GUEST)
        | EntryControls::LOAD_DEBUG_CONTROLS
        | EntryControls::LOAD_IA32_EFER;
    let mut exit = l1.exit | SAVED_ON_EXIT | (c12.exit & SAVE_REQUESTS);
    if c12.pin.contains(PinbasedControls::VMX_PREEMPTION_TIMER) {
        // The value left at each exit measures L3's time, which comes off the guest
        // hypervisor's count whoever's timer vmcs02 runs (super::timer).
        exit |= ExitControls::SAVE_VMX_PREEMPTION_TIMER;
    }
    if loads_pat {
        // L3's PAT must not survive into l1-hv, and the guest hypervisor may want it saved.
        entry |= EntryControls::LOAD_IA32_PAT;
        exit |= ExitControls::LOAD_IA32_PAT | ExitControls::SAVE_IA32_PAT;
    }

    // Bits the `x86` crate does not name are the default1 bits: vmcs12 has exactly the real
    // must-be-1 ones (the guest's capability MSRs keep the host's), so vmcs02 takes them over.
    let raw12 = RawControls::read(vmcs12);
    let default1 = |named: u32, raw: u32, known: u32| u64::from(named | raw & !known);
    vmcs02.write(
        control::PINBASED_EXEC_CONTROLS,
        default1(pin.bits(), raw12.pin, PinbasedControls::all().bits()),
    );
    vmcs02.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        default1(primary.bits(), raw12.primary, PrimaryControls::all().bits()),
    );
    vmcs02.write(
        control::SECONDARY_PROCBASED_EXEC_CONTROLS,
        secondary.bits().into(),
    );
    vmcs02.write(
        control::VMEXIT_CONTROLS,
        default1(exit.bits(), raw12.exit, ExitControls::all().bits()),
    );
    vmcs02.write(
        control::VMENTRY_CONTROLS,
        default1(entry.bits(), raw12.entry, EntryControls::all().bits()),
    );

    write_exception_controls(vmcs12, vmcs02, l1);
    write_cr_masks(vmcs12, vmcs02, l1);

    let tsc_offset = match (tsc12, tsc_l1) {
        (true, true) => vmcs12
            .read(control::TSC_OFFSET_FULL)
            .wrapping_add(l1.tsc_offset),
        (true, false) => vmcs12.read(control::TSC_OFFSET_FULL),
        (false, _) => l1.tsc_offset,
    };
    vmcs02.write(control::TSC_OFFSET_FULL, tsc_offset);

    vmcs02.write(control::EPTP_FULL, l1.eptp02);
    vmcs02.write(control::VPID, l1.vpid02.into());
    if let Some(msr_bitmap) = l1.msr_bitmap {
        vmcs02.write(control::MSR_BITMAPS_ADDR_FULL, msr_bitmap);
    }
    if let Some((a, b)) = l1.io_bitmaps {
        vmcs02.write(control::IO_BITMAP_A_ADDR_FULL, a);
        vmcs02.write(control::IO_BITMAP_B_ADDR_FULL, b);
    }
    if c12.primary.contains(PrimaryControls::USE_TPR_SHADOW) {
        vmcs02.write(control::VIRT_APIC_ADDR_FULL, l1.virtual_apic_page);
        vmcs02.write(control::TPR_THRESHOLD, vmcs12.read(control::TPR_THRESHOLD));
    }
    if c12.secondary.contains(SecondaryControls::VIRTUALIZE_APIC) {
        vmcs02.write(control::APIC_ACCESS_ADDR_FULL, l1.apic_access_page);
    }

    // CR3-load exiting of l1-hv's own means every load exits: no targets.
    let cr3_targets = if l1_primary.contains(PrimaryControls::CR3_LOAD_EXITING) {
        0
    } else {
        vmcs12.read(control::CR3_TARGET_COUNT)
    };
    vmcs02.write(control::CR3_TARGET_COUNT, cr3_targets);
    for field in [
        control::CR3_TARGET_VALUE0,
        control::CR3_TARGET_VALUE1,
        control::CR3_TARGET_VALUE2,
        control::CR3_TARGET_VALUE3,
    ] {
        vmcs02.write(field, vmcs12.read(field));
    }

    // The MSR-load/store areas of vmcs12 are guest-hypervisor-physical lists; vmcs02 uses none,
    // and nothing processes vmcs12's lists yet (docs/nested-engine.md, "Not emulated").
    for field in [
        control::VMEXIT_MSR_STORE_COUNT,
        control::VMEXIT_MSR_LOAD_COUNT,
        control::VMENTRY_MSR_LOAD_COUNT,
    ] {
        vmcs02.write(field, 0);
    }

    write_injection(vmcs12, vmcs02);

    if let Some(value) = vmcs02_timer(vmcs12, c12, l1) {
        vmcs02.write(guest::VMX_PREEMPTION_TIMER_VALUE, value.into());
    }
    Controls {
        pin,
        primary,
        secondary,
        exit,
        entry,
    }
}

/// The event injection is vmcs12's as it is (checked by [`super::check_vmcs12`]).
pub(crate) fn write_injection(vmcs12: &impl Vmcs, vmcs02: &mut impl Vmcs) {
    for field in INJECTION_FIELDS {
        vmcs02.write(field, vmcs12.read(field));
    }
}

/// Exception bitmap = union. The #PF filter (mask/match) is vmcs12's while l1-hv needs no #PF
/// itself; otherwise 0/0 with bit 14 set, so every #PF exits and [`crate::route::intercepts`]
/// applies vmcs12's filter in software (SDM 25.2).
fn write_exception_controls(vmcs12: &impl Vmcs, vmcs02: &mut impl Vmcs, l1: &L1Needs) {
    let bitmap12 = vmcs12.read(control::EXCEPTION_BITMAP) as u32;
    let (mask, matching) = if l1.exception_bitmap & 1 << PAGE_FAULT_VECTOR != 0 {
        (0, 0)
    } else {
        (
            vmcs12.read(control::PAGE_FAULT_ERR_CODE_MASK),
            vmcs12.read(control::PAGE_FAULT_ERR_CODE_MATCH),
        )
    };
    vmcs02.write(
        control::EXCEPTION_BITMAP,
        (bitmap12 | l1.exception_bitmap).into(),
    );
    vmcs02.write(control::PAGE_FAULT_ERR_CODE_MASK, mask);
    vmcs02.write(control::PAGE_FAULT_ERR_CODE_MATCH, matching);
}

/// CR0/CR4 guest/host masks = union. L3 reads, for a bit vmcs12 owns, vmcs12's read shadow; for
/// a bit only l1-hv owns, the value the bit has in L3's CR (vmcs12's guest CR, which vmcs02
/// runs with). E.g. CR4.VMXE: the real CR4 keeps it 1 as VMX operation requires (it is in the
/// fixed bits vmcs12 was checked against), and L3 reads vmcs12's shadow bit if the guest
/// hypervisor owns VMXE, else 1, exactly as on hardware.
fn write_cr_masks(vmcs12: &impl Vmcs, vmcs02: &mut impl Vmcs, l1: &L1Needs) {
    for (mask_field, shadow_field, guest_field, l1_mask) in [
        (
            control::CR0_GUEST_HOST_MASK,
            control::CR0_READ_SHADOW,
            guest::CR0,
            l1.cr0_mask,
        ),
        (
            control::CR4_GUEST_HOST_MASK,
            control::CR4_READ_SHADOW,
            guest::CR4,
            l1.cr4_mask,
        ),
    ] {
        let mask12 = vmcs12.read(mask_field);
        let shadow = vmcs12.read(shadow_field) & mask12 | vmcs12.read(guest_field) & !mask12;
        vmcs02.write(mask_field, mask12 | l1_mask);
        vmcs02.write(shadow_field, shadow);
    }
}

/// Guest state from vmcs12; registers vmcs12 does not load come from L2 (SDM 27.3.2).
fn write_guest_state(
    vmcs12: &impl Vmcs,
    vmcs02: &mut impl Vmcs,
    l1: &L1Needs,
    c12: &Controls,
    c02: &Controls,
    mem: &impl GuestMemory,
) {
    for field in PLAIN_GUEST_FIELDS {
        vmcs02.write(field, vmcs12.read(field));
    }
    vmcs02.write(
        guest::PENDING_DBG_EXCEPTIONS,
        vmcs12.read(guest::PENDING_DBG_EXCEPTIONS),
    );
    let (dr7, debugctl) = if c12.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS) {
        (
            vmcs12.read(guest::DR7),
            vmcs12.read(guest::IA32_DEBUGCTL_FULL),
        )
    } else {
        (l1.l2.dr7, l1.l2.debugctl)
    };
    vmcs02.write(guest::DR7, dr7);
    vmcs02.write(guest::IA32_DEBUGCTL_FULL, debugctl);

    let efer = if c12.entry.contains(EntryControls::LOAD_IA32_EFER) {
        vmcs12.read(guest::IA32_EFER_FULL)
    } else {
        // LMA follows "IA-32e mode guest"; LME too if paging is on (SDM 27.3.2.1).
        let ia32e = c12.ia32e_guest();
        let mut efer = l1.l2.efer & !EFER_LMA | if ia32e { EFER_LMA } else { 0 };
        if vmcs12.read(guest::CR0) & CR0_PG != 0 {
            efer = efer & !EFER_LME | if ia32e { EFER_LME } else { 0 };
        }
        efer
    };
    vmcs02.write(guest::IA32_EFER_FULL, efer);
    if c02.entry.contains(EntryControls::LOAD_IA32_PAT) {
        let pat = if c12.entry.contains(EntryControls::LOAD_IA32_PAT) {
            vmcs12.read(guest::IA32_PAT_FULL)
        } else {
            l1.l2.pat
        };
        vmcs02.write(guest::IA32_PAT_FULL, pat);
    }

    if guest_uses_pae_paging(vmcs12, c12) {
        // With EPT in vmcs02 the CPU takes the PDPTEs from these fields; without EPT in vmcs12
        // the guest hypervisor expects them loaded from memory (the checks read them already).
        let pdptes = if c12.ept() {
            PDPTE_FIELDS.map(|field| vmcs12.read(field))
        } else {
            read_pdpt(mem, vmcs12.read(guest::CR3)).unwrap_or([0; 4])
        };
        for (field, pdpte) in PDPTE_FIELDS.into_iter().zip(pdptes) {
            vmcs02.write(field, pdpte);
        }
    }
    vmcs02.write(guest::LINK_PTR_FULL, u64::MAX);
}

#[cfg(test)]
mod tests {
    use super::super::checks::{check_vmcs12, EntryContext};
    use super::super::test_support::*;
    use super::*;
    use shadow_vmcs::SoftVmcs;
    use x86::vmx::vmcs::host;

    fn prepare(vmcs12: &SoftVmcs, l1: &L1Needs, ram: &Ram) -> AnyVmcs {
        let mut vmcs02 = AnyVmcs::new();
        prepare_vmcs02(vmcs12, &mut vmcs02, l1, ram);
        vmcs02
    }

    fn controls(vmcs02: &AnyVmcs) -> Controls {
        Controls::read(vmcs02)
    }

    /// The real CPU's view: vmcs02 with l1-hv's host state, checked against the host's
    /// capabilities while l1-hv runs in 64-bit mode.
    fn real_cpu_accepts(vmcs02: &mut AnyVmcs, ram: &Ram) -> bool {
        write_l1_host_state(vmcs02);
        let caps = host_caps();
        let ctx = EntryContext {
            caps: &caps,
            phys_addr_bits: PHYS_ADDR_BITS,
            ia32e_mode: true,
            l2_debugctl: 0,
        };
        check_vmcs12(vmcs02, ram, &ctx).is_ok()
    }

    #[test]
    fn a_vmcs12_that_passes_gives_a_vmcs02_the_real_cpu_accepts() {
        let ram = Ram::new();
        let mut vmcs02 = prepare(&good_vmcs12(), &l1_needs(), &ram);
        assert!(real_cpu_accepts(&mut vmcs02, &ram));
        let mut no_bitmaps = l1_needs();
        no_bitmaps.msr_bitmap = None;
        no_bitmaps.exception_bitmap = 1 << 14;
        let mut vmcs02 = prepare(&good_vmcs12(), &no_bitmaps, &ram);
        assert!(real_cpu_accepts(&mut vmcs02, &ram));
    }

    #[test]
    fn exiting_controls_are_united_and_features_are_l1s_or_vmcs12s() {
        let mut vmcs12 = good_vmcs12();
        let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
        vmcs12.write(
            primary,
            vmcs12.read(primary) & !u64::from(PrimaryControls::HLT_EXITING.bits())
                | u64::from(PrimaryControls::RDTSC_EXITING.bits()),
        );
        let c = controls(&prepare(&vmcs12, &l1_needs(), &Ram::new()));
        assert!(c
            .primary
            .contains(PrimaryControls::HLT_EXITING | PrimaryControls::RDTSC_EXITING));
        assert!(c.pin.contains(
            PinbasedControls::NMI_EXITING | PinbasedControls::EXTERNAL_INTERRUPT_EXITING
        ));
        // vmcs12's I/O bitmaps are consulted in software; vmcs02 exits on every I/O instruction.
        assert!(c
            .primary
            .contains(PrimaryControls::UNCOND_IO_EXITING | PrimaryControls::USE_MSR_BITMAPS));
        assert!(!c.primary.contains(PrimaryControls::USE_IO_BITMAPS));
        assert!(c
            .secondary
            .contains(SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID));
        assert_eq!(c.exit, l1_needs().exit | ExitControls::SAVE_DEBUG_CONTROLS);
        assert!(c
            .entry
            .contains(EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_DEBUG_CONTROLS));
    }

    #[test]
    fn ept_vpid_and_bitmap_addresses_are_l1s() {
        let mut l1 = l1_needs();
        l1.io_bitmaps = Some((0x66_6000, 0x66_7000));
        let vmcs02 = prepare(&good_vmcs12(), &l1, &Ram::new());
        assert_eq!(vmcs02.read(control::EPTP_FULL), l1.eptp02);
        assert_eq!(vmcs02.read(control::VPID), 7);
        assert_eq!(vmcs02.read(control::MSR_BITMAPS_ADDR_FULL), 0x55_5000);
        assert_eq!(vmcs02.read(control::IO_BITMAP_B_ADDR_FULL), 0x66_7000);
        assert!(controls(&vmcs02)
            .primary
            .contains(PrimaryControls::USE_IO_BITMAPS));
        assert_eq!(vmcs02.read(guest::LINK_PTR_FULL), u64::MAX);
    }

    #[test]
    fn vmcs_shadowing_and_guest_visible_enables_come_only_from_vmcs12() {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            (SecondaryControls::ENABLE_EPT
                | SecondaryControls::VMCS_SHADOWING
                | SecondaryControls::ENABLE_RDTSCP)
                .bits()
                .into(),
        );
        let mut l1 = l1_needs();
        l1.secondary = SecondaryControls::ENABLE_INVPCID | SecondaryControls::RDRAND_EXITING;
        let c = controls(&prepare(&vmcs12, &l1, &Ram::new()));
        assert!(!c.secondary.contains(SecondaryControls::VMCS_SHADOWING));
        assert!(!c.secondary.contains(SecondaryControls::ENABLE_INVPCID));
        assert!(c
            .secondary
            .contains(SecondaryControls::ENABLE_RDTSCP | SecondaryControls::RDRAND_EXITING));
    }

    #[test]
    fn exception_bitmap_is_the_union_and_pfec_is_vmcs12s_only_without_l1_pf() {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(control::EXCEPTION_BITMAP, 1 << 6 | 1 << 14);
        vmcs12.write(control::PAGE_FAULT_ERR_CODE_MASK, 2);
        vmcs12.write(control::PAGE_FAULT_ERR_CODE_MATCH, 2);
        let mut l1 = l1_needs();
        l1.exception_bitmap = 1 << 1;
        let vmcs02 = prepare(&vmcs12, &l1, &Ram::new());
        assert_eq!(
            vmcs02.read(control::EXCEPTION_BITMAP),
            1 << 1 | 1 << 6 | 1 << 14
        );
        assert_eq!(vmcs02.read(control::PAGE_FAULT_ERR_CODE_MASK), 2);
        assert_eq!(vmcs02.read(control::PAGE_FAULT_ERR_CODE_MATCH), 2);
        l1.exception_bitmap = 1 << 14;
        vmcs12.write(control::EXCEPTION_BITMAP, 0);
        let vmcs02 = prepare(&vmcs12, &l1, &Ram::new());
        assert_eq!(vmcs02.read(control::EXCEPTION_BITMAP), 1 << 14);
        assert_eq!(vmcs02.read(control::PAGE_FAULT_ERR_CODE_MASK), 0);
        assert_eq!(vmcs02.read(control::PAGE_FAULT_ERR_CODE_MATCH), 0);
    }

    #[test]
    fn injection_and_guest_state_are_copied() {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0B0E);
        vmcs12.write(control::VMENTRY_EXCEPTION_ERR_CODE, 6);
        vmcs12.write(control::VMENTRY_INSTRUCTION_LEN, 3);
        vmcs12.write(guest::RIP, 0x40_2345);
        vmcs12.write(guest::INTERRUPTIBILITY_STATE, 2);
        vmcs12.write(guest::PENDING_DBG_EXCEPTIONS, 1);
        let vmcs02 = prepare(&vmcs12, &l1_needs(), &Ram::new());
        assert_eq!(
            vmcs02.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            0x8000_0B0E
        );
        assert_eq!(vmcs02.read(control::VMENTRY_EXCEPTION_ERR_CODE), 6);
        assert_eq!(vmcs02.read(control::VMENTRY_INSTRUCTION_LEN), 3);
        for field in PLAIN_GUEST_FIELDS {
            assert_eq!(vmcs02.read(field), vmcs12.read(field), "{field:#x}");
        }
        assert_eq!(vmcs02.read(guest::PENDING_DBG_EXCEPTIONS), 1);
        assert_eq!(
            vmcs02.read(guest::IA32_EFER_FULL),
            0x500,
            "vmcs12 loads EFER"
        );
        assert!(!vmcs02.written(host::RIP), "host state is the kernel's");
    }

    #[test]
    fn cr4_vmxe_is_owned_by_l1_and_reads_as_l3_sees_it() {
        let vmcs02 = prepare(&good_vmcs12(), &l1_needs(), &Ram::new());
        assert_eq!(vmcs02.read(control::CR4_GUEST_HOST_MASK), 1 << 13);
        assert_eq!(
            vmcs02.read(control::CR4_READ_SHADOW),
            0x2020,
            "L3 reads its own CR4"
        );
        assert_eq!(vmcs02.read(guest::CR4), 0x2020, "the real CR4 keeps VMXE");
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(control::CR4_GUEST_HOST_MASK, 1 << 13 | 1 << 7);
        vmcs12.write(control::CR4_READ_SHADOW, 1 << 7);
        let vmcs02 = prepare(&vmcs12, &l1_needs(), &Ram::new());
        assert_eq!(vmcs02.read(control::CR4_GUEST_HOST_MASK), 1 << 13 | 1 << 7);
        assert_eq!(
            vmcs02.read(control::CR4_READ_SHADOW),
            0x20 | 1 << 7,
            "vmcs12's shadow for its bits"
        );
    }

    #[test]
    fn registers_vmcs12_does_not_load_are_inherited_from_l2() {
        let mut vmcs12 = good_vmcs12();
        let entry = control::VMENTRY_CONTROLS;
        vmcs12.write(
            entry,
            vmcs12.read(entry) & !u64::from(EntryControls::LOAD_IA32_EFER.bits()),
        );
        vmcs12.write(guest::DR7, 0x455);
        let mut l1 = l1_needs();
        l1.entry |= EntryControls::LOAD_IA32_PAT;
        l1.l2.efer = 0x801; // NXE | SCE, outside long mode
        let vmcs02 = prepare(&vmcs12, &l1, &Ram::new());
        assert_eq!(
            vmcs02.read(guest::IA32_EFER_FULL),
            0xD01,
            "LMA and LME follow IA-32e mode"
        );
        assert_eq!(
            vmcs02.read(guest::DR7),
            0x401,
            "vmcs12 does not load debug controls"
        );
        assert_eq!(vmcs02.read(guest::IA32_PAT_FULL), l1.l2.pat);
        let c = controls(&vmcs02);
        assert!(c
            .entry
            .contains(EntryControls::LOAD_IA32_PAT | EntryControls::LOAD_IA32_EFER));
        assert!(c
            .exit
            .contains(ExitControls::LOAD_IA32_PAT | ExitControls::SAVE_IA32_PAT));
    }

    #[test]
    fn tsc_offsets_add_up() {
        let mut vmcs12 = good_vmcs12();
        let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
        vmcs12.write(
            primary,
            vmcs12.read(primary) | u64::from(PrimaryControls::USE_TSC_OFFSETTING.bits()),
        );
        vmcs12.write(control::TSC_OFFSET_FULL, 1000);
        let mut l1 = l1_needs();
        l1.primary |= PrimaryControls::USE_TSC_OFFSETTING;
        l1.tsc_offset = 0u64.wrapping_sub(100);
        let vmcs02 = prepare(&vmcs12, &l1, &Ram::new());
        assert_eq!(vmcs02.read(control::TSC_OFFSET_FULL), 900);
        assert!(controls(&vmcs02)
            .primary
            .contains(PrimaryControls::USE_TSC_OFFSETTING));
    }

    #[test]
    fn l1_nmi_window_needs_vmcs12_virtual_nmis() {
        let mut l1 = l1_needs();
        l1.primary |= PrimaryControls::NMI_WINDOW_EXITING;
        l1.pin |= PinbasedControls::VIRTUAL_NMIS;
        let c = controls(&prepare(&good_vmcs12(), &l1, &Ram::new()));
        assert!(!c.pin.contains(PinbasedControls::VIRTUAL_NMIS));
        assert!(!c.primary.contains(PrimaryControls::NMI_WINDOW_EXITING));
    }

    #[test]
    fn pae_guest_without_ept_gets_pdptes_from_memory() {
        let mut vmcs12 = good_vmcs12();
        let entry = control::VMENTRY_CONTROLS;
        vmcs12.write(
            entry,
            vmcs12.read(entry) & !u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
        );
        vmcs12.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, 0);
        vmcs12.write(guest::CR3, PDPT);
        let mut ram = Ram::new();
        ram.put_u64(PDPT + 24, 0xB001);
        let vmcs02 = prepare(&vmcs12, &l1_needs(), &ram);
        assert_eq!(vmcs02.read(guest::PDPTE3_FULL), 0xB001);
        assert!(controls(&vmcs02).ept(), "vmcs02 always runs on EPT");
    }

    #[test]
    fn merged_bitmaps_exit_if_either_wants_to() {
        let mut l1 = [0u8; 4096];
        let mut l12 = [0u8; 4096];
        l1[0] = 0b01;
        l12[0] = 0b10;
        let merged = merge_exit_bitmaps(&l1, Some(&l12));
        assert_eq!(merged[0], 0b11);
        assert_eq!(merged[1], 0);
        assert_eq!(merge_exit_bitmaps(&l1, None), [0xFF; 4096]);
    }

    #[test]
    fn pages_to_translate_follow_vmcs12_controls() {
        let mut vmcs12 = good_vmcs12();
        assert_eq!(Vmcs12Pages::of(&vmcs12), Vmcs12Pages::default());
        let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
        vmcs12.write(
            primary,
            vmcs12.read(primary) | u64::from(PrimaryControls::USE_TPR_SHADOW.bits()),
        );
        vmcs12.write(control::VIRT_APIC_ADDR_FULL, VIRTUAL_APIC);
        vmcs12.write(control::TPR_THRESHOLD, 3);
        assert_eq!(Vmcs12Pages::of(&vmcs12).virtual_apic, Some(VIRTUAL_APIC));
        let mut l1 = l1_needs();
        l1.virtual_apic_page = 0x77_7000;
        let vmcs02 = prepare(&vmcs12, &l1, &Ram::new());
        assert_eq!(vmcs02.read(control::VIRT_APIC_ADDR_FULL), 0x77_7000);
        assert_eq!(vmcs02.read(control::TPR_THRESHOLD), 3);
    }
}
