// The L3 payload: one entry per action, and the exception handlers. It runs in 64-bit mode at
// CPL 0 with RSI = a page L3's own page tables leave unmapped and RDX = L3's IDT base. Every run
// ends in exactly one VMCALL with RAX = {DONE}: RDI = the vector L3's handler received and
// RSI = its error code ({NONE} for either when there was none), RDX = CR2 as the handler read it.
// ghv maps these pages (and nothing else of its image) into L3, so the code stays within them.

.section .text.l3, "ax"
.balign 4096
.global l3_code_start
l3_code_start:

.global l3_ud2
l3_ud2:
    ud2

.global l3_divide_by_zero
l3_divide_by_zero:
    xor edx, edx
    xor ecx, ecx
    mov eax, 1
    div ecx
    jmp l3_completed

.global l3_int3
l3_int3:
    int3
    jmp l3_completed

// INTO (opcode 0xCE) is invalid in 64-bit mode: #UD, never #OF (SDM Vol. 2, INTO).
.global l3_into
l3_into:
    .byte 0xce
    jmp l3_completed

.global l3_read_non_canonical
l3_read_non_canonical:
    movabs rax, 0x8000000000000000
    mov rax, [rax]
    jmp l3_completed

.global l3_read_unmapped
l3_read_unmapped:
    mov rax, [rsi]
    jmp l3_completed

// The exception's frame is pushed onto the unmapped page: #PF during delivery (SDM 6.15).
.global l3_ud2_on_unmapped_stack
l3_ud2_on_unmapped_stack:
    lea rsp, [rsi + 4096]
    ud2

.global l3_int3_on_unmapped_stack
l3_int3_on_unmapped_stack:
    lea rsp, [rsi + 4096]
    int3
    jmp l3_completed

// Clears the P bit of IDT gate 0 (bit 47 of its low quadword), then divides by zero: #DE finds
// a not-present gate, #NP(0x3 = vector 0, IDT, EXT) is contributory during a contributory
// exception, so #DF (SDM 6.15, Table 6-5).
.global l3_divide_by_zero_absent_gate
l3_divide_by_zero_absent_gate:
    and byte ptr [rdx + 5], 0x7f
    jmp l3_divide_by_zero

.global l3_cpuid
l3_cpuid:
    mov eax, 0x40000000
    xor ecx, ecx
    cpuid
    jmp l3_completed

.global l3_hlt
l3_hlt:
    hlt
    jmp l3_completed

.global l3_out
l3_out:
    mov al, 0x42
    out 0x80, al
    jmp l3_completed

.global l3_vmcall_other
l3_vmcall_other:
    mov eax, {OTHER}
    vmcall
    jmp l3_completed

l3_completed:
    mov rdi, {NONE}
    mov rsi, {NONE}
    xor edx, edx
    jmp l3_report

// Exception handlers: push (error code or NONE, vector) and report.
.macro L3_STUB_NOERR vector
l3_isr_\vector:
    push {NONE}
    push \vector
    jmp l3_isr_common
.endm
.macro L3_STUB_ERR vector
l3_isr_\vector:
    push \vector
    jmp l3_isr_common
.endm

// SDM Table 6-1: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX push an error code.
.irp vector, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
L3_STUB_NOERR \vector
.endr
.irp vector, 8,10,11,12,13,14,17,21,29,30
L3_STUB_ERR \vector
.endr

l3_isr_common:
    pop rdi
    pop rsi
    mov rdx, cr2
l3_report:
    mov eax, {DONE}
    vmcall
    ud2                             // ghv never resumes a finished run

// ghv-bench's payloads (bench.rs; unused by ghv's scenarios). Entered with RSI = the unmapped
// page, RDX = L3's IDT base, RDI = a u32 array for the deltas, RCX = iterations. Each iteration
// times one region `lfence; rdtsc; ...; lfence; rdtsc` (low halves: a delta is far below 2^32)
// and stores the delta; the run ends with the usual report, "completed without exception".
.global l3_bench_floor
l3_bench_floor:
1:  lfence
    rdtsc
    mov r8d, eax
    lfence
    rdtsc
    sub eax, r8d
    mov [rdi], eax
    add rdi, 4
    dec rcx
    jnz 1b
    jmp l3_completed

// The region is one read of the unmapped page. Gate 14 (IST1) is first pointed at
// l3_bench_pf_handler, which resumes after the read: every iteration faults and the handler
// fixes nothing, whether ghv intercepts the #PF (and re-injects it) or the CPU delivers it.
.global l3_bench_pf
l3_bench_pf:
    lea rax, [rip + l3_bench_pf_handler]
    mov [rdx + 14 * 16], ax         // offset 15:0
    shr rax, 16
    mov [rdx + 14 * 16 + 6], ax     // offset 31:16
    shr rax, 16
    mov [rdx + 14 * 16 + 8], eax    // offset 63:32
1:  lfence
    rdtsc
    mov r8d, eax
    mov r9, [rsi]
l3_bench_pf_resume:
    lfence
    rdtsc
    sub eax, r8d
    mov [rdi], eax
    add rdi, 4
    dec rcx
    jnz 1b
    jmp l3_completed

l3_bench_pf_handler:
    add rsp, 8                      // the error code
    lea r11, [rip + l3_bench_pf_resume]
    mov [rsp], r11                  // return RIP: after the read
    iretq

.balign 4096
.global l3_code_end
l3_code_end:

.section .rodata
.balign 8
.global l3_isr_table
l3_isr_table:
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad l3_isr_\vector
.endr
