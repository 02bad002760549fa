//! L3's VMCS: controls and host state written once, guest state and interception rewritten for
//! every scenario. Every control word is adjusted against the capability MSRs; ghv asks only
//! for what it uses (SDM 25.6, checked against SDM 27.2.1).

use crate::descriptors::{self, DescriptorTables};
use crate::l3::L3Memory;
use crate::scenarios::Scenario;
use l1_vmx::capabilities::{Capabilities, Unsupported};
use l1_vmx::flat64::{self, FlatGuest, FlatHost};
use l1_vmx::vmx_exit;
use shadow_vmcs::Vmcs;
use x86::controlregs::{Cr0, Cr4};
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PrimaryControls, SecondaryControls,
};

/// L3's VPID (0 is reserved for VMX root operation, SDM 29.1).
const VPID: u64 = 1;
/// EPT pointer bits: write-back paging structures (bits 2:0 = 6), 4-level walk (bits 5:3 = 3).
const EPTP_WB_4_LEVEL: u64 = 6 | (3 << 3);
/// RFLAGS with only the reserved bit 1: interrupts disabled, so nothing external reaches L3.
const RFLAGS_RESERVED: u64 = 0x2;

/// Writes the execution, exit and entry controls and the host state.
///
/// No external-interrupt or NMI exiting: L3 runs with RFLAGS.IF = 0 and ghv has nothing to
/// route. Exits: HLT, every I/O instruction, exceptions per scenario, and what VMX always
/// intercepts (CPUID, VMCALL, MSR accesses without MSR bitmaps, triple fault). Neither EFER
/// load control: VM entry sets EFER.LMA/LME from "IA-32e mode guest" and VM exit from "host
/// address-space size" (SDM 27.3.2.1, 28.5.1).
pub fn write_controls_and_host(
    vmcs: &mut impl Vmcs,
    caps: &Capabilities,
    ept_root: u64,
    host: &DescriptorTables,
) -> Result<(), Unsupported> {
    let pin = caps.pin(0, 0)?;
    let primary = caps.primary(
        (PrimaryControls::HLT_EXITING
            | PrimaryControls::UNCOND_IO_EXITING
            | PrimaryControls::SECONDARY_CONTROLS)
            .bits(),
        0,
    )?;
    let secondary = caps.secondary(
        (SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits(),
        0,
    )?;
    let exit = caps.exit(ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(), 0)?;
    let entry = caps.entry(EntryControls::IA32E_MODE_GUEST.bits(), 0)?;
    vmcs.write(control::PINBASED_EXEC_CONTROLS, pin.into());
    vmcs.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary.into());
    vmcs.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, secondary.into());
    vmcs.write(control::VMEXIT_CONTROLS, exit.into());
    vmcs.write(control::VMENTRY_CONTROLS, entry.into());
    vmcs.write(control::EPTP_FULL, ept_root | EPTP_WB_4_LEVEL);
    vmcs.write(control::VPID, VPID);
    vmcs.write(control::CR3_TARGET_COUNT, 0);
    vmcs.write(control::VMEXIT_MSR_STORE_COUNT, 0);
    vmcs.write(control::VMEXIT_MSR_LOAD_COUNT, 0);
    vmcs.write(control::VMENTRY_MSR_LOAD_COUNT, 0);
    // L3 owns CR0. CR4.VMXE must stay 1 in VMX operation (SDM 24.8), so ghv owns that bit
    // and L3 reads 0 there (SDM 25.6.6).
    vmcs.write(control::CR0_GUEST_HOST_MASK, 0);
    vmcs.write(
        control::CR4_GUEST_HOST_MASK,
        Cr4::CR4_ENABLE_VMX.bits() as u64,
    );
    vmcs.write(
        control::CR4_READ_SHADOW,
        l3_cr4(caps) & !(Cr4::CR4_ENABLE_VMX.bits() as u64),
    );
    flat64::write_host_state(
        vmcs,
        &FlatHost {
            code_selector: descriptors::CODE.bits(),
            data_selector: descriptors::DATA.bits(),
            tr_selector: descriptors::TSS.bits(),
            tr_base: host.tss_base(),
            gdt_base: host.gdt_base(),
            // ghv has no IDT: it runs with interrupts disabled and must not fault; a fault
            // in ghv shuts the machine down (bare) or is contained by l1-hv.
            idt_base: 0,
            rip: vmx_exit as *const () as u64,
        },
    );
    Ok(())
}

fn l3_cr4(caps: &Capabilities) -> u64 {
    caps.fix_cr4(Cr4::CR4_ENABLE_PAE.bits() as u64)
}

/// Writes L3's initial state for `scenario` (entering at its action with `l3`'s fresh tables),
/// its exception bitmap and #PF error-code mask and match, and clears any pending injection.
pub fn write_scenario(
    vmcs: &mut impl Vmcs,
    caps: &Capabilities,
    l3: &L3Memory,
    scenario: &Scenario,
) {
    let cr0 = Cr0::CR0_PROTECTED_MODE
        | Cr0::CR0_MONITOR_COPROCESSOR
        | Cr0::CR0_EXTENSION_TYPE
        | Cr0::CR0_NUMERIC_ERROR
        | Cr0::CR0_WRITE_PROTECT
        | Cr0::CR0_ENABLE_PAGING;
    flat64::write_guest_state(
        vmcs,
        &FlatGuest {
            cr0: caps.fix_cr0(cr0.bits() as u64),
            cr3: l3.cr3(),
            cr4: l3_cr4(caps),
            rip: scenario.action.entry(),
            rsp: l3.stack_top(),
            rflags: RFLAGS_RESERVED,
            code_selector: descriptors::CODE.bits(),
            data_selector: descriptors::DATA.bits(),
            tr_selector: descriptors::TSS.bits(),
            tr_base: l3.tss_base(),
            gdtr: l3.gdtr(),
            idtr: l3.idtr(),
        },
    );
    vmcs.write(control::EXCEPTION_BITMAP, scenario.exception_bitmap.into());
    vmcs.write(control::PAGE_FAULT_ERR_CODE_MASK, scenario.pfec_mask.into());
    vmcs.write(
        control::PAGE_FAULT_ERR_CODE_MATCH,
        scenario.pfec_match.into(),
    );
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
}
