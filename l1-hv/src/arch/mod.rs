//! The host CPU's own tables (GDT with a TSS and IST stacks, IDT for host exceptions) and the
//! legacy interrupt controller.

pub mod gdt;
pub mod idt;
pub mod msr;

/// Masks every line of both 8259 PICs. l1-hv uses no device interrupts; left unmasked, the
/// BIOS's timer would make every guest exit with "external interrupt".
pub fn mask_legacy_pic() {
    // SAFETY: writes the interrupt-mask registers (OCW1) of the standard PIC ports.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}

/// Lets l1-hv execute XSETBV for its guests (CR4.OSXSAVE, where CPUID.1:ECX.XSAVE[26] says the
/// processor has it). l1-hv itself never uses extended state: XCR0 is the guest's.
pub fn enable_xsave() {
    if core::arch::x86_64::__cpuid(1).ecx & (1 << 26) != 0 {
        // SAFETY: setting OSXSAVE on a processor that supports XSAVE has no other effect.
        unsafe {
            x86::controlregs::cr4_write(
                x86::controlregs::cr4() | x86::controlregs::Cr4::CR4_ENABLE_OS_XSAVE,
            )
        };
    }
}
