//! VMCS guest and host state for flat 64-bit (or 32-bit protected-mode) code at CPL 0: one code and one data segment
//! covering everything, a busy 64-bit TSS, no LDT (SDM 25.4 "Guest-state area", 25.5
//! "Host-state area"; values chosen to pass the checks of SDM 27.2.3 and 27.3.1).
//!
//! Used by l1-hv for its L2 guests and by the guest hypervisor `ghv` for its L3. IA32_EFER is left to the caller: it is
//! only loaded when the "load IA32_EFER" VM-entry/VM-exit controls are set, which is the
//! caller's choice.

use shadow_vmcs::Vmcs;
use x86::controlregs::{cr0, cr3, cr4};
use x86::vmx::vmcs::{guest, host};

/// Access rights (SDM Table 25-2 format): 64-bit code, read/write data, busy 64-bit TSS,
/// unusable.
const AR_CODE64: u64 = 0xa09b;
/// 32-bit code: execute/read, accessed, D/B (32-bit operands), G.
const AR_CODE32: u64 = 0xc09b;
const AR_DATA: u64 = 0xc093;
const AR_TSS_BUSY: u64 = 0x8b;
const AR_UNUSABLE: u64 = 1 << 16;
/// Limit of a 64-bit TSS without an I/O permission bitmap.
const TSS_LIMIT: u64 = 0x67;
/// DR7 after reset: only the reserved bit 10 set (no breakpoint enabled).
const DR7_RESET: u64 = 0x400;

/// A flat 64-bit guest's register and descriptor-table state.
#[derive(Clone, Copy, Debug)]
pub struct FlatGuest {
    /// CR0, already adjusted to the VMX fixed bits.
    pub cr0: u64,
    /// CR3 (guest-physical address of the PML4).
    pub cr3: u64,
    /// CR4, already adjusted to the VMX fixed bits.
    pub cr4: u64,
    /// Entry point.
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// Initial RFLAGS (bit 1 must be set).
    pub rflags: u64,
    /// Code selector (GDT entry: 64-bit code, DPL 0).
    pub code_selector: u16,
    /// Selector loaded into SS, DS, ES, FS and GS (GDT entry: data, DPL 0).
    pub data_selector: u16,
    /// TR selector (GDT entry: 64-bit TSS).
    pub tr_selector: u16,
    /// TSS base address.
    pub tr_base: u64,
    /// GDT base and limit.
    pub gdtr: (u64, u32),
    /// IDT base and limit.
    pub idtr: (u64, u32),
}

/// Writes the whole guest-state area for `state` in 64-bit mode: every segment flat, LDTR
/// unusable, no blocking, active, no pending debug exceptions, no VMCS link (SDM 25.4).
pub fn write_guest_state(vmcs: &mut impl Vmcs, state: &FlatGuest) {
    write_flat_state(vmcs, state, AR_CODE64);
}

/// The same state with a 32-bit code segment (protected mode; paging as `state.cr0` says):
/// how multiboot and Linux's 32-bit boot protocol start a kernel.
pub fn write_protected32_state(vmcs: &mut impl Vmcs, state: &FlatGuest) {
    write_flat_state(vmcs, state, AR_CODE32);
}

fn write_flat_state(vmcs: &mut impl Vmcs, state: &FlatGuest, code_rights: u64) {
    vmcs.write(guest::CR0, state.cr0);
    vmcs.write(guest::CR3, state.cr3);
    vmcs.write(guest::CR4, state.cr4);
    vmcs.write(guest::DR7, DR7_RESET);
    vmcs.write(guest::RFLAGS, state.rflags);
    vmcs.write(guest::RIP, state.rip);
    vmcs.write(guest::RSP, state.rsp);
    let segments = [
        (
            guest::CS_SELECTOR,
            guest::CS_BASE,
            guest::CS_LIMIT,
            guest::CS_ACCESS_RIGHTS,
        ),
        (
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
        ),
        (
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
        ),
        (
            guest::ES_SELECTOR,
            guest::ES_BASE,
            guest::ES_LIMIT,
            guest::ES_ACCESS_RIGHTS,
        ),
        (
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
        ),
        (
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
        ),
    ];
    for (index, (selector, base, limit, rights)) in segments.into_iter().enumerate() {
        let (value, ar) = if index == 0 {
            (state.code_selector, code_rights)
        } else {
            (state.data_selector, AR_DATA)
        };
        vmcs.write(selector, value.into());
        vmcs.write(base, 0);
        vmcs.write(limit, 0xffff_ffff);
        vmcs.write(rights, ar);
    }
    vmcs.write(guest::LDTR_SELECTOR, 0);
    vmcs.write(guest::LDTR_BASE, 0);
    vmcs.write(guest::LDTR_LIMIT, 0);
    vmcs.write(guest::LDTR_ACCESS_RIGHTS, AR_UNUSABLE);
    vmcs.write(guest::TR_SELECTOR, state.tr_selector.into());
    vmcs.write(guest::TR_BASE, state.tr_base);
    vmcs.write(guest::TR_LIMIT, TSS_LIMIT);
    vmcs.write(guest::TR_ACCESS_RIGHTS, AR_TSS_BUSY);
    vmcs.write(guest::GDTR_BASE, state.gdtr.0);
    vmcs.write(guest::GDTR_LIMIT, state.gdtr.1.into());
    vmcs.write(guest::IDTR_BASE, state.idtr.0);
    vmcs.write(guest::IDTR_LIMIT, state.idtr.1.into());
    vmcs.write(guest::IA32_DEBUGCTL_FULL, 0);
    vmcs.write(guest::IA32_SYSENTER_CS, 0);
    vmcs.write(guest::IA32_SYSENTER_ESP, 0);
    vmcs.write(guest::IA32_SYSENTER_EIP, 0);
    vmcs.write(guest::INTERRUPTIBILITY_STATE, 0);
    vmcs.write(guest::ACTIVITY_STATE, 0);
    vmcs.write(guest::PENDING_DBG_EXCEPTIONS, 0);
    vmcs.write(guest::LINK_PTR_FULL, u64::MAX);
}

/// The host's descriptor tables, which a VM exit loads (SDM 28.5.2), and where it resumes.
#[derive(Clone, Copy, Debug)]
pub struct FlatHost {
    /// Code selector (64-bit code, DPL 0).
    pub code_selector: u16,
    /// Selector for SS, DS and ES (FS and GS get 0).
    pub data_selector: u16,
    /// TR selector (must not be 0, SDM 27.2.3).
    pub tr_selector: u16,
    /// TSS base.
    pub tr_base: u64,
    /// GDT base (a VM exit sets the GDTR limit to 0xffff).
    pub gdt_base: u64,
    /// IDT base (a VM exit sets the IDTR limit to 0xffff).
    pub idt_base: u64,
    /// Host RIP: the exit half of the entry stub (`super::vmx_exit` or `super::vmx_exit_fast`).
    pub rip: u64,
}

/// Writes the host-state area: the current CR0/CR3/CR4 and `tables` (host RSP is written by the
/// entry stub). Host IA32_EFER is left to the caller.
pub fn write_host_state(vmcs: &mut impl Vmcs, tables: &FlatHost) {
    // SAFETY: reading control registers has no side effects.
    let (cr0, cr3, cr4) = unsafe { (cr0().bits() as u64, cr3(), cr4().bits() as u64) };
    vmcs.write(host::CR0, cr0);
    vmcs.write(host::CR3, cr3);
    vmcs.write(host::CR4, cr4);
    vmcs.write(host::CS_SELECTOR, tables.code_selector.into());
    for field in [host::SS_SELECTOR, host::DS_SELECTOR, host::ES_SELECTOR] {
        vmcs.write(field, tables.data_selector.into());
    }
    vmcs.write(host::FS_SELECTOR, 0);
    vmcs.write(host::GS_SELECTOR, 0);
    vmcs.write(host::TR_SELECTOR, tables.tr_selector.into());
    vmcs.write(host::FS_BASE, 0);
    vmcs.write(host::GS_BASE, 0);
    vmcs.write(host::TR_BASE, tables.tr_base);
    vmcs.write(host::GDTR_BASE, tables.gdt_base);
    vmcs.write(host::IDTR_BASE, tables.idt_base);
    vmcs.write(host::IA32_SYSENTER_CS, 0);
    vmcs.write(host::IA32_SYSENTER_ESP, 0);
    vmcs.write(host::IA32_SYSENTER_EIP, 0);
    vmcs.write(host::RIP, tables.rip);
}
