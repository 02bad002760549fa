//! Checks on the guest-state area (SDM 27.3.1): control and debug registers and MSRs, segment
//! registers, descriptor tables, RIP and RFLAGS, non-register state, PDPTEs. A failure is
//! reported as the exit qualification of the VM-entry failure exit.

use super::super::arch::ar;
use super::super::arch::{
    canonical, fixed_bits_ok, pat_valid, within_width, CR0_PE, CR0_PG, CR0_WP, CR4_CET, CR4_PAE,
    CR4_PCIDE, DEBUGCTL_ALLOWED, DEBUGCTL_BTF, EFER_DEFINED, EFER_LMA, EFER_LME, SS,
};
use super::super::controls::Controls;
use super::super::pdpte::{guest_pdptes, guest_uses_pae_paging, pdpte_valid};
use super::segments::{segments_valid, SegmentMode};
use super::{EntryContext, QUALIFICATION_DEFAULT, QUALIFICATION_LINK_POINTER, QUALIFICATION_PDPTE};
use crate::event::{InterruptionInfo, InterruptionType};
use crate::insn::GuestMemory;
use crate::intr::{ActivityState, Interruptibility};
use shadow_vmcs::{Vmcs, SHADOW_INDICATOR, VMCS12_REVISION_ID};
use x86::bits64::rflags::RFlags;
use x86::irq::{DEBUG_VECTOR, MACHINE_CHECK_VECTOR};
use x86::vmx::vmcs::control::{EntryControls, PinbasedControls, SecondaryControls};
use x86::vmx::vmcs::{control, guest};

/// RFLAGS bits 63:22, 15, 5 and 3 are reserved (0); bit 1 is reserved (1).
const RFLAGS_RESERVED: u64 = 0xFFFF_FFFF_FFC0_8028;
const RFLAGS_FIXED: u64 = RFlags::FLAGS_A1.bits();
const RFLAGS_IF: u64 = RFlags::FLAGS_IF.bits();
const RFLAGS_TF: u64 = RFlags::FLAGS_TF.bits();
const RFLAGS_VM: u64 = RFlags::FLAGS_VM.bits();
/// Pending debug exceptions: B3–B0, enabled breakpoint (12), BS (14). The RTM bit (16) needs
/// RTM, which is not vouched for, and the rest is reserved.
const PENDING_DEBUG_ALLOWED: u64 = 0xF | 1 << 12 | 1 << 14;
const PENDING_DEBUG_BS: u64 = 1 << 14;
/// IA32_VMX_MISC bit 6: the HLT activity state is supported.
const MISC_ACTIVITY_HLT: u64 = 1 << 6;

pub(super) fn check_guest_state(
    v: &impl Vmcs,
    mem: &impl GuestMemory,
    ctx: &EntryContext<'_>,
) -> Result<(), u64> {
    let c = Controls::read(v);
    let mode = segment_mode(v, &c);
    let valid = registers_valid(v, ctx, &c)
        && segments_valid(v, mode)
        && descriptor_tables_valid(v)
        && rip_rflags_valid(v, &c, mode)
        && non_register_state_valid(v, ctx, &c)
        && injection_state_valid(v, &c);
    if !valid {
        return Err(QUALIFICATION_DEFAULT);
    }
    if !link_pointer_valid(v, mem, ctx, &c) {
        return Err(QUALIFICATION_LINK_POINTER);
    }
    if guest_uses_pae_paging(v, &c) {
        let loaded = guest_pdptes(v, &c, mem);
        if !loaded.is_some_and(|pdptes| pdptes.iter().all(|&p| pdpte_valid(p, ctx.phys_addr_bits)))
        {
            return Err(QUALIFICATION_PDPTE);
        }
    }
    Ok(())
}

/// The guest-state rules that read the injected event (SDM 27.3.1.4: RFLAGS.IF for an external
/// interrupt; 27.3.1.5: the events HLT allows, blocking by STI and MOV SS, virtual-NMI blocking),
/// which is all an entry needs where only the injection fields changed since vmcs12 last passed
/// every check: the other guest-state rules read no injection field. `c`: vmcs12's controls.
pub(super) fn injection_state_valid(v: &impl Vmcs, c: &Controls) -> bool {
    let info = InterruptionInfo(v.read(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32);
    // Type 1 (reserved) failed the control checks already.
    let Some(injection) = info.valid().then(|| info.interruption_type()).flatten() else {
        return true;
    };
    let rflags = v.read(guest::RFLAGS);
    let blocking = Interruptibility::read(v);
    let sti_or_mov_ss = blocking & (Interruptibility::STI | Interruptibility::MOV_SS);
    let event_ok = match injection {
        InterruptionType::ExternalInterrupt => rflags & RFLAGS_IF != 0 && sti_or_mov_ss.is_empty(),
        // Some processors also refuse STI blocking with NMI injection; refuse it everywhere.
        InterruptionType::Nmi => {
            sti_or_mov_ss.is_empty()
                && (!c.pin.contains(PinbasedControls::VIRTUAL_NMIS)
                    || !blocking.contains(Interruptibility::NMI))
        }
        _ => true,
    };
    // In HLT, only events that leave the HLT state may be injected: INTR, NMI, #DB, #MC and a
    // pending MTF VM exit.
    let halted_ok = || match injection {
        InterruptionType::ExternalInterrupt | InterruptionType::Nmi => true,
        InterruptionType::HardwareException => {
            matches!(info.vector(), DEBUG_VECTOR | MACHINE_CHECK_VECTOR)
        }
        InterruptionType::OtherEvent => info.vector() == 0,
        _ => false,
    };
    event_ok && (ActivityState::read(v) != Some(ActivityState::Hlt) || halted_ok())
}

/// Whether the guest-state checks read the guest hypervisor's memory for `v`: a VMCS link
/// pointer other than all ones (its region), PAE paging without EPT (the PDPTEs).
pub(super) fn reads_memory(v: &impl Vmcs, c: &Controls) -> bool {
    v.read(guest::LINK_PTR_FULL) != u64::MAX || (guest_uses_pae_paging(v, c) && !c.ept())
}

fn segment_mode(v: &impl Vmcs, c: &Controls) -> SegmentMode {
    SegmentMode {
        ia32e: c.ia32e_guest(),
        unrestricted: c.unrestricted_guest(),
        v8086: v.read(guest::RFLAGS) & RFLAGS_VM != 0,
        protected: v.read(guest::CR0) & CR0_PE != 0,
    }
}

/// SDM 27.3.1.1: control registers, debug registers and MSRs.
fn registers_valid(v: &impl Vmcs, ctx: &EntryContext<'_>, c: &Controls) -> bool {
    let caps = ctx.caps;
    let cr0 = v.read(guest::CR0);
    let cr4 = v.read(guest::CR4);
    let ia32e = c.ia32e_guest();
    // "Unrestricted guest" lifts the PE and PG requirements of IA32_VMX_CR0_FIXED0.
    let cr0_fixed0 = if c.unrestricted_guest() {
        caps.cr0_fixed0 & !(CR0_PE | CR0_PG)
    } else {
        caps.cr0_fixed0
    };
    let efer = v.read(guest::IA32_EFER_FULL);
    let efer_ok = efer & !EFER_DEFINED == 0
        && (efer & EFER_LMA != 0) == ia32e
        && (cr0 & CR0_PG == 0 || (efer & EFER_LME != 0) == ia32e);
    fixed_bits_ok(cr0, cr0_fixed0, caps.cr0_fixed1)
        && (cr0 & CR0_PG == 0 || cr0 & CR0_PE != 0)
        && fixed_bits_ok(cr4, caps.cr4_fixed0, caps.cr4_fixed1)
        && (cr4 & CR4_CET == 0 || cr0 & CR0_WP != 0)
        && (!c.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS)
            || (v.read(guest::IA32_DEBUGCTL_FULL) & !DEBUGCTL_ALLOWED == 0
                && v.read(guest::DR7) >> 32 == 0))
        && (!ia32e || (cr0 & CR0_PG != 0 && cr4 & CR4_PAE != 0))
        && (ia32e || cr4 & CR4_PCIDE == 0)
        && within_width(v.read(guest::CR3), ctx.phys_addr_bits)
        && canonical(v.read(guest::IA32_SYSENTER_ESP))
        && canonical(v.read(guest::IA32_SYSENTER_EIP))
        && (!c.entry.contains(EntryControls::LOAD_IA32_PAT)
            || pat_valid(v.read(guest::IA32_PAT_FULL)))
        && (!c.entry.contains(EntryControls::LOAD_IA32_EFER) || efer_ok)
}

/// SDM 27.3.1.3: GDTR and IDTR.
fn descriptor_tables_valid(v: &impl Vmcs) -> bool {
    canonical(v.read(guest::GDTR_BASE))
        && canonical(v.read(guest::IDTR_BASE))
        && v.read(guest::GDTR_LIMIT) >> 16 == 0
        && v.read(guest::IDTR_LIMIT) >> 16 == 0
}

/// SDM 27.3.1.4: RIP and RFLAGS.
fn rip_rflags_valid(v: &impl Vmcs, c: &Controls, mode: SegmentMode) -> bool {
    let rip = v.read(guest::RIP);
    let rflags = v.read(guest::RFLAGS);
    let cs_long = v.read(guest::CS_ACCESS_RIGHTS) as u32 & ar::L != 0;
    let rip_ok = if mode.ia32e && cs_long {
        canonical(rip)
    } else {
        rip >> 32 == 0
    };
    rip_ok
        && rflags & RFLAGS_RESERVED == 0
        && rflags & RFLAGS_FIXED != 0
        && (!mode.v8086 || (!c.ia32e_guest() && mode.protected))
}

/// SDM 27.3.1.5: activity state, interruptibility state, pending debug exceptions, apart from
/// the rules on the injected event ([`injection_state_valid`]).
fn non_register_state_valid(v: &impl Vmcs, ctx: &EntryContext<'_>, c: &Controls) -> bool {
    let activity = ActivityState::read(v);
    let halted = activity == Some(ActivityState::Hlt);
    let blocking = Interruptibility::read(v);
    let rflags = v.read(guest::RFLAGS);
    let sti_or_mov_ss = blocking & (Interruptibility::STI | Interruptibility::MOV_SS);
    let ss_dpl = ar::dpl(v.read(SS.access_rights) as u32);

    // Only the states the guest's IA32_VMX_MISC offers: active, and HLT if bit 6 is set.
    let activity_ok = match activity {
        Some(ActivityState::Active) => true,
        Some(ActivityState::Hlt) => {
            ctx.caps.misc & MISC_ACTIVITY_HLT != 0 && ss_dpl == 0 && sti_or_mov_ss.is_empty()
        }
        None => false,
    };
    // Bits 31:4 are refused: bit 4 (enclave interruption) needs SGX.
    let blocking_ok = Interruptibility::all().contains(blocking)
        && sti_or_mov_ss != (Interruptibility::STI | Interruptibility::MOV_SS)
        && (!blocking.contains(Interruptibility::STI) || rflags & RFLAGS_IF != 0)
        // l1-hv's guests never run in SMM.
        && !blocking.contains(Interruptibility::SMI);

    let pending = v.read(guest::PENDING_DBG_EXCEPTIONS);
    let single_step = rflags & RFLAGS_TF != 0;
    // BS must say whether a single-step trap is pending: TF = 1 and BTF = 0. Checked against
    // vmcs12's field (the SDM's rule) and, when vmcs12 does not load debug controls, against the
    // DEBUGCTL L3 inherits and vmcs02 will carry.
    let bs_ok = |debugctl: u64| {
        (pending & PENDING_DEBUG_BS != 0) == (single_step && debugctl & DEBUGCTL_BTF == 0)
    };
    let loads_debug = c.entry.contains(EntryControls::LOAD_DEBUG_CONTROLS);
    let pending_ok = pending & !PENDING_DEBUG_ALLOWED == 0
        && (sti_or_mov_ss.is_empty() && !halted
            || (bs_ok(v.read(guest::IA32_DEBUGCTL_FULL))
                && (loads_debug || bs_ok(ctx.l2_debugctl))));
    activity_ok && blocking_ok && pending_ok
}

/// SDM 27.3.1.5, VMCS link pointer: all ones, or a valid page address of a region holding
/// vmcs12's revision identifier, with the shadow-VMCS indicator equal to "VMCS shadowing".
fn link_pointer_valid(
    v: &impl Vmcs,
    mem: &impl GuestMemory,
    ctx: &EntryContext<'_>,
    c: &Controls,
) -> bool {
    let pointer = v.read(guest::LINK_PTR_FULL);
    if pointer == u64::MAX {
        return true;
    }
    let shadowing = c.secondary.contains(SecondaryControls::VMCS_SHADOWING);
    let expected = VMCS12_REVISION_ID | if shadowing { SHADOW_INDICATOR } else { 0 };
    let mut word = [0u8; 4];
    super::super::arch::page_address_valid(pointer, ctx.phys_addr_bits)
        && mem.read(pointer, &mut word).is_ok()
        && u32::from_le_bytes(word) == expected
}
