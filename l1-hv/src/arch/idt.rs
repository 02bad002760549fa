//! The host IDT: every exception l1-hv itself takes is reported in one clear block and ends the
//! run, except the NMI, which is a guest's. l1-hv runs with interrupts disabled, so only the 32
//! architectural vectors are installed.

use super::gdt;
use core::sync::atomic::{AtomicBool, Ordering};
use x86::bits64::segmentation::Descriptor64;
use x86::dtables::{lidt, DescriptorTablePointer};
use x86::irq::EXCEPTIONS;
use x86::segmentation::{BuildDescriptor, DescriptorBuilder, GateDescriptorBuilder};

core::arch::global_asm!(include_str!("isr.s"));

extern "C" {
    static isr_table: [u64; 32];
}

static mut IDT: [Descriptor64; 32] = [Descriptor64::NULL; 32];

/// What the entry stub pushed, followed by the CPU's interrupt frame (SDM 6.14.2).
#[repr(C)]
pub struct ExceptionFrame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Installs the host IDT.
pub fn init() {
    // SAFETY: runs once on the boot CPU; `isr_table` holds the stub addresses.
    unsafe {
        let idt = &raw mut IDT;
        for (vector, entry) in (*idt).iter_mut().enumerate() {
            let mut gate = <DescriptorBuilder as GateDescriptorBuilder<u64>>::interrupt_descriptor(
                gdt::CODE,
                isr_table[vector],
            )
            .present();
            gate = match vector as u8 {
                x86::irq::NONMASKABLE_INTERRUPT_VECTOR => gate.ist(gdt::IST_NMI),
                x86::irq::DOUBLE_FAULT_VECTOR => gate.ist(gdt::IST_DOUBLE_FAULT),
                x86::irq::MACHINE_CHECK_VECTOR => gate.ist(gdt::IST_MACHINE_CHECK),
                _ => gate,
            };
            *entry = gate.finish();
        }
        lidt(&DescriptorTablePointer::new_from_slice(&*idt));
    }
}

/// Base address of the IDT (the VMCS host-state IDTR base).
pub fn idt_base() -> u64 {
    &raw const IDT as u64
}

/// An NMI arrived while l1-hv ran (only kernel guests, which own the machine's devices, cause
/// them): it is the guest's, and is delivered to it at the next VM entry.
static NMI_FOR_GUEST: AtomicBool = AtomicBool::new(false);

#[no_mangle]
extern "C" fn host_nmi() {
    NMI_FOR_GUEST.store(true, Ordering::Relaxed);
}

/// Takes the NMI that arrived while l1-hv ran, if one did.
pub fn take_guest_nmi() -> bool {
    NMI_FOR_GUEST.swap(false, Ordering::Relaxed)
}

#[no_mangle]
extern "C" fn host_exception(frame: &ExceptionFrame) -> ! {
    let name = EXCEPTIONS
        .get(frame.vector as usize)
        .map_or("?", |e| e.mnemonic);
    // SAFETY: reading CR2 has no side effects.
    let cr2 = unsafe { x86::controlregs::cr2() };
    crate::println!(
        "l1-hv: HOST EXCEPTION {name} (vector {}) error_code={:#x} rip={:#x} cs={:#x} \
         rflags={:#x} rsp={:#x} ss={:#x} cr2={cr2:#x}",
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
    );
    crate::println!("l1-hv: verdict FAIL (host exception)");
    crate::power::exit(crate::power::ExitStatus::Fail)
}

/// Ends the NMI blocking an NMI-caused VM exit leaves in effect: after a VM exit caused by an
/// NMI the processor blocks NMIs until the next IRET, as if it had delivered the NMI (KVM runs
/// its NMI handler for the same reason), and l1-hv, which queues the NMI for the guest instead
/// of handling one, would otherwise never execute that IRET. VM entry does not clear the blocking
/// on Bochs 2.7 either (docs/kvm-unit-tests.md), so without this every later NMI of the guest
/// is lost. An IRET to the next instruction, on the current stack, with interrupts still off.
pub fn unblock_nmis() {
    // SAFETY: builds a 64-bit IRET frame for the instruction after it: SS, the RSP before the
    // pushes, RFLAGS, CS, RIP; it changes nothing but NMI blocking.
    unsafe {
        core::arch::asm!(
            "mov {ss:e}, ss",
            "mov {rsp}, rsp",
            "push {ss}",
            "push {rsp}",
            "pushfq",
            "mov {ss:e}, cs",
            "push {ss}",
            "lea {rsp}, [rip + 2f]",
            "push {rsp}",
            "iretq",
            "2:",
            ss = out(reg) _,
            rsp = out(reg) _,
        );
    }
}
