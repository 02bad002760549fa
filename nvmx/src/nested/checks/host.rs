//! Checks on the host-state area (SDM 27.2.2 control registers and MSRs, 27.2.3 segment and
//! descriptor-table registers, 27.2.4 address-space size).

use super::super::arch::{
    canonical, fixed_bits_ok, pat_valid, within_width, CR0_WP, CR4_CET, CR4_PAE, CR4_PCIDE,
    EFER_DEFINED, EFER_LMA, EFER_LME,
};
use super::super::controls::Controls;
use super::EntryContext;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::control::ExitControls;
use x86::vmx::vmcs::host;

/// Selector bits 2:0: RPL and TI, which must be 0 in every host selector.
const RPL_TI: u64 = 0b111;

pub(super) fn host_state_valid(v: &impl Vmcs, ctx: &EntryContext<'_>) -> bool {
    let c = Controls::read(v);
    let host64 = c.exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE);
    registers_valid(v, ctx, &c, host64)
        && segments_valid(v, host64)
        && address_space_size_valid(v, ctx, &c, host64)
}

/// SDM 27.2.2.
fn registers_valid(v: &impl Vmcs, ctx: &EntryContext<'_>, c: &Controls, host64: bool) -> bool {
    let caps = ctx.caps;
    let cr0 = v.read(host::CR0);
    let cr4 = v.read(host::CR4);
    let efer = v.read(host::IA32_EFER_FULL);
    let efer_ok = efer & !EFER_DEFINED == 0
        && (efer & EFER_LMA != 0) == host64
        && (efer & EFER_LME != 0) == host64;
    fixed_bits_ok(cr0, caps.cr0_fixed0, caps.cr0_fixed1)
        && fixed_bits_ok(cr4, caps.cr4_fixed0, caps.cr4_fixed1)
        && (cr4 & CR4_CET == 0 || cr0 & CR0_WP != 0)
        && within_width(v.read(host::CR3), ctx.phys_addr_bits)
        && canonical(v.read(host::IA32_SYSENTER_ESP))
        && canonical(v.read(host::IA32_SYSENTER_EIP))
        && (!c.exit.contains(ExitControls::LOAD_IA32_PAT) || pat_valid(v.read(host::IA32_PAT_FULL)))
        && (!c.exit.contains(ExitControls::LOAD_IA32_EFER) || efer_ok)
}

/// SDM 27.2.3.
fn segments_valid(v: &impl Vmcs, host64: bool) -> bool {
    let selectors = [
        host::CS_SELECTOR,
        host::SS_SELECTOR,
        host::DS_SELECTOR,
        host::ES_SELECTOR,
        host::FS_SELECTOR,
        host::GS_SELECTOR,
        host::TR_SELECTOR,
    ];
    let bases = [
        host::FS_BASE,
        host::GS_BASE,
        host::GDTR_BASE,
        host::IDTR_BASE,
        host::TR_BASE,
    ];
    selectors.iter().all(|&field| v.read(field) & RPL_TI == 0)
        && v.read(host::CS_SELECTOR) != 0
        && v.read(host::TR_SELECTOR) != 0
        && (host64 || v.read(host::SS_SELECTOR) != 0)
        && bases.iter().all(|&field| canonical(v.read(field)))
}

/// SDM 27.2.4: the host address-space size follows the guest hypervisor's own mode, and fixes
/// CR4.PAE/PCIDE and the form of RIP.
fn address_space_size_valid(
    v: &impl Vmcs,
    ctx: &EntryContext<'_>,
    c: &Controls,
    host64: bool,
) -> bool {
    let cr4 = v.read(host::CR4);
    let rip = v.read(host::RIP);
    let mode_ok = if ctx.ia32e_mode {
        host64
    } else {
        !host64 && !c.ia32e_guest()
    };
    let size_ok = if host64 {
        cr4 & CR4_PAE != 0 && canonical(rip)
    } else {
        !c.ia32e_guest() && cr4 & CR4_PCIDE == 0 && rip >> 32 == 0
    };
    mode_ok && size_ok
}
