//! mb-contract: a multiboot1 kernel that checks the machine contract kvm-unit-tests' x86 images
//! rely on (docs/kvm-unit-tests.md), so CI guards it without the GPL suite: COM1 polled through
//! LSR.THRE, the multiboot command line, one environment module and the memory information, the
//! local APIC (base MSR, xAPIC registers, fixed and NMI self-IPIs, the one-shot timer), HLT woken
//! by the timer, single-step traps over instructions a hypervisor emulates, RF in a fault's frame,
//! the ports the suite touches, and the exit port 0xf4.
//!
//! It boots bare (GRUB `multiboot`/`module`) or under l1-hv (`boot=auto`), and prints the same
//! `PASS name` / `FAIL name: why` lines in both, then `SUMMARY: N tests, F unexpected failures`,
//! then exits through `outl code, 0xf4` (0 when every check passed). Bochs has no exit device
//! there, so a bare run then powers off through Bochs' shutdown port.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use x86::io::{inb, inl, outb, outl};
use x86::msr::{rdmsr, wrmsr, IA32_APIC_BASE, IA32_FEATURE_CONTROL};

core::arch::global_asm!(include_str!("entry.s"));

/// What the boot loader leaves in EAX (multiboot spec 3.2).
const BOOT_MAGIC: u32 = 0x2bad_b002;
/// Multiboot information flags (spec 3.3): mem_lower/mem_upper, cmdline, mods, mmap.
const INFO_MEMORY: u32 = 1 << 0;
const INFO_CMDLINE: u32 = 1 << 2;
const INFO_MODS: u32 = 1 << 3;
const INFO_MMAP: u32 = 1 << 6;
/// Memory-map type of RAM available to the OS.
const MMAP_AVAILABLE: u32 = 1;

const COM1: u16 = 0x3f8;
/// COM1 registers: line status (THRE, bit 5; TEMT, bit 6) and scratch.
const COM1_LSR: u16 = COM1 + 5;
const COM1_SCR: u16 = COM1 + 7;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;
/// QEMU's exit device (isa-debug-exit), which l1-hv emulates: status (code << 1) | 1.
const EXIT_PORT: u16 = 0xf4;
/// Bochs' shutdown port: writing "Shutdown" ends the emulator.
const BOCHS_SHUTDOWN: u16 = 0x8900;

/// IA32_APIC_BASE bits (SDM 11.4.4): BSP (8), global enable (11), base (35:12).
const APIC_BSP: u64 = 1 << 8;
const APIC_ENABLE: u64 = 1 << 11;
const APIC_DEFAULT_BASE: u64 = 0xfee0_0000;
/// xAPIC register offsets (SDM Table 11-1).
const APIC_ID: u64 = 0x20;
const APIC_VERSION: u64 = 0x30;
const APIC_TPR: u64 = 0x80;
const APIC_EOI: u64 = 0xb0;
const APIC_SPIV: u64 = 0xf0;
const APIC_ISR: u64 = 0x100;
const APIC_ICR_LOW: u64 = 0x300;
const APIC_ICR_HIGH: u64 = 0x310;
const APIC_LVT_TIMER: u64 = 0x320;
const APIC_TIMER_INITIAL: u64 = 0x380;
const APIC_TIMER_CURRENT: u64 = 0x390;
const APIC_TIMER_DIVIDE: u64 = 0x3e0;
/// SPIV: APIC software enable (8), spurious vector.
const SPIV_ENABLE: u32 = 1 << 8;
const SPURIOUS_VECTOR: u8 = 0xff;
/// ICR (SDM 11.6.1): delivery status (12, send pending), level assert (14), destination
/// shorthand self (19:18 = 01), NMI delivery mode (10:8 = 100).
const ICR_BUSY: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_SELF: u32 = 1 << 18;
const ICR_NMI: u32 = 4 << 8;
/// Divide configuration 1011: divide by 1.
const TIMER_DIVIDE_BY_1: u32 = 0xb;

/// The vectors this kernel programs.
const DEBUG_VECTOR: u8 = 1;
const NMI_VECTOR: u8 = 2;
const GP_VECTOR: u8 = 13;
const TIMER_VECTOR: u8 = 0x40;
const IPI_VECTOR: u8 = 0x41;

/// RFLAGS: TF (8), IF (9), RF (16).
const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_RF: u64 = 1 << 16;
/// DR6.BS: single-step (SDM 18.2.3); DR6's value with no condition recorded.
const DR6_BS: u64 = 1 << 14;
const DR6_CLEAR: u64 = 0xffff_0ff0;
/// CR4.VMXE, and a CR4 bit no processor this runs on defines (writing it raises #GP).
const CR4_VMXE: u64 = 1 << 13;
const CR4_RESERVED: u64 = 1 << 31;

/// Spin iterations after which an awaited event counts as lost (Bochs runs about 4M
/// instructions per emulated second; nested, far fewer reach the guest).
const SPIN_LIMIT: u64 = 50_000_000;

/// How many times each vector was delivered.
static DELIVERED: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
/// The last #DB: the RIP it returned to and DR6 as its handler read it.
static DEBUG_RIP: AtomicU64 = AtomicU64::new(0);
static DEBUG_DR6: AtomicU64 = AtomicU64::new(0);
/// Whether the last timer or IPI handler found its vector in service (ISR).
static IN_SERVICE: AtomicBool = AtomicBool::new(false);
/// Where an expected #GP resumes (0: none is expected); the RFLAGS its frame held.
static GP_RESUME: AtomicU64 = AtomicU64::new(0);
static GP_RFLAGS: AtomicU64 = AtomicU64::new(0);

/// The multiboot information structure (spec 3.3), the fields this kernel reads.
#[repr(C)]
struct BootInfo {
    flags: u32,
    mem_lower: u32,
    mem_upper: u32,
    boot_device: u32,
    cmdline: u32,
    mods_count: u32,
    mods_addr: u32,
    syms: [u32; 4],
    mmap_length: u32,
    mmap_addr: u32,
}

/// One module entry (spec 3.3).
#[repr(C)]
struct Module {
    start: u32,
    end: u32,
    string: u32,
    reserved: u32,
}

/// The interrupt frame `mb_trap_common` builds (entry.s), lowest address first.
#[repr(C)]
struct Frame {
    gprs: [u64; 15],
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The 16550 at COM1, written by polling LSR.THRE.
struct Com1;

impl core::fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            // SAFETY: COM1 is this kernel's console; reading LSR has no side effect it relies on.
            unsafe {
                while inb(COM1_LSR) & LSR_THRE == 0 {}
                outb(COM1, byte);
            }
        }
        Ok(())
    }
}

macro_rules! println {
    ($($arg:tt)*) => {{ let _ = writeln!(Com1, $($arg)*); }};
}

/// A failed check's reason.
type Check = Result<(), &'static str>;

/// Bytes of a NUL-terminated string at a physical (identity-mapped) address.
///
/// # Safety
/// `address` must point at a NUL-terminated string in mapped memory.
unsafe fn c_string(address: u32) -> &'static [u8] {
    let start = address as usize as *const u8;
    let mut len = 0;
    while *start.add(len) != 0 {
        len += 1;
    }
    core::slice::from_raw_parts(start, len)
}

/// The value of `key` in an environment of `KEY=VAL` lines.
fn env_value<'a>(env: &'a [u8], key: &str) -> Option<&'a [u8]> {
    env.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.strip_prefix(key.as_bytes())?.strip_prefix(b"=")
    })
}

fn apic_read(offset: u64) -> u32 {
    // SAFETY: the xAPIC page is identity-mapped uncached by entry.s; reads have no side effects.
    unsafe { core::ptr::read_volatile((APIC_DEFAULT_BASE + offset) as *const u32) }
}

fn apic_write(offset: u64, value: u32) {
    // SAFETY: as for `apic_read`; every write is an architecturally defined register value.
    unsafe { core::ptr::write_volatile((APIC_DEFAULT_BASE + offset) as *mut u32, value) }
}

fn in_service(vector: u8) -> bool {
    apic_read(APIC_ISR + u64::from(vector / 32) * 16) & (1 << (vector % 32)) != 0
}

fn delivered(vector: u8) -> u32 {
    DELIVERED[usize::from(vector)].load(SeqCst)
}

/// Spins until `vector` was delivered more than `before` times.
fn await_vector(vector: u8, before: u32) -> Check {
    for _ in 0..SPIN_LIMIT {
        if delivered(vector) > before {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err("not delivered")
}

/// Sends an IPI and waits for the ICR's delivery-status bit to clear.
fn send_ipi(destination: u32, low: u32) -> Check {
    apic_write(APIC_ICR_HIGH, destination << 24);
    apic_write(APIC_ICR_LOW, low);
    for _ in 0..SPIN_LIMIT {
        if apic_read(APIC_ICR_LOW) & ICR_BUSY == 0 {
            return Ok(());
        }
    }
    Err("ICR delivery status stays busy")
}

#[no_mangle]
extern "C" fn contract_trap(frame: &mut Frame) {
    let vector = frame.vector as u8;
    DELIVERED[usize::from(vector)].fetch_add(1, SeqCst);
    match vector {
        DEBUG_VECTOR => {
            // SAFETY: reading and resetting DR6 at CPL 0; nothing else uses the debug registers.
            unsafe {
                DEBUG_DR6.store(x86::debugregs::dr6().bits() as u64, SeqCst);
                core::arch::asm!("mov dr6, {}", in(reg) DR6_CLEAR);
            }
            DEBUG_RIP.store(frame.rip, SeqCst);
            // One step is enough: the instruction after the one under test runs untraced.
            frame.rflags &= !RFLAGS_TF;
        }
        GP_VECTOR if GP_RESUME.load(SeqCst) != 0 => {
            GP_RFLAGS.store(frame.rflags, SeqCst);
            frame.rip = GP_RESUME.swap(0, SeqCst);
        }
        NMI_VECTOR | SPURIOUS_VECTOR => {}
        TIMER_VECTOR | IPI_VECTOR => {
            IN_SERVICE.store(in_service(vector), SeqCst);
            apic_write(APIC_EOI, 0);
        }
        _ => {
            println!(
                "FAIL unexpected-exception: vector {} error code {:#x} at rip {:#x}",
                vector, frame.error_code, frame.rip
            );
            exit(false);
        }
    }
}

/// An IDT gate (SDM 6.14.1): a 64-bit interrupt gate to `handler` in the 0x08 code segment.
fn gate(handler: u64) -> [u64; 2] {
    let low = (handler & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((handler >> 16) & 0xffff) << 48;
    [low, handler >> 32]
}

static mut IDT: [[u64; 2]; 256] = [[0; 2]; 256];

fn load_idt() {
    extern "C" {
        static mb_vector_stubs: u8;
    }
    // SAFETY: the stubs are 16 bytes apart (entry.s); the IDT is written once, before any
    // interrupt can arrive, and stays loaded for the rest of the run.
    unsafe {
        let stubs = core::ptr::addr_of!(mb_vector_stubs) as u64;
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (vector, entry) in idt.iter_mut().enumerate() {
            *entry = gate(stubs + 16 * vector as u64);
        }
        let pointer: [u16; 5] = {
            let base = idt.as_ptr() as u64;
            [
                (256 * 16 - 1) as u16,
                base as u16,
                (base >> 16) as u16,
                (base >> 32) as u16,
                (base >> 48) as u16,
            ]
        };
        core::arch::asm!("lidt [{}]", in(reg) pointer.as_ptr());
    }
}

/// Runs `instruction` (its operands in EAX, ECX, EDX) with RFLAGS.TF set by the POPFQ before
/// it: the single-step trap comes after `instruction` (SDM 18.3.1.4), so #DB must return to
/// the address right after it with DR6.BS set.
macro_rules! single_step {
    ($instruction:literal, $eax:expr, $ecx:expr, $edx:expr) => {{
        let before = delivered(DEBUG_VECTOR);
        let after: u64;
        // SAFETY: the instruction under test is harmless at CPL 0 with these operands; RBX is
        // saved around it (CPUID writes it); the #DB handler clears TF in the frame.
        unsafe {
            core::arch::asm!(
                "lea {after}, [rip + 3f]",
                "push rbx",
                "pushfq",
                "or qword ptr [rsp], 0x100",
                "popfq",
                $instruction,
                "3:",
                "pop rbx",
                after = out(reg) after,
                inout("eax") $eax => _,
                inout("ecx") $ecx => _,
                inout("edx") $edx => _,
            );
        }
        single_step_result(before, after)
    }};
}

fn single_step_result(before: u32, after: u64) -> Check {
    match delivered(DEBUG_VECTOR) - before {
        0 => return Err("no #DB"),
        1 => {}
        _ => return Err("more than one #DB"),
    }
    if DEBUG_RIP.load(SeqCst) != after {
        return Err("#DB not right after the instruction");
    }
    if DEBUG_DR6.load(SeqCst) & DR6_BS == 0 {
        return Err("DR6.BS clear");
    }
    Ok(())
}

fn check_memory(info: &BootInfo) -> Check {
    if info.flags & INFO_MEMORY == 0 || info.flags & INFO_MMAP == 0 {
        return Err("no mem_upper or no memory map");
    }
    // kvm-unit-tests wants at least 128 MiB; anything from 64 MiB up runs this kernel.
    if info.mem_upper < 64 * 1024 {
        return Err("mem_upper below 64 MiB");
    }
    let upper_end = (1 << 20) + u64::from(info.mem_upper) * 1024;
    let mut at = u64::from(info.mmap_addr);
    let end = at + u64::from(info.mmap_length);
    while at < end {
        // SAFETY: the loader's memory map: entries of `size` bytes after the size field.
        let (size, base, length, kind) = unsafe {
            let p = at as *const u8;
            (
                core::ptr::read_unaligned(p as *const u32),
                core::ptr::read_unaligned(p.add(4) as *const u64),
                core::ptr::read_unaligned(p.add(12) as *const u64),
                core::ptr::read_unaligned(p.add(20) as *const u32),
            )
        };
        if kind == MMAP_AVAILABLE && base <= 1 << 20 && base + length >= upper_end {
            return Ok(());
        }
        at += u64::from(size) + 4;
    }
    Err("no available memory-map entry covers mem_upper")
}

fn check_apic_base() -> Check {
    // SAFETY: IA32_APIC_BASE exists on every processor with a local APIC.
    let base = unsafe { rdmsr(IA32_APIC_BASE) };
    if base & APIC_ENABLE == 0 || base & APIC_BSP == 0 {
        return Err("APIC disabled or not the BSP");
    }
    if base & 0xf_ffff_f000 != APIC_DEFAULT_BASE {
        return Err("xAPIC page not at 0xfee00000");
    }
    Ok(())
}

fn check_apic_id() -> Check {
    let cpuid = core::arch::x86_64::__cpuid(1);
    match apic_read(APIC_ID) >> 24 == cpuid.ebx >> 24 {
        true => Ok(()),
        false => Err("xAPIC ID differs from CPUID.1:EBX[31:24]"),
    }
}

fn check_apic_version() -> Check {
    let version = apic_read(APIC_VERSION);
    // Integrated APICs report 0x10-0x15 (SDM 11.4.8); at least the five LVT entries up to LINT1.
    if !(0x10..=0x15).contains(&(version & 0xff)) || (version >> 16) & 0xff < 4 {
        return Err("not an integrated xAPIC version");
    }
    Ok(())
}

fn check_spiv_tpr() -> Check {
    apic_write(APIC_SPIV, SPIV_ENABLE | u32::from(SPURIOUS_VECTOR));
    if apic_read(APIC_SPIV) & 0x1ff != SPIV_ENABLE | u32::from(SPURIOUS_VECTOR) {
        return Err("SPIV does not keep enable and vector");
    }
    for tpr in [0x20, 0] {
        apic_write(APIC_TPR, tpr);
        if apic_read(APIC_TPR) & 0xff != tpr {
            return Err("TPR does not read back");
        }
    }
    Ok(())
}

fn check_fixed_self_ipi() -> Check {
    let before = delivered(IPI_VECTOR);
    IN_SERVICE.store(false, SeqCst);
    // SAFETY: the IDT is loaded and the handler EOIs.
    unsafe { x86::irq::enable() };
    let sent = send_ipi(0, ICR_SELF | u32::from(IPI_VECTOR))
        .and_then(|()| await_vector(IPI_VECTOR, before));
    // SAFETY: back to the interrupts-off state every check starts from.
    unsafe { x86::irq::disable() };
    sent?;
    if !IN_SERVICE.load(SeqCst) {
        return Err("vector not in ISR during its handler");
    }
    if in_service(IPI_VECTOR) {
        return Err("vector still in ISR after EOI");
    }
    Ok(())
}

fn check_nmi_self_ipi() -> Check {
    let before = delivered(NMI_VECTOR);
    let id = apic_read(APIC_ID) >> 24;
    // NMI to this CPU by its ID: the self shorthand is for fixed delivery only (SDM 11.6.1).
    send_ipi(id, ICR_NMI | ICR_ASSERT)?;
    await_vector(NMI_VECTOR, before)
}

/// Arms the one-shot timer for `count` bus clocks.
fn arm_timer(count: u32) {
    apic_write(APIC_TIMER_DIVIDE, TIMER_DIVIDE_BY_1);
    apic_write(APIC_LVT_TIMER, u32::from(TIMER_VECTOR));
    apic_write(APIC_TIMER_INITIAL, count);
}

fn check_timer_one_shot() -> Check {
    let before = delivered(TIMER_VECTOR);
    arm_timer(20_000);
    // SAFETY: the IDT is loaded and the handler EOIs.
    unsafe { x86::irq::enable() };
    let fired = await_vector(TIMER_VECTOR, before);
    // SAFETY: back to interrupts off.
    unsafe { x86::irq::disable() };
    fired?;
    if !IN_SERVICE.load(SeqCst) {
        return Err("timer vector not in ISR during its handler");
    }
    if apic_read(APIC_TIMER_CURRENT) != 0 {
        return Err("one-shot current count not 0 after firing");
    }
    if delivered(TIMER_VECTOR) != before + 1 {
        return Err("one-shot timer fired more than once");
    }
    Ok(())
}

fn check_hlt_wake() -> Check {
    let before = delivered(TIMER_VECTOR);
    arm_timer(200_000);
    // SAFETY: STI's interrupt shadow covers HLT, so the timer cannot fire before the halt.
    unsafe { core::arch::asm!("sti", "hlt", "cli") };
    match delivered(TIMER_VECTOR) > before {
        true => Ok(()),
        false => Err("HLT returned without the timer interrupt"),
    }
}

/// Clears the APIC's global enable and sets it again, as kvm-unit-tests' `reset_apic` does at
/// every test's start: xAPIC mode must come back (SDM 11.12.5, Figure 11-27: disabled to xAPIC
/// by writing 10b to bits 11:10) with the APIC's registers reachable. Bochs 2.7 ignores the
/// second write (its erratum, docs/kvm-unit-tests.md), so this runs after every other APIC check.
fn check_apic_reenable() -> Check {
    let version = apic_read(APIC_VERSION);
    // SAFETY: the APIC is idle (interrupts off, timer expired); it is enabled again below.
    unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        wrmsr(IA32_APIC_BASE, base & !APIC_ENABLE);
        if rdmsr(IA32_APIC_BASE) & APIC_ENABLE != 0 {
            return Err("global enable does not clear");
        }
        wrmsr(IA32_APIC_BASE, base);
        if rdmsr(IA32_APIC_BASE) != base {
            return Err("IA32_APIC_BASE not enabled again");
        }
    }
    apic_write(APIC_SPIV, SPIV_ENABLE | u32::from(SPURIOUS_VECTOR));
    match apic_read(APIC_VERSION) == version {
        true => Ok(()),
        false => Err("xAPIC registers unreachable after re-enabling"),
    }
}

/// A MOV to CR4 that sets a reserved bit faults (#GP, SDM 2.5); CR4.VMXE in the same value
/// makes a hypervisor that owns VMXE emulate it. A fault's frame has RF set (SDM 18.3.1.1: the
/// processor sets RF in the RFLAGS image of every fault-class exception but instruction
/// breakpoints), so that a handler's IRET does not re-trigger an instruction breakpoint.
fn check_rf_in_fault_frame() -> Check {
    let before = delivered(GP_VECTOR);
    // SAFETY: the write faults (resuming at 3:), so CR4 never changes.
    unsafe {
        core::arch::asm!(
            "lea {resume}, [rip + 3f]",
            "mov [{slot}], {resume}",
            "mov {value}, cr4",
            "or {value}, {bits}",
            "mov cr4, {value}",
            "3:",
            resume = out(reg) _,
            value = out(reg) _,
            slot = in(reg) GP_RESUME.as_ptr(),
            bits = in(reg) CR4_VMXE | CR4_RESERVED,
        );
    }
    if delivered(GP_VECTOR) != before + 1 {
        return Err("no #GP");
    }
    match GP_RFLAGS.load(SeqCst) & RFLAGS_RF {
        0 => Err("RF clear in the #GP frame"),
        _ => Ok(()),
    }
}

/// Masks both 8259s, as kvm-unit-tests' setup does: their IRQ 0-7 would arrive on the vectors
/// of exceptions 8-15 where the BIOS left them. Port 0x80 (POST codes) must be accepted too.
fn check_ports() -> Check {
    // SAFETY: masking every legacy IRQ; writing a POST code.
    unsafe {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
        outb(0x80, 0);
        match (inb(0x21), inb(0xa1)) {
            (0xff, 0xff) => Ok(()),
            _ => Err("8259 masks do not read back"),
        }
    }
}

fn check_absent_port() -> Check {
    // SAFETY: reading the exit port has no effect (it is write-only where it exists).
    match unsafe { inl(EXIT_PORT) } {
        u32::MAX => Ok(()),
        _ => Err("port 0xf4 does not read all ones"),
    }
}

fn check_scratch_step() -> Check {
    single_step!("out dx, al", 0x5au32, 0u32, u32::from(COM1_SCR))?;
    // SAFETY: the scratch register has no function.
    match unsafe { inb(COM1_SCR) } {
        0x5a => Ok(()),
        _ => Err("COM1 scratch register lost the byte"),
    }
}

/// Ends the run: the exit port (status (code << 1) | 1), then Bochs' shutdown port for a
/// machine without an exit device.
fn exit(pass: bool) -> ! {
    // SAFETY: the run is over; both ports only end it. LSR.TEMT first: every byte has left the
    // UART, so ending the machine loses none of the last line.
    unsafe {
        while inb(COM1_LSR) & LSR_TEMT == 0 {}
        outl(EXIT_PORT, u32::from(!pass));
        for byte in b"Shutdown" {
            outb(BOCHS_SHUTDOWN, *byte);
        }
    }
    loop {
        // SAFETY: nothing is left to do.
        unsafe { core::arch::asm!("cli; hlt") };
    }
}

#[no_mangle]
extern "C" fn contract_main(magic: u32, info: u32) -> ! {
    load_idt();
    // SAFETY: the loader passed the information structure's address in EBX.
    let info = unsafe { &*(info as usize as *const BootInfo) };
    let (mut tests, mut failures) = (0, 0);
    let mut report = |name: &str, check: Check| {
        tests += 1;
        match check {
            Ok(()) => println!("PASS {name}"),
            Err(why) => {
                failures += 1;
                println!("FAIL {name}: {why}");
            }
        }
    };
    report("ports-pic-post", check_ports());
    report(
        "boot-magic",
        (magic == BOOT_MAGIC)
            .then_some(())
            .ok_or("EAX is not 0x2badb002"),
    );
    // The environment: exactly one module of KEY=VAL lines.
    let env: &[u8] = match (info.flags & INFO_MODS != 0, info.mods_count) {
        (true, 1) => {
            // SAFETY: the module list and the module lie in memory the loader filled.
            unsafe {
                let module = &*(info.mods_addr as usize as *const Module);
                core::slice::from_raw_parts(
                    module.start as usize as *const u8,
                    module.end.saturating_sub(module.start) as usize,
                )
            }
        }
        _ => &[],
    };
    report(
        "env-module",
        env_value(env, "NR_CPUS")
            .map(|_| ())
            .ok_or("no module with NR_CPUS="),
    );
    // argv[0] is the image's name (its path under GRUB); the rest must be EXPECT_ARGS.
    let argv_ok = info.flags & INFO_CMDLINE != 0 && {
        // SAFETY: the loader's NUL-terminated command line.
        let cmdline = unsafe { c_string(info.cmdline) };
        let mut words = cmdline.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let expected = env_value(env, "EXPECT_ARGS").unwrap_or(b"");
        let mut wanted = expected.split(|&b| b == b' ').filter(|w| !w.is_empty());
        words.next().is_some() && words.eq(&mut wanted)
    };
    report(
        "cmdline-argv",
        argv_ok.then_some(()).ok_or("argv[1..] is not EXPECT_ARGS"),
    );
    report("memory-map", check_memory(info));
    report("apic-base", check_apic_base());
    report("apic-id", check_apic_id());
    report("apic-version", check_apic_version());
    report("apic-spiv-tpr", check_spiv_tpr());
    report("self-ipi-fixed", check_fixed_self_ipi());
    report("self-ipi-nmi", check_nmi_self_ipi());
    report("apic-timer-oneshot", check_timer_one_shot());
    report("hlt-wake", check_hlt_wake());
    report("apic-reenable", check_apic_reenable());
    report("single-step-cpuid", single_step!("cpuid", 0u32, 0u32, 0u32));
    report(
        "single-step-rdmsr",
        single_step!("rdmsr", 0u32, IA32_FEATURE_CONTROL, 0u32),
    );
    report("single-step-out", check_scratch_step());
    report("rf-in-fault-frame", check_rf_in_fault_frame());
    report("absent-port-all-ones", check_absent_port());
    println!("SUMMARY: {tests} tests, {failures} unexpected failures");
    exit(failures == 0)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    println!("FAIL panic");
    exit(false)
}
