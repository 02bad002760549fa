//! The host CPU's own tables (GDT with a TSS and IST stacks, IDT for host exceptions) and the
//! legacy interrupt controller.

pub mod gdt;
pub mod idt;

/// Masks every line of both 8259 PICs. l1-hv uses no device interrupts; left unmasked, the
/// BIOS's timer would make every guest exit with "external interrupt".
pub fn mask_legacy_pic() {
    // SAFETY: writes the interrupt-mask registers (OCW1) of the standard PIC ports.
    unsafe {
        x86::io::outb(0x21, 0xff);
        x86::io::outb(0xa1, 0xff);
    }
}
