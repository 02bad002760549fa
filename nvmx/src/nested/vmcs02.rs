//! Building vmcs02, the VMCS l1-hv runs L3 with, from vmcs12 (the guest hypervisor's wishes) and
//! l1-hv's own needs.
//!
//! The rule everywhere: L3 must see exactly what vmcs12 describes, and exit to l1-hv at least
//! whenever vmcs12 *or* l1-hv wants an exit. Exiting controls are therefore united; controls that
//! change what the guest sees (TPR shadow, unrestricted guest, RDTSCP/INVPCID enables, virtual
//! NMIs) come from vmcs12 alone; EPT, VPID, the MSR and I/O bitmaps and the host state are
//! l1-hv's. [`super::l2_wants_exit`] then sorts each exit into "the guest hypervisor asked for
//! it" and "l1-hv's own".

use super::arch::{CR0_PG, EFER_LMA, EFER_LME, PDPTE_FIELDS, PLAIN_GUEST_FIELDS};
use super::controls::Controls;
use super::pdpte::{guest_uses_pae_paging, read_pdpt};
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
    /// l1-hv's VM-exit controls as adjusted against the real capability MSRs (64-bit host,
    /// save/load EFER, acknowledge interrupt on exit, load PAT if it manages PAT).
    pub exit: ExitControls,
    /// l1-hv's VM-entry controls as adjusted against the real capability MSRs (its default1 bits,
    /// load EFER, load PAT if it manages PAT); "IA-32e mode guest" is replaced by vmcs12's.
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
    /// vmcs12 uses the TPR shadow.
    pub virtual_apic_page: u64,
    /// Host-physical address of vmcs12's APIC-access page; read only when vmcs12 virtualizes
    /// APIC accesses.
    pub apic_access_page: u64,
    /// The preemption-timer value, written when `pin` activates the timer.
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
fn write_controls(vmcs12: &impl Vmcs, vmcs02: &mut impl Vmcs, l1: &L1Needs, c12: &Controls) -> Controls {
    let pin = c12.pin | (l1.pin - PinbasedControls::VIRTUAL_NMIS);

    let mut l1_primary = l1.primary & L1_PRIMARY;
    if !pin.contains(PinbasedControls::VIRTUAL_NMIS) {
        l1_primary -= PrimaryControls::NMI_WINDOW_EXITING;
    }
    let mut primary = (c12.primary - REPLACED_PRIMARY) | l1_primary | PrimaryControls::SECONDARY_CONTROLS;
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
    if loads_pat {
        // L3's PAT must not survive into l1-hv, and the guest hypervisor may want it saved.
        entry |= EntryControls::LOAD_IA32_PAT;
        exit |= ExitControls::LOAD_IA32_PAT | ExitControls::SAVE_IA32_PAT;
    }

    vmcs02.write(control::PINBASED_EXEC_CONTROLS, pin.bits().into());
    vmcs02.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary.bits().into());
    vmcs02.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, secondary.bits().into());
    vmcs02.write(control::VMEXIT_CONTROLS, exit.bits().into());
    vmcs02.write(control::VMENTRY_CONTROLS, entry.bits().into());

    write_exception_controls(vmcs12, vmcs02, l1);
    write_cr_masks(vmcs12, vmcs02, l1);

    let tsc_offset = match (tsc12, tsc_l1) {
        (true, true) => vmcs12.read(control::TSC_OFFSET_FULL).wrapping_add(l1.tsc_offset),
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

    // The MSR-load/store areas of vmcs12 are guest-hypervisor-physical lists; vmcs02 uses none
    // (the kernel processes vmcs12's lists in software, see docs/nested-engine.md).
    for field in [
        control::VMEXIT_MSR_STORE_COUNT,
        control::VMEXIT_MSR_LOAD_COUNT,
        control::VMENTRY_MSR_LOAD_COUNT,
    ] {
        vmcs02.write(field, 0);
    }

    for field in [
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        control::VMENTRY_EXCEPTION_ERR_CODE,
        control::VMENTRY_INSTRUCTION_LEN,
    ] {
        vmcs02.write(field, vmcs12.read(field));
    }

    if pin.contains(PinbasedControls::VMX_PREEMPTION_TIMER) {
        vmcs02.write(guest::VMX_PREEMPTION_TIMER_VALUE, l1.preemption_timer_value.into());
    }
    Controls { pin, primary, secondary, exit, entry }
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
    vmcs02.write(control::EXCEPTION_BITMAP, (bitmap12 | l1.exception_bitmap).into());
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
        (control::CR0_GUEST_HOST_MASK, control::CR0_READ_SHADOW, guest::CR0, l1.cr0_mask),
        (control::CR4_GUEST_HOST_MASK, control::CR4_READ_SHADOW, guest::CR4, l1.cr4_mask),
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
    vmcs02.write(guest::PENDING_DBG_EXCEPTIONS, vmcs12.read(guest::PENDING_DBG_EXCEPTIONS));
    let (dr7, debugctl) = if c12.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS) {
        (vmcs12.read(guest::DR7), vmcs12.read(guest::IA32_DEBUGCTL_FULL))
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
