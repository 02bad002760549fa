//! matrix-l2: the system matrix's transparency mode (docs/matrix.md, "System matrix"). The
//! matrix payload as a plain L2 guest of l1-hv: for every (action, world) pair of
//! `matrix_scenarios::cases()`, a fresh world, entered by loading its CR3, GDT, TR and IDT here
//! (as ghv's VM entry does for L3), and one line with what the payload's handler received.
//! Whatever l1-hv intercepts (`exceptions=` of the module), the guest must see exactly the
//! delivery of an unintercepted CPU.
//!
//! A triple fault ends a guest run, so the pairs of `TRIPLE_FAULT_CASES` are skipped unless
//! test-matrix patched [`SELECT`] in this image's copy to one pair's index: the run then makes
//! only that pair, and l1-hv reports the triple fault.
//!
//! Lines (through l1-hv's `Write`): `mx N`, then `mx I d VECTOR ERROR CR2` per pair run, then
//! `mx end`; `Done(0)` ends the run.
#![no_std]
#![no_main]

/// The payload's report (payload.s' MX_REPORT): back to `mx_l2_enter`'s caller. It runs on
/// the payload's page tables, which map only the payload and its world, so it first switches
/// to l1-hv's boot tables (`l2_abi::BOOT_PML4`, 0x1000, which this guest never replaces; they
/// identity-map all of its RAM), then jumps to the rest of the switch.
macro_rules! report_asm {
    () => {
        ".macro MX_REPORT\n mov eax, 0x1000\n mov cr3, rax\n jmp mx_l2_return\n.endm\n"
    };
}
const _: () = assert!(
    l2_abi::BOOT_PML4 == 0x1000,
    "report_asm! names the boot PML4"
);

// The exit half of `Observed` and the VMCS-only constants are matrix-ghv's.
#[allow(dead_code)]
mod report;
#[allow(dead_code)]
mod world;

use core::fmt::Write as _;
use l2_guests::hypercall::{done, write};
use matrix_scenarios::{cases, is_triple_fault_case, selectors};
use report::Observed;
use world::World;

core::arch::global_asm!(include_str!("l2_switch.s"), DATA = const selectors::DATA, TSS = const selectors::TSS);

/// The pair a patched copy runs; test-matrix finds it by its magic and writes `index`.
#[repr(C)]
struct Select {
    magic: [u8; 12],
    index: u32,
}

/// `index` = `u32::MAX`: every pair but the triple-fault ones.
#[used]
static SELECT: Select = Select {
    magic: *b"mx-select-v1",
    index: u32::MAX,
};

static mut WORLD: World = World::new();

extern "C" {
    /// Enters the payload at `rip` on `world` and returns what its handler reported
    /// (vector, error code, CR2), as ghv's VM entry and the payload's VMCALL would.
    fn mx_l2_enter(
        cr3: u64,
        gdtr: *const Pointer,
        idtr: *const Pointer,
        rip: u64,
        rsp: u64,
        rdi: u64,
        out: *mut [u64; 3],
    );
}

/// An LGDT/LIDT operand.
#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// One line of at most l1-hv's `Write` length.
struct Line {
    text: [u8; 128],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self
            .text
            .get_mut(self.len..self.len + s.len())
            .ok_or(core::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

fn say(args: core::fmt::Arguments) {
    let mut line = Line {
        text: [0; 128],
        len: 0,
    };
    let _ = line.write_fmt(args);
    write(core::str::from_utf8(&line.text[..line.len]).unwrap_or("mx: bad line"));
}

#[no_mangle]
extern "C" fn guest_main() -> ! {
    // SAFETY: a volatile read of a static test-matrix may have patched in the image file.
    let select = unsafe { core::ptr::read_volatile(&raw const SELECT.index) };
    // SAFETY: single-threaded; the world is only used here.
    let world = unsafe { &mut *core::ptr::addr_of_mut!(WORLD) };
    // EFER.NXE, as ghv gives L3 (l1-hv emulates the WRMSR).
    // SAFETY: the guest's own tables set no XD bit.
    unsafe {
        x86::msr::wrmsr(
            x86::msr::IA32_EFER,
            x86::msr::rdmsr(x86::msr::IA32_EFER) | nvmx::nested::EFER_NXE,
        )
    };
    let chosen = |index: usize, case| match select {
        u32::MAX => !is_triple_fault_case(case),
        only => index == only as usize,
    };
    say(format_args!(
        "mx {}",
        cases().enumerate().filter(|&(i, c)| chosen(i, c)).count()
    ));
    for (index, (action, env)) in cases().enumerate() {
        if !chosen(index, (action, env)) {
            continue;
        }
        world.build(env);
        let (gdt_base, gdt_limit) = world.gdtr();
        let (idt_base, idt_limit) = world.idtr();
        let gdtr = Pointer {
            limit: gdt_limit as u16,
            base: gdt_base,
        };
        let idtr = Pointer {
            limit: idt_limit as u16,
            base: idt_base,
        };
        let mut out = [0u64; 3];
        // SAFETY: CR0 as ghv gives L3 (the `nm` actions set TS, which must not stay); the
        // world was just built and maps the payload and this stack's memory.
        unsafe {
            x86::controlregs::cr0_write(x86::controlregs::Cr0::from_bits_truncate(
                world::CR0 as usize,
            ));
            mx_l2_enter(
                world.cr3(),
                &gdtr,
                &idtr,
                world::entry(action),
                world.rsp(env),
                world.user_stack_top(),
                &mut out,
            );
        }
        let [vector, error_code, cr2] = out;
        say(format_args!(
            "mx {index} {}",
            Observed::Delivered {
                vector,
                error_code,
                cr2
            }
        ));
    }
    say(format_args!("mx end"));
    done(0)
}
