//! Initial VMCS contents for a 64-bit guest under EPT (SDM 25 "VMCS organization", checked
//! against SDM 27.2–27.3 "VM-entry checks"). Every control word is adjusted against the
//! capability MSRs; only the bits l1-hv needs are requested.

use crate::arch::{gdt, idt};
use l1_vmx::capabilities::{Capabilities, Unsupported};
use l2_abi::{BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, BOOT_GDT, BOOT_PML4, RAM_SIZE};
use nvmx::nested::{EFER_LMA, EFER_LME};
use shadow_vmcs::Vmcs;
use l1_vmx::flat64::{self, FlatGuest, FlatHost};
use x86::controlregs::{Cr0, Cr4};
use x86::msr::{rdmsr, IA32_EFER};
use x86::vmx::vmcs::control::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{control, guest, host};

/// Guest-physical address of the boot TSS (inside the boot GDT's page).
pub const BOOT_TSS: u64 = BOOT_GDT + 0x100;
/// Boot GDT: null, code64 (0x08), data (0x10), 64-bit TSS (0x18, two slots).
const BOOT_TSS_SELECTOR: u16 = 0x18;
/// Instructions a guest may run without an exit before l1-hv calls it runaway (Bochs counts
/// one TSC tick per instruction; the preemption timer ticks at TSC >> IA32_VMX_MISC[4:0]).
const RUNAWAY_TSC_TICKS: u64 = 400_000_000;

/// Per-guest values the VMCS needs.
pub struct GuestSetup {
    /// Entry point (guest RIP).
    pub entry: u64,
    /// EPT pointer.
    pub eptp: u64,
    /// Virtual-processor identifier (non-zero).
    pub vpid: u16,
    /// l1-hv's exception bitmap for this guest.
    pub exception_bitmap: u32,
    /// Physical address of the MSR bitmap (all ones: every RDMSR/WRMSR exits).
    pub msr_bitmap: u64,
}

/// Writes controls, host state and the initial guest state into the current VMCS.
pub fn write_vmcs(vmcs: &mut impl Vmcs, caps: &Capabilities, setup: &GuestSetup) -> Result<(), Unsupported> {
    write_controls(vmcs, caps, setup)?;
    write_host_state(vmcs);
    write_guest_state(vmcs, caps, setup);
    Ok(())
}

fn write_controls(vmcs: &mut impl Vmcs, caps: &Capabilities, setup: &GuestSetup) -> Result<(), Unsupported> {
    let pin = caps.pin(
        (PinbasedControls::EXTERNAL_INTERRUPT_EXITING | PinbasedControls::NMI_EXITING).bits(),
        PinbasedControls::VMX_PREEMPTION_TIMER.bits(),
    )?;
    let primary = caps.primary(
        (PrimaryControls::HLT_EXITING
            | PrimaryControls::UNCOND_IO_EXITING
            | PrimaryControls::USE_MSR_BITMAPS
            | PrimaryControls::SECONDARY_CONTROLS)
            .bits(),
        0,
    )?;
    let secondary = caps.secondary(
        (SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits(),
        (SecondaryControls::ENABLE_RDTSCP | SecondaryControls::ENABLE_INVPCID).bits(),
    )?;
    let exit = caps.exit(
        (ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER
            | ExitControls::ACK_INTERRUPT_ON_EXIT)
            .bits(),
        0,
    )?;
    let entry = caps.entry((EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_IA32_EFER).bits(), 0)?;
    vmcs.write(control::PINBASED_EXEC_CONTROLS, pin.into());
    vmcs.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary.into());
    vmcs.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, secondary.into());
    vmcs.write(control::VMEXIT_CONTROLS, exit.into());
    vmcs.write(control::VMENTRY_CONTROLS, entry.into());
    vmcs.write(control::EXCEPTION_BITMAP, setup.exception_bitmap.into());
    vmcs.write(control::PAGE_FAULT_ERR_CODE_MASK, 0);
    vmcs.write(control::PAGE_FAULT_ERR_CODE_MATCH, 0);
    vmcs.write(control::MSR_BITMAPS_ADDR_FULL, setup.msr_bitmap);
    vmcs.write(control::EPTP_FULL, setup.eptp);
    vmcs.write(control::VPID, setup.vpid.into());
    // The guest owns CR0; CR4.VMXE must stay 1 in VMX operation, so l1-hv owns it and the
    // guest reads 0 there (SDM 25.6.6).
    vmcs.write(control::CR0_GUEST_HOST_MASK, 0);
    vmcs.write(control::CR4_GUEST_HOST_MASK, Cr4::CR4_ENABLE_VMX.bits() as u64);
    vmcs.write(control::CR4_READ_SHADOW, Cr4::CR4_ENABLE_PAE.bits() as u64);
    if pin & PinbasedControls::VMX_PREEMPTION_TIMER.bits() != 0 {
        // SAFETY: the MSR exists whenever VMX does.
        let rate = unsafe { rdmsr(x86::msr::IA32_VMX_MISC) } & 0x1f;
        let ticks = (RUNAWAY_TSC_TICKS >> rate).min(u64::from(u32::MAX));
        vmcs.write(guest::VMX_PREEMPTION_TIMER_VALUE, ticks);
    }
    Ok(())
}

/// Host state: where every VM exit of l1-hv's guests (L2 on vmcs01, L3 on vmcs02) lands.
pub fn write_host_state(vmcs: &mut impl Vmcs) {
    flat64::write_host_state(
        vmcs,
        &FlatHost {
            code_selector: gdt::CODE.bits(),
            data_selector: gdt::DATA.bits(),
            tr_selector: gdt::TSS.bits(),
            tr_base: gdt::tss_base(),
            gdt_base: gdt::gdt_base(),
            idt_base: idt::idt_base(),
            rip: l1_vmx::vmx_exit as *const () as u64,
        },
    );
    // SAFETY: reading EFER has no side effects.
    vmcs.write(host::IA32_EFER_FULL, unsafe { rdmsr(IA32_EFER) });
}

fn write_guest_state(vmcs: &mut impl Vmcs, caps: &Capabilities, setup: &GuestSetup) {
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
            cr3: BOOT_PML4,
            cr4: caps.fix_cr4(Cr4::CR4_ENABLE_PAE.bits() as u64),
            rip: setup.entry,
            rsp: RAM_SIZE,
            rflags: 0x2,
            code_selector: BOOT_CODE_SELECTOR,
            data_selector: BOOT_DATA_SELECTOR,
            tr_selector: BOOT_TSS_SELECTOR,
            tr_base: BOOT_TSS,
            gdtr: (BOOT_GDT, 5 * 8 - 1),
            idtr: (0, 0),
        },
    );
    vmcs.write(guest::IA32_EFER_FULL, EFER_LME | EFER_LMA);
}

/// Writes the boot GDT, TSS and page tables the initial guest state refers to.
pub fn write_boot_structures(ram: &mut [u8]) {
    let put = |ram: &mut [u8], at: u64, value: u64| {
        ram[at as usize..at as usize + 8].copy_from_slice(&value.to_le_bytes());
    };
    put(ram, BOOT_GDT + 0x08, 0x00af_9a00_0000_ffff); // code64, ring 0
    put(ram, BOOT_GDT + 0x10, 0x00cf_9200_0000_ffff); // data, ring 0
    // 64-bit busy TSS descriptor: limit 0x67, base BOOT_TSS (< 16 MiB), type 0xb, present.
    let tss = 0x67 | ((BOOT_TSS & 0xff_ffff) << 16) | (0x8b << 40);
    put(ram, BOOT_GDT + 0x18, tss);
    let (pml4, pdpt, pd) = (BOOT_PML4, BOOT_PML4 + 0x1000, BOOT_PML4 + 0x2000);
    put(ram, pml4, pdpt | 0x3);
    put(ram, pdpt, pd | 0x3);
    for entry in 0..512 {
        put(ram, pd + entry * 8, (entry << 21) | 0x83); // 2 MiB, present, writable
    }
}
