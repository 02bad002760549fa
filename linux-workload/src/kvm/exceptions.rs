//! The exception VM's code (issue 14): a 64-bit L3 that installs its own IDT and raises, one
//! after the other, the exceptions whose delivery differs by whether KVM intercepts them
//! (KVM_SET_GUEST_DEBUG, `ept=0`) or not: #DE, #UD, #BP (INT3), #GP (a selector past the GDT's
//! limit), #PF (a write to an unmapped page), #DB (a single step through RFLAGS.TF), then HLT.
//! #AC is left out: it needs CPL 3, hence a TSS and user segments, for one more vector.
//!
//! Each handler writes what it observed to [`REPORT_AT`] (the vector, the error code, CR2, DR6,
//! the RIP the exception pushed, and the addresses the trigger put in R14 and R15: the faulting
//! instruction and the one after it) and signals [`REPORT_PORT`]; the VMM reads the record on
//! that port's exit. The handler then resumes at R15 with RFLAGS.TF clear.
//!
//! Then, if the VMM put an iteration count in R12, the code times a floor and #DE, #PF, #UD
//! and #DB that many times each (R13 set: the handlers resume without a report), writes each
//! TSC delta to [`SAMPLES_AT`] and signals [`BENCH_PORT`] with the event's number after each
//! loop; the VMM prints the figures ([`bench_line`], docs/benchmarks.md "KVM as a guest
//! hypervisor").
//!
//! The code is assembled with the workload and copied into the VM; it addresses itself only
//! RIP-relatively, so it runs wherever it is copied, and the VMM finds [`int3_address`] (the
//! INT3) by the distance between two of its labels.

use super::{Memory, CODE_AT};

/// Where the code builds its IDT (256 gates of 16 bytes).
const IDT_AT: u64 = 0x6000;
/// Where the handlers write their record.
pub const REPORT_AT: usize = 0x7000;
/// The port a handler writes once its record is complete.
pub const REPORT_PORT: u16 = 0x30;
/// The top of the code's stack (it grows down towards [`REPORT_AT`]).
const STACK_TOP: u64 = 0x9000;
/// The page the #PF trigger writes to: the VM's page tables map only the first 2 MiB.
const UNMAPPED: u64 = 0x40_0000;
/// The selector the #GP trigger loads: past the GDT's limit (three descriptors, see
/// `long_mode`), so MOV to DS faults with the selector as its error code (SDM 6.13).
const OUTSIDE_GDT: u16 = 0x18;
/// Where the timed loops write their samples (one u32 TSC delta each), above the stack.
const SAMPLES_AT: usize = 0xA000;
/// The most iterations a timed loop can record below the VM's 64 KiB.
pub const MAX_ITERATIONS: u64 = ((0x1_0000 - SAMPLES_AT) / 4) as u64;
/// The port a timed loop writes its event to once its samples are complete.
pub const BENCH_PORT: u16 = 0x31;

/// The events the timed loops time, in their order, by the number the code reports. Which ones
/// exit to KVM depends on its configuration: with EPT, KVM intercepts #UD (to emulate) and #DB
/// and lets L3 take #DE and #PF from the processor; with `ept=0`, #PF too (shadow paging).
#[derive(Clone, Copy)]
enum Timed {
    /// Nothing: the loop's own instructions, to subtract.
    Floor,
    /// DIV by 0.
    De,
    /// A write to the unmapped page.
    Pf,
    /// UD2.
    Ud,
    /// A single step through RFLAGS.TF.
    Db,
}

impl Timed {
    const ALL: [Self; 5] = [Self::Floor, Self::De, Self::Pf, Self::Ud, Self::Db];

    fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::De => "#DE",
            Self::Pf => "#PF",
            Self::Ud => "#UD",
            Self::Db => "#DB",
        }
    }
}

/// The figures of the timed loop that just reported `event` on [`BENCH_PORT`], as the line
/// the benchmark runners parse: `bench path=CONFIG/EVENT n= median= min= max=`, in TSC ticks
/// (instructions on Bochs) per iteration, the loop's own included.
pub fn bench_line(config: &str, event: u8, iterations: u64, memory: &Memory) -> String {
    let name = Timed::ALL
        .get(usize::from(event))
        .map_or("unexpected event", |e| e.name());
    let mut samples: Vec<u32> = (0..iterations as usize)
        .map(|i| memory.read_u32(SAMPLES_AT + 4 * i))
        .collect();
    samples.sort_unstable();
    let n = samples.len();
    let (median, min, max) = match (samples.get(n / 2), samples.first(), samples.last()) {
        (Some(median), Some(min), Some(max)) => (*median, *min, *max),
        _ => (0, 0, 0),
    };
    format!("bench path={config}/{name} n={n} median={median} min={min} max={max}")
}

core::arch::global_asm!(
    ".pushsection .text.l3_exceptions, \"ax\"",
    // A gate for `vector` to `handler`: a present 64-bit interrupt gate, DPL 0, code selector
    // 8, no IST (SDM 6.14.1). The handler's address is computed at run time: the code runs
    // where the VMM copied it.
    ".macro l3x_gate vector, handler",
    "    lea rax, [rip + \\handler]",
    "    mov edi, \\vector",
    "    call l3x_set_gate",
    ".endm",
    // Times the event at `body` (see l3x_time), reported to the VMM as `event`.
    ".macro l3x_timed event, body",
    "    lea rsi, [rip + \\body]",
    "    mov edi, \\event",
    "    call l3x_time",
    ".endm",
    // Loads R14 with the address of the instruction about to raise the exception and R15 with
    // the address the handler resumes at.
    ".macro l3x_expect at, after",
    "    lea r14, [rip + \\at]",
    "    lea r15, [rip + \\after]",
    ".endm",
    // Handler entries: one frame layout for all (vector on top of an error code), so the
    // vectors that push no error code (SDM Table 6-1) push a zero in its place.
    ".macro l3x_entry name, vector",
    "l3x_\\name:",
    "    push 0",
    "    push \\vector",
    "    jmp l3x_report",
    ".endm",
    ".macro l3x_entry_error_code name, vector",
    "l3x_\\name:",
    "    push \\vector",
    "    jmp l3x_report",
    ".endm",
    ".globl l3_exceptions_start",
    "l3_exceptions_start:",
    "    mov rsp, {stack_top}",
    "    xor r13d, r13d",
    "    l3x_gate 0, l3x_de",
    "    l3x_gate 1, l3x_db",
    "    l3x_gate 3, l3x_bp",
    "    l3x_gate 6, l3x_ud",
    "    l3x_gate 13, l3x_gp",
    "    l3x_gate 14, l3x_pf",
    // LIDT takes a 10-byte operand: the limit, then the base.
    "    sub rsp, 16",
    "    mov word ptr [rsp], 256 * 16 - 1",
    "    mov rax, {idt_at}",
    "    mov [rsp + 2], rax",
    "    lidt [rsp]",
    "    add rsp, 16",
    // #DE: 1 / 0.
    "    l3x_expect l3x_de_at, l3x_de_after",
    "    xor edx, edx",
    "    xor ecx, ecx",
    "    mov eax, 1",
    "l3x_de_at:",
    "    div ecx",
    "l3x_de_after:",
    // #UD.
    "    l3x_expect l3x_ud_at, l3x_ud_after",
    "l3x_ud_at:",
    "    ud2",
    "l3x_ud_after:",
    // #BP, a trap: it pushes the address after the INT3. Three NOPs follow, the instructions
    // the VMM single-steps when it debugs the VM (the stepped RIPs are then INT3 + 2, 3, 4).
    "    l3x_expect l3_exceptions_int3, l3x_bp_after",
    ".globl l3_exceptions_int3",
    "l3_exceptions_int3:",
    "    int3",
    "l3x_bp_after:",
    "    nop",
    "    nop",
    "    nop",
    // #GP(selector).
    "    mov ax, {outside_gdt}",
    "    l3x_expect l3x_gp_at, l3x_gp_after",
    "l3x_gp_at:",
    "    mov ds, ax",
    "l3x_gp_after:",
    // #PF: a write (error code bit 1) to a page not present (bit 0 clear), at CPL 0 (bit 2
    // clear), CR2 the address (SDM 6.15 "Interrupt 14").
    "    mov rax, {unmapped}",
    "    l3x_expect l3x_pf_at, l3x_pf_after",
    "l3x_pf_at:",
    "    mov byte ptr [rax], 1",
    "l3x_pf_after:",
    // #DB, single step: TF set by POPF takes effect after the instruction that follows POPF
    // (SDM 18.3.1.4), so the trap comes after the NOP, with DR6.BS set.
    "    l3x_expect l3x_db_at, l3x_db_after",
    "    pushfq",
    "    bts qword ptr [rsp], 8",
    "    popfq",
    "l3x_db_at:",
    "    nop",
    "l3x_db_after:",
    // The timed loops, if the VMM asked for them (R12 iterations, 0 for none): each handler
    // resumes at once while R13 is set, without a report.
    "    test r12, r12",
    "    jz l3x_timed_done",
    "    mov r13d, 1",
    "    l3x_timed {floor}, l3x_floor",
    "    l3x_timed {de}, l3x_de_body",
    "    l3x_timed {pf}, l3x_pf_body",
    "    l3x_timed {ud}, l3x_ud_body",
    "    l3x_timed {db}, l3x_db_body",
    "    xor r13d, r13d",
    "l3x_timed_done:",
    "    hlt",
    // One timed loop: R12 times the event at RSI (which ends at R15, by its exception's
    // handler or by a jump), each time's TSC delta to SAMPLES_AT; then EDI, the event, to the
    // VMM on BENCH_PORT, which reads the samples. Bochs' TSC counts one tick per instruction
    // (docs/benchmarks.md), LFENCE keeps RDTSC after what precedes it.
    "l3x_time:",
    "    xor r9d, r9d",
    "l3x_time_next:",
    "    lea r15, [rip + l3x_time_end]",
    "    lfence",
    "    rdtsc",
    "    mov r8d, eax",
    "    jmp rsi",
    "l3x_time_end:",
    "    lfence",
    "    rdtsc",
    "    sub eax, r8d",
    "    mov dword ptr [{samples_at} + r9 * 4], eax",
    "    inc r9",
    "    cmp r9, r12",
    "    jb l3x_time_next",
    "    mov eax, edi",
    "    out {bench_port}, al",
    "    ret",
    // The events: none (the loop's own cost), #DE, #PF, #UD, #DB as above.
    "l3x_floor:",
    "    jmp r15",
    "l3x_de_body:",
    "    xor edx, edx",
    "    xor ecx, ecx",
    "    mov eax, 1",
    "    div ecx",
    "l3x_pf_body:",
    "    mov rax, {unmapped}",
    "    mov byte ptr [rax], 1",
    "l3x_ud_body:",
    "    ud2",
    "l3x_db_body:",
    "    pushfq",
    "    bts qword ptr [rsp], 8",
    "    popfq",
    "    nop",
    // RDI = vector, RAX = handler address: fills the gate at IDT_AT + 16 * vector.
    "l3x_set_gate:",
    "    shl rdi, 4",
    "    add rdi, {idt_at}",
    "    mov word ptr [rdi], ax",
    "    mov word ptr [rdi + 2], 8",
    "    mov word ptr [rdi + 4], 0x8e00",
    "    shr rax, 16",
    "    mov word ptr [rdi + 6], ax",
    "    shr rax, 16",
    "    mov dword ptr [rdi + 8], eax",
    "    mov dword ptr [rdi + 12], 0",
    "    ret",
    "    l3x_entry de, 0",
    "    l3x_entry db, 1",
    "    l3x_entry bp, 3",
    "    l3x_entry ud, 6",
    "    l3x_entry_error_code gp, 13",
    "    l3x_entry_error_code pf, 14",
    // The record, in the order of `Report`'s fields; the frame: vector, error code, RIP, CS,
    // RFLAGS, RSP, SS (SDM 6.14.2).
    "l3x_report:",
    "    test r13, r13",
    "    jnz l3x_resume",
    "    mov edi, {report_at}",
    "    mov rax, [rsp]",
    "    mov [rdi], rax",
    "    mov rax, [rsp + 8]",
    "    mov [rdi + 8], rax",
    "    mov rax, cr2",
    "    mov [rdi + 16], rax",
    "    mov rax, dr6",
    "    mov [rdi + 24], rax",
    "    mov rax, [rsp + 16]",
    "    mov [rdi + 32], rax",
    "    mov [rdi + 40], r14",
    "    mov [rdi + 48], r15",
    "    out {report_port}, al",
    "l3x_resume:",
    // Resume after the trigger, without TF (RFLAGS bit 8) so the #DB does not repeat.
    "    mov [rsp + 16], r15",
    "    btr qword ptr [rsp + 32], 8",
    "    add rsp, 16",
    "    iretq",
    ".globl l3_exceptions_end",
    "l3_exceptions_end:",
    ".purgem l3x_gate",
    ".purgem l3x_expect",
    ".purgem l3x_timed",
    ".purgem l3x_entry",
    ".purgem l3x_entry_error_code",
    ".popsection",
    stack_top = const STACK_TOP,
    idt_at = const IDT_AT,
    report_at = const REPORT_AT,
    report_port = const REPORT_PORT,
    outside_gdt = const OUTSIDE_GDT,
    unmapped = const UNMAPPED,
    samples_at = const SAMPLES_AT,
    bench_port = const BENCH_PORT,
    floor = const Timed::Floor as u8,
    de = const Timed::De as u8,
    pf = const Timed::Pf as u8,
    ud = const Timed::Ud as u8,
    db = const Timed::Db as u8,
);

extern "C" {
    static l3_exceptions_start: u8;
    static l3_exceptions_int3: u8;
    static l3_exceptions_end: u8;
}

/// The code's bytes, to copy to [`CODE_AT`].
pub fn code() -> &'static [u8] {
    // SAFETY: both labels are in the section above, `end` after `start`; the bytes between
    // are the assembled code, never written.
    unsafe {
        let start = &raw const l3_exceptions_start;
        let end = &raw const l3_exceptions_end;
        std::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The guest address of the INT3.
pub fn int3_address() -> u64 {
    // SAFETY: two labels of the same section, as in `code`.
    let offset = unsafe {
        (&raw const l3_exceptions_int3).offset_from(&raw const l3_exceptions_start) as u64
    };
    CODE_AT + offset
}

/// A handler's record at [`REPORT_AT`].
struct Report {
    vector: u64,
    error_code: u64,
    cr2: u64,
    dr6: u64,
    rip: u64,
    at: u64,
    after: u64,
}

impl Report {
    fn read(memory: &Memory) -> Self {
        let field = |n: usize| memory.read_u64(REPORT_AT + 8 * n);
        Self {
            vector: field(0),
            error_code: field(1),
            cr2: field(2),
            dr6: field(3),
            rip: field(4),
            at: field(5),
            after: field(6),
        }
    }
}

/// What the handler of the exception just reported observed, as a line: the mnemonic, what
/// that exception defines (its error code, CR2 for #PF, DR6 for #DB) and whether it pushed the
/// faulting instruction's address (a fault) or the next one's (a trap, SDM 6.5).
pub fn describe_report(memory: &Memory) -> String {
    let r = Report::read(memory);
    let name = match r.vector {
        0 => "#DE",
        1 => "#DB",
        3 => "#BP",
        6 => "#UD",
        13 => "#GP",
        14 => "#PF",
        _ => "unexpected vector",
    };
    let detail = match r.vector {
        1 => format!(" dr6={:#x}", r.dr6),
        13 => format!(" error_code={:#x}", r.error_code),
        14 => format!(" error_code={:#x} cr2={:#x}", r.error_code, r.cr2),
        _ => String::new(),
    };
    let rip = if r.rip == r.at {
        "instruction".to_string()
    } else if r.rip == r.after {
        "after".to_string()
    } else {
        format!("{:#x}", r.rip)
    };
    format!("L3 {name} (vector {}){detail} rip={rip}", r.vector)
}

/// The exits the code takes when KVM delivers every exception to it: each handler's report,
/// then HLT. DR6 after a single step: BS (bit 14) and the bits that read as 1 (SDM 18.2.3).
pub const EXITS: &[&str] = &[
    "L3 #DE (vector 0) rip=instruction",
    "L3 #UD (vector 6) rip=instruction",
    "L3 #BP (vector 3) rip=after",
    "L3 #GP (vector 13) error_code=0x18 rip=instruction",
    "L3 #PF (vector 14) error_code=0x2 cr2=0x400000 rip=instruction",
    "L3 #DB (vector 1) dr6=0xffff4ff0 rip=after",
    "KVM_EXIT_HLT",
];

/// The exits when the VMM debugs the VM (software breakpoints): the INT3 exits to the VMM
/// instead of reaching L3's handler; the VMM then single-steps the three NOPs after it.
pub const EXITS_DEBUGGED: &[&str] = &[
    "L3 #DE (vector 0) rip=instruction",
    "L3 #UD (vector 6) rip=instruction",
    "KVM_EXIT_DEBUG #BP pc=int3",
    "KVM_EXIT_DEBUG #DB pc=int3+2",
    "KVM_EXIT_DEBUG #DB pc=int3+3",
    "KVM_EXIT_DEBUG #DB pc=int3+4",
    "L3 #GP (vector 13) error_code=0x18 rip=instruction",
    "L3 #PF (vector 14) error_code=0x2 cr2=0x400000 rip=instruction",
    "L3 #DB (vector 1) dr6=0xffff4ff0 rip=after",
    "KVM_EXIT_HLT",
];
