// The system matrix's payload (matrix-scenarios' actions): one entry per action, `mx_` + the
// action's name, and the exception handlers. It runs in 64-bit mode at CPL 0 on the world the
// guest built for the scenario (world.rs), with RDI = the top of the user stack. Every run ends
// in MX_REPORT (defined by the including image) with RDI = the vector the handler received,
// RSI = its error code ({NONE} when it pushed none), RDX = CR2 as the handler read it; a run
// that raised nothing reports vector {COMPLETED} through the DPL 3 gate of that vector.
// Addresses are matrix-scenarios' fixed window addresses.

.section .text.matrix, "ax"
.balign 4096
.global mx_code_start
mx_code_start:

// matrix-l2's way in (ghv's is VM entry): its world switch loads CR3 = RAX here, in pages the
// payload's tables map, and continues at RCX.
.global mx_enter_world
mx_enter_world:
    mov cr3, rax
    jmp rcx

// IRETQ to CPL 3 at \target with the user stack in RDI and RFLAGS = \rflags.
.macro MX_USER target, rflags
    push {USER_DATA}
    push rdi
    push \rflags
    push {USER_CODE}
    lea rax, [rip + \target]
    push rax
    iretq
.endm

.macro MX_ACTION name
.global mx_\name
mx_\name:
.endm

MX_ACTION de
    xor edx, edx
    xor ecx, ecx
    mov eax, 1
    div ecx
    jmp mx_completed

// POPFQ sets TF: the instruction after it completes, then #DB (trap).
MX_ACTION db_tf
    pushfq
    or qword ptr [rsp], 0x100
    popfq
    nop
    jmp mx_completed

MX_ACTION int1
    .byte 0xf1
    jmp mx_completed

MX_ACTION int3
    int3
    jmp mx_completed

// Encoded by hand: the assembler writes `int 3` as INT3 (0xCC), a different event.
.irp vector, 0x0,0x1,0x3,0x4,0x5,0x6,0x7,0x10,0x20,0x80,0xff
MX_ACTION int_\vector
    .byte 0xcd, \vector
    jmp mx_completed
.endr

// INTO is invalid in 64-bit mode (#UD). OF is set first, so that a CPU executing it would trap.
MX_ACTION into
    mov al, 0x7f
    add al, 1
    .byte 0xce
    jmp mx_completed

MX_ACTION ud2
    ud2

MX_ACTION nm_fnop
    mov rax, cr0
    or rax, 8                       // TS
    mov cr0, rax
    fnop
    jmp mx_completed

MX_ACTION nm_fwait
    mov rax, cr0
    or rax, 8 | 2                   // TS, MP
    mov cr0, rax
    fwait
    jmp mx_completed

MX_ACTION gp_noncanonical
    movabs rax, 0x8000000000000000
    mov rax, [rax]
    jmp mx_completed

MX_ACTION gp_selector
    mov ax, {BEYOND_GDT}
    mov ds, ax
    jmp mx_completed

MX_ACTION ss_noncanonical
    movabs rbp, 0x8000000000000000
    mov rax, [rbp]
    jmp mx_completed

MX_ACTION np_selector
    mov ax, {NOT_PRESENT_DATA}
    mov ds, ax
    jmp mx_completed

// 1.0 / 0.0 with ZM unmasked (control word 0x37b): the fault is pending until FWAIT.
MX_ACTION mf
    fninit
    push 0x37b
    fldcw [rsp]
    fld1
    fldz
    fdivp st(1), st
    fwait
    jmp mx_completed

// 1.0f / 0.0f with MXCSR.ZM clear (0x1d80), after CR4.OSFXSR | CR4.OSXMMEXCPT.
MX_ACTION xm
    mov rax, cr4
    or rax, (1 << 9) | (1 << 10)
    mov cr4, rax
    push 0x1d80
    ldmxcsr [rsp]
    mov eax, 0x3f800000
    movd xmm0, eax
    xorps xmm1, xmm1
    divss xmm0, xmm1
    jmp mx_completed

MX_ACTION pf_r_np
    mov rax, [{NOT_PRESENT}]
    jmp mx_completed

MX_ACTION pf_w_np
    mov [{NOT_PRESENT}], rax
    jmp mx_completed

MX_ACTION pf_x_np
    mov rax, {NOT_PRESENT}
    jmp rax

MX_ACTION pf_w_ro
    mov [{READ_ONLY}], rax
    jmp mx_completed

MX_ACTION pf_r_rsvd
    mov rax, [{RESERVED}]
    jmp mx_completed

MX_ACTION pf_w_rsvd
    mov [{RESERVED}], rax
    jmp mx_completed

MX_ACTION pf_x_nx
    mov rax, {NO_EXECUTE}
    jmp rax

.irp name, u_pf_r_np,u_pf_w_np,u_pf_r_sup,u_pf_w_sup,u_pf_r_rsvd,u_pf_x_nx,u_pf_x_sup,u_int_0x20,u_int3,u_cli,u_ud2,u_de
MX_ACTION \name
    MX_USER mx_user_\name, 0x2
.endr

MX_ACTION u_ac
    MX_USER mx_user_u_ac, 0x40002  // RFLAGS.AC

// The CPL 3 halves (code pages are user-accessible, read-only).
mx_user_u_pf_r_np:
    mov rax, [{NOT_PRESENT}]
    jmp mx_completed
mx_user_u_pf_w_np:
    mov [{NOT_PRESENT}], rax
    jmp mx_completed
mx_user_u_pf_r_sup:
    mov rax, [{SUPERVISOR}]
    jmp mx_completed
mx_user_u_pf_w_sup:
    mov [{SUPERVISOR}], rax
    jmp mx_completed
mx_user_u_pf_r_rsvd:
    mov rax, [{RESERVED}]
    jmp mx_completed
mx_user_u_pf_x_nx:
    mov rax, {NO_EXECUTE}
    jmp rax
mx_user_u_pf_x_sup:
    mov rax, {SUPERVISOR}
    jmp rax
mx_user_u_int_0x20:
    int 0x20
    jmp mx_completed
mx_user_u_int3:
    int3
    jmp mx_completed
mx_user_u_cli:
    cli
    jmp mx_completed
mx_user_u_ud2:
    ud2
mx_user_u_de:
    xor edx, edx
    xor ecx, ecx
    mov eax, 1
    div ecx
    jmp mx_completed
mx_user_u_ac:
    mov eax, [rsp - 7]
    jmp mx_completed

// Nothing was raised: the DPL 3 gate reports "completed" from either privilege level.
mx_completed:
    int {COMPLETED}

// Exception handlers: push (error code or NONE, vector) and report.
.macro MX_STUB_NOERR vector
mx_isr_\vector:
    push {NONE}
    push \vector
    jmp mx_isr_common
.endm
.macro MX_STUB_ERR vector
mx_isr_\vector:
    push \vector
    jmp mx_isr_common
.endm

// SDM Table 6-1: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX push an error code. Vectors
// 32 and up are reached by INT n only, which pushes none.
.irp vector, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,32,128,255
MX_STUB_NOERR \vector
.endr
.irp vector, 8,10,11,12,13,14,17,21,29,30
MX_STUB_ERR \vector
.endr

mx_isr_completed:
    push {NONE}
    push {NONE}

mx_isr_common:
    pop rdi
    pop rsi
    mov rdx, cr2
    MX_REPORT
    ud2                             // the guest never resumes a finished run

.balign 4096
.global mx_code_end
mx_code_end:

.section .rodata
.balign 8
// Handlers for vectors 0..32, then 0x20, 0x80, 0xff and the completion vector.
.global mx_isr_table
mx_isr_table:
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,128,255
    .quad mx_isr_\vector
.endr
.global mx_isr_completed_entry
mx_isr_completed_entry:
    .quad mx_isr_completed
