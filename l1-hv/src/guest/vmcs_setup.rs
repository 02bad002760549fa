//! Initial VMCS contents (SDM 25 "VMCS organization", checked against SDM 27.2–27.3 "VM-entry
//! checks") for the two kinds of guest: l1-hv's test images, entered in 64-bit mode with
//! everything intercepted, and kernels, entered in 32-bit protected mode (unrestricted guest)
//! on a machine whose devices they own. Every control word is adjusted against the capability
//! MSRs; only the bits l1-hv needs are requested.

use super::config::{Boot, Forward};
use crate::arch::{gdt, idt};
use l1_vmx::capabilities::{preemption_timer_value, Capabilities, Unsupported};
use l1_vmx::flat64::{self, FlatGuest, FlatHost};
use l2_abi::{BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, BOOT_GDT, BOOT_PML4};
use nvmx::nested::{EFER_LMA, EFER_LME};
use shadow_vmcs::Vmcs;
use x86::controlregs::{Cr0, Cr4};
use x86::msr::{rdmsr, IA32_EFER, IA32_PAT};
use x86::vmx::vmcs::control::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{control, guest, host};

/// Guest-physical address of the boot TSS (inside the boot GDT's page).
pub const BOOT_TSS: u64 = BOOT_GDT + 0x100;
/// Boot GDT: null, code64 (0x08), data (0x10), 64-bit TSS (0x18, two slots).
const BOOT_TSS_SELECTOR: u16 = 0x18;
/// Instructions a test guest may run without an exit before l1-hv calls it runaway (Bochs
/// counts one TSC tick per instruction).
/// Kernels get no such guard: an idle or busy OS may rightly run that long without an exit.
const RUNAWAY_TSC_TICKS: u64 = 400_000_000;
/// IA32_PAT at power-up (SDM 13.12.4): what a kernel finds before it programs its own.
const PAT_POWER_UP: u64 = 0x0007_0406_0007_0406;
/// CR0 as a kernel finds it at its 32-bit entry: PE, ET (hard-wired to 1), NE (VMX operation
/// requires it, so the guest is given it rather than told a value it cannot have).
const KERNEL_CR0: u64 = (Cr0::CR0_PROTECTED_MODE.bits()
    | Cr0::CR0_EXTENSION_TYPE.bits()
    | Cr0::CR0_NUMERIC_ERROR.bits()) as u64;
/// The CR0 bits an unrestricted guest may clear although VMX fixes them to 1 (SDM 27.3.1.1).
const UNRESTRICTED_CR0: u64 =
    (Cr0::CR0_PROTECTED_MODE.bits() | Cr0::CR0_ENABLE_PAGING.bits()) as u64;

/// Where and how a guest starts.
#[derive(Clone, Copy, Debug)]
pub enum EntryState {
    /// An l1-hv test image: 64-bit mode at `rip` with RSP = RDI = `ram_size` (`l2-abi`).
    Long64 {
        /// Entry point.
        rip: u64,
        /// The guest's RAM size.
        ram_size: u64,
    },
    /// A kernel's boot protocol: flat 32-bit protected mode, paging off, interrupts off.
    Protected32(Protected32),
}

/// A 32-bit protected-mode entry (multiboot, Linux's 32-bit boot protocol).
#[derive(Clone, Copy, Debug)]
pub struct Protected32 {
    /// Entry point.
    pub eip: u32,
    /// GDT base and limit (the loader wrote the table into guest RAM).
    pub gdtr: (u32, u16),
    /// CS (flat 32-bit code in that GDT).
    pub code_selector: u16,
    /// DS, ES, FS, GS, SS (flat data in that GDT).
    pub data_selector: u16,
}

/// Per-guest values the VMCS needs.
pub struct GuestSetup {
    /// How the guest is booted, and so which controls it runs under.
    pub boot: Boot,
    /// What l1-hv forwards (kernel guests).
    pub forward: Forward,
    /// Where it starts.
    pub entry: EntryState,
    /// EPT pointer.
    pub eptp: u64,
    /// Virtual-processor identifier (non-zero).
    pub vpid: u16,
    /// l1-hv's exception bitmap for this guest.
    pub exception_bitmap: u32,
    /// Physical address of the MSR bitmap.
    pub msr_bitmap: u64,
    /// Physical addresses of I/O bitmaps A and B (kernels; test images exit on every I/O).
    pub io_bitmaps: Option<(u64, u64)>,
}

/// Instructions between console drains while l1-hv's console has output queued for a kernel
/// guest (about 100 bytes' time at 115200 baud on Bochs' 40 M instructions per second).
const DRAIN_TSC_TICKS: u64 = 400_000;

/// The VMX-preemption timer value for [`DRAIN_TSC_TICKS`], if the processor has the timer.
pub fn drain_timer(caps: &Capabilities) -> Option<u64> {
    caps.pin(0, PinbasedControls::VMX_PREEMPTION_TIMER.bits())
        .ok()
        .filter(|pin| pin & PinbasedControls::VMX_PREEMPTION_TIMER.bits() != 0)?;
    Some(preemption_timer_value(DRAIN_TSC_TICKS))
}

/// Writes controls, host state and the initial guest state into the current VMCS.
pub fn write_vmcs(
    vmcs: &mut impl Vmcs,
    caps: &Capabilities,
    setup: &GuestSetup,
) -> Result<(), Unsupported> {
    write_controls(vmcs, caps, setup)?;
    write_host_state(vmcs);
    match setup.entry {
        EntryState::Long64 { rip, ram_size } => write_long64_state(vmcs, caps, rip, ram_size),
        EntryState::Protected32(entry) => write_protected32_state(vmcs, caps, &entry),
    }
    Ok(())
}

fn write_controls(
    vmcs: &mut impl Vmcs,
    caps: &Capabilities,
    setup: &GuestSetup,
) -> Result<(), Unsupported> {
    let forward_all = setup.forward == Forward::All;
    let (pin, pin_optional, primary, secondary, exit, entry) = match setup.boot {
        Boot::Abi => (
            PinbasedControls::EXTERNAL_INTERRUPT_EXITING | PinbasedControls::NMI_EXITING,
            PinbasedControls::VMX_PREEMPTION_TIMER,
            PrimaryControls::HLT_EXITING | PrimaryControls::UNCOND_IO_EXITING,
            SecondaryControls::empty(),
            ExitControls::ACK_INTERRUPT_ON_EXIT,
            EntryControls::IA32E_MODE_GUEST,
        ),
        // The guest owns its devices: interrupts and NMIs go to it directly unless forwarded.
        Boot::Kernel if forward_all => (
            PinbasedControls::EXTERNAL_INTERRUPT_EXITING
                | PinbasedControls::NMI_EXITING
                | PinbasedControls::VIRTUAL_NMIS,
            PinbasedControls::empty(),
            PrimaryControls::HLT_EXITING | PrimaryControls::USE_IO_BITMAPS,
            SecondaryControls::UNRESTRICTED_GUEST,
            ExitControls::ACK_INTERRUPT_ON_EXIT,
            EntryControls::empty(),
        ),
        Boot::Kernel => (
            PinbasedControls::empty(),
            PinbasedControls::empty(),
            PrimaryControls::USE_IO_BITMAPS,
            SecondaryControls::UNRESTRICTED_GUEST,
            ExitControls::empty(),
            EntryControls::empty(),
        ),
    };
    let kernel = setup.boot == Boot::Kernel;
    let pin = caps.pin(pin.bits(), pin_optional.bits())?;
    let primary = caps.primary(
        (primary | PrimaryControls::USE_MSR_BITMAPS | PrimaryControls::SECONDARY_CONTROLS).bits(),
        0,
    )?;
    let secondary = caps.secondary(
        (secondary | SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits(),
        (SecondaryControls::ENABLE_RDTSCP
            | SecondaryControls::ENABLE_INVPCID
            | SecondaryControls::ENABLE_XSAVES_XRSTORS)
            .bits(),
    )?;
    // A kernel programs its own PAT: it is switched with the guest so l1-hv keeps its own.
    let pat = if kernel {
        (ExitControls::SAVE_IA32_PAT | ExitControls::LOAD_IA32_PAT).bits()
    } else {
        0
    };
    // DR7 and IA32_DEBUGCTL are the guest's across exits and entries (SDM 28.3.1.1, 27.3.2.1):
    // l1-hv never uses them, and a guest's breakpoints and BTF must survive every exit.
    let exit = caps.exit(
        (exit
            | ExitControls::SAVE_DEBUG_CONTROLS
            | ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::SAVE_IA32_EFER
            | ExitControls::LOAD_IA32_EFER)
            .bits(),
        pat,
    )?;
    let entry_pat = if exit & ExitControls::LOAD_IA32_PAT.bits() != 0 {
        EntryControls::LOAD_IA32_PAT.bits()
    } else {
        0
    };
    let entry = caps.entry(
        (entry | EntryControls::LOAD_DEBUG_CONTROLS | EntryControls::LOAD_IA32_EFER).bits(),
        entry_pat,
    )?;
    vmcs.write(control::PINBASED_EXEC_CONTROLS, pin.into());
    vmcs.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary.into());
    vmcs.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, secondary.into());
    vmcs.write(control::VMEXIT_CONTROLS, exit.into());
    vmcs.write(control::VMENTRY_CONTROLS, entry.into());
    vmcs.write(control::EXCEPTION_BITMAP, setup.exception_bitmap.into());
    vmcs.write(control::PAGE_FAULT_ERR_CODE_MASK, 0);
    vmcs.write(control::PAGE_FAULT_ERR_CODE_MATCH, 0);
    vmcs.write(control::MSR_BITMAPS_ADDR_FULL, setup.msr_bitmap);
    if let Some((a, b)) = setup.io_bitmaps {
        vmcs.write(control::IO_BITMAP_A_ADDR_FULL, a);
        vmcs.write(control::IO_BITMAP_B_ADDR_FULL, b);
    }
    vmcs.write(control::EPTP_FULL, setup.eptp);
    vmcs.write(control::VPID, setup.vpid.into());
    // CR4.VMXE must stay 1 in VMX operation, so l1-hv owns it and the guest reads its own
    // value in the read shadow (SDM 25.6.6); the same for the CR0 bits VMX fixes to 1 that the
    // guest may not clear (NE; PE and PG too for a guest without unrestricted guest).
    let cr0_owned = if kernel {
        caps.cr0_fixed.0 & !UNRESTRICTED_CR0
    } else {
        0
    };
    vmcs.write(control::CR0_GUEST_HOST_MASK, cr0_owned);
    vmcs.write(
        control::CR0_READ_SHADOW,
        if kernel { KERNEL_CR0 } else { 0 },
    );
    vmcs.write(
        control::CR4_GUEST_HOST_MASK,
        caps.cr4_fixed.0 | Cr4::CR4_ENABLE_VMX.bits() as u64,
    );
    vmcs.write(
        control::CR4_READ_SHADOW,
        if kernel {
            0
        } else {
            Cr4::CR4_ENABLE_PAE.bits() as u64
        },
    );
    if pin & PinbasedControls::VMX_PREEMPTION_TIMER.bits() != 0 {
        vmcs.write(
            guest::VMX_PREEMPTION_TIMER_VALUE,
            preemption_timer_value(RUNAWAY_TSC_TICKS),
        );
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
            rip: l1_vmx::vmx_exit_fast as *const () as u64,
        },
    );
    // SAFETY: reading EFER and PAT has no side effects.
    unsafe {
        vmcs.write(host::IA32_EFER_FULL, rdmsr(IA32_EFER));
        vmcs.write(host::IA32_PAT_FULL, rdmsr(IA32_PAT));
    }
}

fn write_long64_state(vmcs: &mut impl Vmcs, caps: &Capabilities, rip: u64, ram_size: u64) {
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
            rip,
            rsp: ram_size,
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

/// Flat 32-bit protected mode with paging off: the state multiboot (spec 3.2) and Linux's 32-bit
/// boot protocol promise. TR holds a busy 32-bit TSS because VM entry insists on one (SDM
/// 27.3.1.2) even though the guest has not loaded it; the guest's own LTR replaces it.
fn write_protected32_state(vmcs: &mut impl Vmcs, caps: &Capabilities, entry: &Protected32) {
    flat64::write_protected32_state(
        vmcs,
        &FlatGuest {
            cr0: (KERNEL_CR0 | (caps.cr0_fixed.0 & !UNRESTRICTED_CR0)) & caps.cr0_fixed.1,
            cr3: 0,
            cr4: caps.fix_cr4(0),
            rip: entry.eip.into(),
            rsp: 0,
            rflags: 0x2,
            code_selector: entry.code_selector,
            data_selector: entry.data_selector,
            tr_selector: 0,
            tr_base: 0,
            gdtr: (entry.gdtr.0.into(), entry.gdtr.1.into()),
            idtr: (0, 0),
        },
    );
    vmcs.write(guest::IA32_EFER_FULL, 0);
    vmcs.write(guest::IA32_PAT_FULL, PAT_POWER_UP);
}

/// Writes the boot GDT, TSS and page tables a test image's initial state refers to.
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
