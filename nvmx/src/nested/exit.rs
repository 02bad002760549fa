//! The virtual VM exit from L3 to the guest hypervisor: exit information and L3's state into
//! vmcs12 (SDM 28.2, 28.3), then the guest hypervisor's host state into vmcs01's guest state
//! (SDM 28.5). VM-entry failures take the same host-state load without saving guest state
//! (SDM 27.8).

use super::arch::{
    ar, SegmentFields, CR0_PG, CR4_PAE, CR4_PCIDE, CS, DS, EFER_LMA, EFER_LME, ES,
    FREQUENT_GUEST_FIELDS, FS, GS, LDTR, PDPTE_FIELDS, RARE_GUEST_FIELDS, SS, TR,
};
use super::controls::Controls;
use super::pdpte::{pdpte_valid, read_pdpt};
use crate::event::{InfoFlags, InterruptionInfo, InterruptionType};
use crate::exit_reason;
use crate::insn::GuestMemory;
use crate::intr::{ActivityState, Interruptibility};
use crate::route::ExitInfo;
use shadow_vmcs::{Resolved, SoftVmcs, Vmcs};
use x86::vmx::vmcs::control::{self, EntryControls, ExitControls};
use x86::vmx::vmcs::{guest, host, ro};

/// Which exit information the guest hypervisor receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitFields {
    /// The exit vmcs02 recorded, as it is (every exit-information field copied).
    FromVmcs02,
    /// vmcs02's exit with another reason and qualification, e.g. an EPT violation l1-hv found in
    /// the guest hypervisor's EPT (qualification from [`crate::ept::walk`]), where the
    /// guest-physical and linear addresses and IDT-vectoring information of vmcs02 still apply.
    Rewritten {
        /// Exit-reason field value.
        reason: u32,
        /// Exit qualification.
        qualification: u64,
    },
    /// An event exit decided in software ([`crate::inject::InjectOutcome::Reflected`], e.g. an
    /// exception l1-hv intercepted for itself that became a #DF vmcs12 intercepts).
    Event(ExitInfo),
}

/// Exit-information fields a reflected hardware exit copies.
const EXIT_INFORMATION_FIELDS: [Resolved; 14] = Resolved::all([
    ro::EXIT_REASON,
    ro::EXIT_QUALIFICATION,
    ro::VMEXIT_INTERRUPTION_INFO,
    ro::VMEXIT_INTERRUPTION_ERR_CODE,
    ro::IDT_VECTORING_INFO,
    ro::IDT_VECTORING_ERR_CODE,
    ro::VMEXIT_INSTRUCTION_LEN,
    ro::VMEXIT_INSTRUCTION_INFO,
    ro::GUEST_LINEAR_ADDR,
    ro::GUEST_PHYSICAL_ADDR_FULL,
    ro::IO_RCX,
    ro::IO_RSI,
    ro::IO_RDI,
    ro::IO_RIP,
]);

/// CR0 bits a VM exit does not load from the host-state area: ET, NW, CD and the reserved bits
/// 63:32, 28:19, 17, 15:6 (SDM 28.5.1). The bits fixed in VMX operation agree already: both the
/// old value and the host field satisfy them.
const CR0_KEPT_ON_EXIT: u64 =
    !0xFFFF_FFFF | 1 << 30 | 1 << 29 | 0x1FF8_0000 | 1 << 17 | 0xFFC0 | 1 << 4;
/// DR7 after a VM exit.
const DR7_INIT: u64 = 0x400;
/// RFLAGS after a VM exit: only the always-one bit.
const RFLAGS_INIT: u64 = 0x2;
/// Host segment access rights (SDM 28.5.2): CS execute/read accessed code, G = 1, with L or D/B
/// by the host address-space size; data read/write accessed, D/B = 1, G = 1; TR busy TSS.
const AR_CODE: u32 = 0xB | ar::S | ar::P | ar::G;
const AR_DATA: u32 = 0x3 | ar::S | ar::P | ar::DB | ar::G;
const AR_BUSY_TSS: u32 = 0xB | ar::P;
const LIMIT_FLAT: u64 = 0xFFFF_FFFF;
const LIMIT_TSS: u64 = 0x67;
const LIMIT_DESCRIPTOR_TABLE: u64 = 0xFFFF;

/// Writes the exit information and L3's state into vmcs12 (SDM 28.2, 28.3): guest state as the
/// processor saves it, from vmcs02 (whose guest state is L3's architectural state: vmcs02 runs
/// L3 with vmcs12's control-register values, so CR0/CR4 need no un-mixing); DR7/DEBUGCTL, PAT
/// and EFER only if vmcs12's VM-exit controls save them; PDPTEs if vmcs12 enables EPT;
/// "IA-32e mode guest" := L3's EFER.LMA; the valid bit of vmcs12's VM-entry
/// interruption-information field cleared. For a VM-entry failure of vmcs02 (reason bit 31)
/// only the exit reason and qualification change (SDM 27.8).
pub fn reflect_exit(vmcs02: &impl Vmcs, vmcs12: &mut SoftVmcs, info: ExitFields) {
    if let Some(rare) = save_exit(vmcs02, vmcs12, info) {
        save_rare_guest_state(vmcs02, vmcs12, rare);
    }
}

/// The part of [`reflect_exit`] a guest hypervisor reads after nearly every exit: the exit
/// information, the entry-information valid bit, the guest-state fields it can read without an
/// exit ([`FREQUENT_GUEST_FIELDS`]) and "IA-32e mode guest". Returns what else the exit saves
/// (`None` for a VM-entry failure, which saves no guest state): [`save_rare_guest_state`] does it
/// later, when vmcs12's other guest fields are needed.
pub(crate) fn save_exit(
    vmcs02: &impl Vmcs,
    vmcs12: &mut SoftVmcs,
    info: ExitFields,
) -> Option<RareGuestState> {
    match info {
        ExitFields::FromVmcs02 => copy(vmcs02, vmcs12, &EXIT_INFORMATION_FIELDS),
        ExitFields::Rewritten {
            reason,
            qualification,
        } => {
            copy(vmcs02, vmcs12, &EXIT_INFORMATION_FIELDS);
            vmcs12.write(ro::EXIT_REASON, reason.into());
            vmcs12.write(ro::EXIT_QUALIFICATION, qualification);
        }
        ExitFields::Event(exit) => exit.write_to(vmcs12),
    }
    if vmcs12.read(ro::EXIT_REASON) as u32 & exit_reason::ENTRY_FAILURE != 0 {
        // No guest state was loaded, so none is saved; the entry information stays.
        return None;
    }

    let entry_info = vmcs12.read(control::VMENTRY_INTERRUPTION_INFO_FIELD);
    vmcs12.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        entry_info & !u64::from(InfoFlags::VALID.bits()),
    );
    copy(vmcs02, vmcs12, &FREQUENT_GUEST);
    let lma =
        vmcs02.read(control::VMENTRY_CONTROLS) & u64::from(EntryControls::IA32E_MODE_GUEST.bits());
    let entry12 = vmcs12.read(control::VMENTRY_CONTROLS);
    vmcs12.write(
        control::VMENTRY_CONTROLS,
        entry12 & !u64::from(EntryControls::IA32E_MODE_GUEST.bits()) | lma,
    );
    let c12 = Controls::read(vmcs12);
    Some(RareGuestState {
        debug_controls: c12.exit.contains(ExitControls::SAVE_DEBUG_CONTROLS),
        pat: c12.exit.contains(ExitControls::SAVE_IA32_PAT),
        efer: c12.exit.contains(ExitControls::SAVE_IA32_EFER),
        pdptes: c12.ept(),
    })
}

/// What a VM exit saves beyond [`save_exit`], decided by vmcs12's controls at the exit (the
/// guest hypervisor may change them before the state is copied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RareGuestState {
    /// DR7 and IA32_DEBUGCTL ("save debug controls").
    debug_controls: bool,
    /// IA32_PAT ("save IA32_PAT").
    pat: bool,
    /// IA32_EFER ("save IA32_EFER").
    efer: bool,
    /// The PDPTEs (with EPT).
    pdptes: bool,
}

/// The rest of [`reflect_exit`]'s guest state, as [`save_exit`] decided it: [`RARE_GUEST_FIELDS`]
/// and what the controls ask for. vmcs02 must still hold L3's state of that exit.
pub(crate) fn save_rare_guest_state(
    vmcs02: &impl Vmcs,
    vmcs12: &mut SoftVmcs,
    what: RareGuestState,
) {
    copy(vmcs02, vmcs12, &RARE_GUEST);
    if what.debug_controls {
        copy(
            vmcs02,
            vmcs12,
            &Resolved::all([guest::DR7, guest::IA32_DEBUGCTL_FULL]),
        );
    }
    if what.pat {
        copy(vmcs02, vmcs12, &Resolved::all([guest::IA32_PAT_FULL]));
    }
    if what.efer {
        copy(vmcs02, vmcs12, &Resolved::all([guest::IA32_EFER_FULL]));
    }
    if what.pdptes {
        copy(vmcs02, vmcs12, &PDPTES);
    }
}

/// Copies `fields` of vmcs02 into vmcs12.
fn copy(vmcs02: &impl Vmcs, vmcs12: &mut SoftVmcs, fields: &[Resolved]) {
    for &field in fields {
        vmcs12.write_resolved(field, vmcs02.read(field.encoding()));
    }
}

const FREQUENT_GUEST: [Resolved; FREQUENT_GUEST_FIELDS.len()] =
    Resolved::all(FREQUENT_GUEST_FIELDS);
const RARE_GUEST: [Resolved; RARE_GUEST_FIELDS.len()] = Resolved::all(RARE_GUEST_FIELDS);
const PDPTES: [Resolved; 4] = Resolved::all(PDPTE_FIELDS);

/// A VMX abort (SDM 28.7): the guest hypervisor's processor cannot continue. The abort
/// indicator would go to offset 4 of vmcs12's region; l1-hv does not write it and stops the
/// guest hypervisor instead (an internal stop), so no one reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VmxAbort {
    /// Storing L3's MSRs into the VM-exit MSR-store area failed (SDM 28.4).
    StoreGuestMsrs = 1,
    /// Loading the host's PAE PDPTEs failed (reserved bits, or not RAM).
    HostPdpteCorrupted = 3,
    /// Loading the VM-exit MSR-load area failed (SDM 28.6).
    LoadHostMsrs = 4,
}

/// Sets vmcs01's guest state (the guest hypervisor's own state, as it continues after the
/// nested exit) to vmcs12's host state, as a VM exit loads it (SDM 28.5), for both a reflected
/// exit (after [`reflect_exit`]) and a VM-entry failure (after [`super::EntryFailure::write_to`]).
///
/// Reads vmcs01's current guest state for what the exit keeps (CR0 ET/CD/NW, EFER without
/// "load IA32_EFER", SMI/NMI blocking) and vmcs12's exit reason for the NMI blocking an NMI exit
/// establishes (SDM 28.5.5). Also sets vmcs01's CR0/CR4 read shadows to the new values (l1-hv's
/// own masked bits then read as the guest hypervisor's architectural value) and vmcs01's
/// "IA-32e mode guest" to the host address-space size. `mem` supplies a 32-bit PAE host's PDPTEs.
pub fn load_l2_host_state(
    vmcs12: &impl Vmcs,
    vmcs01: &mut impl Vmcs,
    mem: &impl GuestMemory,
    phys_addr_bits: u8,
) -> Result<(), VmxAbort> {
    let c12 = Controls::read(vmcs12);
    let host64 = c12.exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE);
    let narrow = |value: u64| if host64 { value } else { value & 0xFFFF_FFFF };

    let cr0 =
        vmcs01.read(guest::CR0) & CR0_KEPT_ON_EXIT | vmcs12.read(host::CR0) & !CR0_KEPT_ON_EXIT;
    let mut cr4 = vmcs12.read(host::CR4);
    if host64 {
        cr4 |= CR4_PAE;
    } else {
        cr4 &= !CR4_PCIDE;
    }
    let cr3 = vmcs12.read(host::CR3);
    vmcs01.write(guest::CR0, cr0);
    vmcs01.write(guest::CR3, cr3);
    vmcs01.write(guest::CR4, cr4);
    vmcs01.write(control::CR0_READ_SHADOW, cr0);
    vmcs01.write(control::CR4_READ_SHADOW, cr4);
    vmcs01.write(guest::DR7, DR7_INIT);
    vmcs01.write(guest::IA32_DEBUGCTL_FULL, 0);
    vmcs01.write(guest::IA32_SYSENTER_CS, vmcs12.read(host::IA32_SYSENTER_CS));
    vmcs01.write(
        guest::IA32_SYSENTER_ESP,
        narrow(vmcs12.read(host::IA32_SYSENTER_ESP)),
    );
    vmcs01.write(
        guest::IA32_SYSENTER_EIP,
        narrow(vmcs12.read(host::IA32_SYSENTER_EIP)),
    );

    let efer = if c12.exit.contains(ExitControls::LOAD_IA32_EFER) {
        vmcs12.read(host::IA32_EFER_FULL)
    } else if host64 {
        vmcs01.read(guest::IA32_EFER_FULL) | EFER_LMA | EFER_LME
    } else {
        vmcs01.read(guest::IA32_EFER_FULL) & !(EFER_LMA | EFER_LME)
    };
    vmcs01.write(guest::IA32_EFER_FULL, efer);
    if c12.exit.contains(ExitControls::LOAD_IA32_PAT) {
        vmcs01.write(guest::IA32_PAT_FULL, vmcs12.read(host::IA32_PAT_FULL));
    }
    // Only "IA-32e mode guest" changes (SDM 28.5.1); the raw value keeps the default1 bits the
    // `x86` crate's type would drop.
    let ia32e = u64::from(EntryControls::IA32E_MODE_GUEST.bits());
    let entry01 = vmcs01.read(control::VMENTRY_CONTROLS);
    let entry01 = if host64 {
        entry01 | ia32e
    } else {
        entry01 & !ia32e
    };
    vmcs01.write(control::VMENTRY_CONTROLS, entry01);

    load_host_segments(vmcs12, vmcs01, host64);
    vmcs01.write(guest::RIP, narrow(vmcs12.read(host::RIP)));
    vmcs01.write(guest::RSP, narrow(vmcs12.read(host::RSP)));
    vmcs01.write(guest::RFLAGS, RFLAGS_INIT);

    let mut blocking =
        Interruptibility::read(vmcs01) & (Interruptibility::SMI | Interruptibility::NMI);
    if nmi_caused_exit(vmcs12) {
        blocking |= Interruptibility::NMI;
    }
    blocking.write(vmcs01);
    ActivityState::Active.write(vmcs01);
    vmcs01.write(guest::PENDING_DBG_EXCEPTIONS, 0);

    // A 32-bit host with PAE paging gets its PDPTEs from memory; vmcs01 runs it under EPT,
    // where VM entry takes them from the PDPTE fields.
    if !host64 && cr4 & CR4_PAE != 0 && cr0 & CR0_PG != 0 {
        let pdptes = read_pdpt(mem, cr3)
            .filter(|pdptes| pdptes.iter().all(|&p| pdpte_valid(p, phys_addr_bits)))
            .ok_or(VmxAbort::HostPdpteCorrupted)?;
        for (field, pdpte) in PDPTE_FIELDS.into_iter().zip(pdptes) {
            vmcs01.write(field, pdpte);
        }
    }
    Ok(())
}

/// Whether the exit in vmcs12 was caused directly by an NMI (exit reason 0 with an NMI).
fn nmi_caused_exit(vmcs12: &impl Vmcs) -> bool {
    let info = InterruptionInfo(vmcs12.read(ro::VMEXIT_INTERRUPTION_INFO) as u32);
    vmcs12.read(ro::EXIT_REASON) == u64::from(exit_reason::EXCEPTION_OR_NMI)
        && info.valid()
        && info.interruption_type() == Some(InterruptionType::Nmi)
}

/// SS, DS, ES, FS or GS as a VM exit loads it from `selector` and `base` (SDM 28.5.2).
#[inline(always)]
fn load_host_data_segment(vmcs01: &mut impl Vmcs, fields: SegmentFields, selector: u64, base: u64) {
    // A null selector leaves the register unusable (DPL 0, which SS needs).
    let rights = if selector == 0 { ar::UNUSABLE } else { AR_DATA };
    vmcs01.write(fields.selector, selector);
    vmcs01.write(fields.base, base);
    vmcs01.write(fields.limit, LIMIT_FLAT);
    vmcs01.write(fields.access_rights, rights.into());
}

/// SDM 28.5.2: selectors from the host-state area; fixed bases, limits and access rights.
fn load_host_segments(vmcs12: &impl Vmcs, vmcs01: &mut impl Vmcs, host64: bool) {
    let cs_ar = AR_CODE | if host64 { ar::L } else { ar::DB };
    vmcs01.write(CS.selector, vmcs12.read(host::CS_SELECTOR));
    vmcs01.write(CS.base, 0);
    vmcs01.write(CS.limit, LIMIT_FLAT);
    vmcs01.write(CS.access_rights, cs_ar.into());
    // One call per register rather than a loop over a table: straight-line code with constant
    // encodings (this runs at every nested exit).
    load_host_data_segment(vmcs01, SS, vmcs12.read(host::SS_SELECTOR), 0);
    load_host_data_segment(vmcs01, DS, vmcs12.read(host::DS_SELECTOR), 0);
    load_host_data_segment(vmcs01, ES, vmcs12.read(host::ES_SELECTOR), 0);
    let fs = vmcs12.read(host::FS_SELECTOR);
    load_host_data_segment(vmcs01, FS, fs, vmcs12.read(host::FS_BASE));
    let gs = vmcs12.read(host::GS_SELECTOR);
    load_host_data_segment(vmcs01, GS, gs, vmcs12.read(host::GS_BASE));
    vmcs01.write(TR.selector, vmcs12.read(host::TR_SELECTOR));
    vmcs01.write(TR.base, vmcs12.read(host::TR_BASE));
    vmcs01.write(TR.limit, LIMIT_TSS);
    vmcs01.write(TR.access_rights, AR_BUSY_TSS.into());
    vmcs01.write(LDTR.selector, 0);
    vmcs01.write(LDTR.base, 0);
    vmcs01.write(LDTR.limit, 0);
    vmcs01.write(LDTR.access_rights, ar::UNUSABLE.into());
    vmcs01.write(guest::GDTR_BASE, vmcs12.read(host::GDTR_BASE));
    vmcs01.write(guest::GDTR_LIMIT, LIMIT_DESCRIPTOR_TABLE);
    vmcs01.write(guest::IDTR_BASE, vmcs12.read(host::IDTR_BASE));
    vmcs01.write(guest::IDTR_LIMIT, LIMIT_DESCRIPTOR_TABLE);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::event::Event;
    use crate::nested::arch::PLAIN_GUEST_FIELDS;
    use crate::route::{route, InterceptControls, Outcome, Scenario};
    use shadow_vmcs::SoftVmcs;

    /// vmcs02 after L3 ran: moved on, with a #PF exit during delivery of an external interrupt.
    fn vmcs02_after_exit() -> AnyVmcs {
        let mut vmcs02 = AnyVmcs::new();
        for field in PLAIN_GUEST_FIELDS {
            vmcs02.write(field, good_vmcs12().read(field));
        }
        vmcs02.write(guest::RIP, 0x40_2000);
        vmcs02.write(guest::RSP, 0x40_7FF0);
        vmcs02.write(guest::RFLAGS, 0x246);
        vmcs02.write(guest::CR3, 0xB000);
        vmcs02.write(guest::INTERRUPTIBILITY_STATE, 1);
        vmcs02.write(guest::PENDING_DBG_EXCEPTIONS, 1 << 14);
        vmcs02.write(guest::IA32_EFER_FULL, 0xD00);
        vmcs02.write(guest::DR7, 0x403);
        vmcs02.write(
            control::VMENTRY_CONTROLS,
            u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
        );
        vmcs02.write(ro::EXIT_REASON, 0);
        vmcs02.write(ro::EXIT_QUALIFICATION, 0xDEAD_0000);
        vmcs02.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0B0E);
        vmcs02.write(ro::VMEXIT_INTERRUPTION_ERR_CODE, 2);
        vmcs02.write(ro::IDT_VECTORING_INFO, 0x8000_0030);
        vmcs02.write(ro::GUEST_PHYSICAL_ADDR_FULL, 0x1234_5000);
        vmcs02
    }

    fn vmcs12_with_injection() -> SoftVmcs {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0030);
        vmcs12
    }

    #[test]
    fn hardware_exit_information_and_guest_state_reach_vmcs12() {
        let vmcs02 = vmcs02_after_exit();
        let mut vmcs12 = vmcs12_with_injection();
        reflect_exit(&vmcs02, &mut vmcs12, ExitFields::FromVmcs02);
        assert_eq!(vmcs12.read(ro::EXIT_REASON), 0);
        assert_eq!(vmcs12.read(ro::EXIT_QUALIFICATION), 0xDEAD_0000);
        assert_eq!(vmcs12.read(ro::VMEXIT_INTERRUPTION_INFO), 0x8000_0B0E);
        assert_eq!(vmcs12.read(ro::VMEXIT_INTERRUPTION_ERR_CODE), 2);
        assert_eq!(vmcs12.read(ro::IDT_VECTORING_INFO), 0x8000_0030);
        assert_eq!(vmcs12.read(ro::GUEST_PHYSICAL_ADDR_FULL), 0x1234_5000);
        assert_eq!(
            vmcs12.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            0x30,
            "valid bit cleared"
        );
        for field in PLAIN_GUEST_FIELDS {
            assert_eq!(vmcs12.read(field), vmcs02.read(field), "{field:#x}");
        }
        assert_eq!(vmcs12.read(guest::PENDING_DBG_EXCEPTIONS), 1 << 14);
        assert_eq!(
            vmcs12.read(guest::IA32_EFER_FULL),
            0xD00,
            "vmcs12 saves EFER"
        );
        assert_eq!(
            vmcs12.read(guest::DR7),
            0x400,
            "vmcs12 does not save debug controls"
        );
    }

    #[test]
    fn ia32e_mode_guest_follows_l3s_efer_lma() {
        let mut vmcs02 = vmcs02_after_exit();
        vmcs02.write(control::VMENTRY_CONTROLS, 0);
        let mut vmcs12 = good_vmcs12();
        let before = vmcs12.read(control::VMENTRY_CONTROLS);
        reflect_exit(&vmcs02, &mut vmcs12, ExitFields::FromVmcs02);
        assert_eq!(
            vmcs12.read(control::VMENTRY_CONTROLS),
            before & !u64::from(EntryControls::IA32E_MODE_GUEST.bits())
        );
    }

    #[test]
    fn rewritten_exits_keep_vmcs02s_other_information() {
        let vmcs02 = vmcs02_after_exit();
        let mut vmcs12 = good_vmcs12();
        reflect_exit(
            &vmcs02,
            &mut vmcs12,
            ExitFields::Rewritten {
                reason: 48,
                qualification: 0x181,
            },
        );
        assert_eq!(vmcs12.read(ro::EXIT_REASON), 48);
        assert_eq!(vmcs12.read(ro::EXIT_QUALIFICATION), 0x181);
        assert_eq!(vmcs12.read(ro::GUEST_PHYSICAL_ADDR_FULL), 0x1234_5000);
        assert_eq!(vmcs12.read(ro::IDT_VECTORING_INFO), 0x8000_0030);
    }

    #[test]
    fn event_exits_from_route_supply_their_own_information() {
        let controls = InterceptControls {
            exception_bitmap: 1 << 8,
            ..Default::default()
        };
        let Outcome::VmExit(exit) = route(&Scenario {
            controls,
            protected_mode: true,
            injected: false,
            delivering: Some(Event::page_fault(0, 0x1000)),
            event: Event::hardware_exception(13, 0),
        }) else {
            panic!("#GP during #PF is a #DF, which vmcs12 intercepts");
        };
        let mut vmcs12 = vmcs12_with_injection();
        reflect_exit(&vmcs02_after_exit(), &mut vmcs12, ExitFields::Event(exit));
        assert_eq!(vmcs12.read(ro::VMEXIT_INTERRUPTION_INFO), 0x8000_0B08);
        assert_eq!(
            vmcs12.read(ro::IDT_VECTORING_INFO),
            0,
            "a #DF exit is not during delivery"
        );
        assert_eq!(vmcs12.read(guest::RIP), 0x40_2000);
        assert_eq!(vmcs12.read(control::VMENTRY_INTERRUPTION_INFO_FIELD), 0x30);
    }

    #[test]
    fn entry_failures_of_vmcs02_save_no_guest_state() {
        let mut vmcs02 = vmcs02_after_exit();
        vmcs02.write(ro::EXIT_REASON, 33 | 1 << 31);
        vmcs02.write(ro::EXIT_QUALIFICATION, 0);
        let mut vmcs12 = vmcs12_with_injection();
        reflect_exit(&vmcs02, &mut vmcs12, ExitFields::FromVmcs02);
        assert_eq!(vmcs12.read(ro::EXIT_REASON), 0x8000_0021);
        assert_eq!(vmcs12.read(guest::RIP), good_vmcs12().read(guest::RIP));
        assert_eq!(
            vmcs12.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            0x8000_0030
        );
    }

    /// vmcs01 while the guest hypervisor executed VMLAUNCH: CD set, SMI blocking, some EFER.
    fn vmcs01_before() -> AnyVmcs {
        let mut vmcs01 = AnyVmcs::new();
        vmcs01.write(guest::CR0, 0xC000_0031);
        vmcs01.write(guest::IA32_EFER_FULL, 0xD01);
        vmcs01.write(guest::INTERRUPTIBILITY_STATE, 0b0110);
        vmcs01.write(guest::ACTIVITY_STATE, 1);
        vmcs01.write(guest::DR7, 0x4FF);
        vmcs01.write(guest::IA32_DEBUGCTL_FULL, 3);
        vmcs01.write(guest::PENDING_DBG_EXCEPTIONS, 1);
        vmcs01.write(control::VMENTRY_CONTROLS, 0x11FB);
        vmcs01
    }

    #[test]
    fn host_state_is_loaded_with_the_sdms_fixed_values() {
        let vmcs12 = good_vmcs12();
        let mut vmcs01 = vmcs01_before();
        assert_eq!(
            load_l2_host_state(&vmcs12, &mut vmcs01, &Ram::new(), PHYS_ADDR_BITS),
            Ok(())
        );
        assert_eq!(
            vmcs01.read(guest::CR0),
            0xC000_0031,
            "CD kept, the rest from the host field"
        );
        assert_eq!(vmcs01.read(guest::CR3), 0x9000);
        assert_eq!(vmcs01.read(guest::CR4), 0x2020);
        assert_eq!(vmcs01.read(control::CR4_READ_SHADOW), 0x2020);
        assert_eq!(vmcs01.read(guest::DR7), 0x400);
        assert_eq!(vmcs01.read(guest::IA32_DEBUGCTL_FULL), 0);
        assert_eq!(vmcs01.read(guest::IA32_EFER_FULL), 0x501, "load IA32_EFER");
        assert_eq!(vmcs01.read(CS.selector), 0x08);
        assert_eq!(vmcs01.read(CS.access_rights), 0xA09B);
        assert_eq!(vmcs01.read(CS.limit), 0xFFFF_FFFF);
        assert_eq!(vmcs01.read(SS.access_rights), 0xC093);
        assert_eq!(
            vmcs01.read(FS.access_rights),
            0x1_0000,
            "null FS is unusable"
        );
        assert_eq!(vmcs01.read(FS.base), 0x7000_0000);
        assert_eq!(vmcs01.read(TR.access_rights), 0x8B);
        assert_eq!(vmcs01.read(TR.limit), 0x67);
        assert_eq!(vmcs01.read(TR.base), 0xFFFF_8000_0000_2000);
        assert_eq!(vmcs01.read(LDTR.access_rights), 0x1_0000);
        assert_eq!(vmcs01.read(guest::GDTR_LIMIT), 0xFFFF);
        assert_eq!(vmcs01.read(guest::IDTR_BASE), 0xFFFF_8000_0000_3000);
        assert_eq!(vmcs01.read(guest::RIP), 0xFFFF_FFFF_8000_1000);
        assert_eq!(vmcs01.read(guest::RSP), 0xFFFF_FFFF_8000_8000);
        assert_eq!(vmcs01.read(guest::RFLAGS), 0x2);
        assert_eq!(
            vmcs01.read(guest::INTERRUPTIBILITY_STATE),
            0b0100,
            "SMI blocking kept"
        );
        assert_eq!(vmcs01.read(guest::ACTIVITY_STATE), 0);
        assert_eq!(vmcs01.read(guest::PENDING_DBG_EXCEPTIONS), 0);
        assert_ne!(
            vmcs01.read(control::VMENTRY_CONTROLS) & 1 << 9,
            0,
            "64-bit host"
        );
    }

    /// Regression (found on Bochs): rebuilding the entry controls through the `x86` crate's type
    /// dropped the default1 bits it does not name, and the next entry of vmcs01 failed with
    /// "VM-entry controls allowed 0-settings" (VM-instruction error 7).
    #[test]
    fn loading_host_state_keeps_vmcs01s_default1_entry_controls() {
        let vmcs12 = good_vmcs12();
        let mut vmcs01 = vmcs01_before();
        let default1 = 0x11fb;
        vmcs01.write(control::VMENTRY_CONTROLS, default1);
        load_l2_host_state(&vmcs12, &mut vmcs01, &Ram::new(), PHYS_ADDR_BITS).unwrap();
        assert_eq!(vmcs01.read(control::VMENTRY_CONTROLS), default1 | 1 << 9);
    }

    #[test]
    fn an_nmi_exit_leaves_nmis_blocked() {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(ro::EXIT_REASON, 0);
        vmcs12.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0202);
        let mut vmcs01 = vmcs01_before();
        load_l2_host_state(&vmcs12, &mut vmcs01, &Ram::new(), PHYS_ADDR_BITS).unwrap();
        assert_eq!(vmcs01.read(guest::INTERRUPTIBILITY_STATE), 0b1100);
    }

    #[test]
    fn efer_without_load_follows_the_host_address_space_size() {
        let mut vmcs12 = good_vmcs12();
        let exit = control::VMEXIT_CONTROLS;
        vmcs12.write(
            exit,
            vmcs12.read(exit) & !u64::from(ExitControls::LOAD_IA32_EFER.bits()),
        );
        let mut vmcs01 = vmcs01_before();
        vmcs01.write(guest::IA32_EFER_FULL, 0x801);
        load_l2_host_state(&vmcs12, &mut vmcs01, &Ram::new(), PHYS_ADDR_BITS).unwrap();
        assert_eq!(vmcs01.read(guest::IA32_EFER_FULL), 0xD01);
    }

    /// A 32-bit PAE host: host address-space size 0.
    fn pae_host_vmcs12() -> SoftVmcs {
        let mut vmcs12 = good_vmcs12();
        let exit = control::VMEXIT_CONTROLS;
        let cleared = ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::LOAD_IA32_EFER;
        vmcs12.write(exit, vmcs12.read(exit) & !u64::from(cleared.bits()));
        vmcs12.write(host::CR3, PDPT);
        vmcs12.write(host::RIP, 0x1_0000_1000);
        vmcs12
    }

    #[test]
    fn a_32bit_host_gets_32bit_segments_and_its_pdptes() {
        let mut ram = Ram::new();
        ram.put_u64(PDPT, 0xB001);
        let mut vmcs01 = vmcs01_before();
        assert_eq!(
            load_l2_host_state(&pae_host_vmcs12(), &mut vmcs01, &ram, PHYS_ADDR_BITS),
            Ok(())
        );
        assert_eq!(vmcs01.read(CS.access_rights), 0xC09B);
        assert_eq!(vmcs01.read(guest::PDPTE0_FULL), 0xB001);
        assert_eq!(vmcs01.read(guest::RIP), 0x1000, "RIP bits 63:32 cleared");
        assert_eq!(vmcs01.read(guest::IA32_EFER_FULL), 0x801);
        assert_eq!(vmcs01.read(control::VMENTRY_CONTROLS) & 1 << 9, 0);
        ram.put_u64(PDPT + 8, 0xC001 | 1 << 1);
        assert_eq!(
            load_l2_host_state(&pae_host_vmcs12(), &mut vmcs01, &ram, PHYS_ADDR_BITS),
            Err(VmxAbort::HostPdpteCorrupted)
        );
    }
}
