// matrix-l2's world switch: mx_l2_enter(cr3, gdtr, idtr, rip, rsp, rdi, out) saves the
// guest's own state, loads the payload's CR3, GDT, TR and IDT and jumps to `rip` with RSP and
// RDI set (what ghv's VM entry does for L3); the payload's MX_REPORT reloads the boot CR3 and
// jumps to mx_l2_return, which restores the rest and stores RDI, RSI, RDX (vector, error code, CR2) into `out`.

.section .text
.global mx_l2_enter
mx_l2_enter:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    pushfq
    push qword ptr [rsp + 8 * 8]    // out (the 7th argument)
    sgdt [rip + mx_l2_saved_gdtr]
    sidt [rip + mx_l2_saved_idtr]
    mov [rip + mx_l2_saved_rsp], rsp
    mov r10, rdi
    lgdt [rsi]
    lidt [rdx]
    mov ax, {TSS}
    ltr ax
    mov ax, {DATA}
    mov ss, ax
    mov ds, ax
    mov es, ax
    mov rsp, r8
    mov rdi, r9
    mov rax, r10
    jmp mx_enter_world              // CR3 = RAX, then RIP = RCX

// Reached from MX_REPORT, on the boot page tables again.
.global mx_l2_return
mx_l2_return:
    lgdt [rip + mx_l2_saved_gdtr]
    lidt [rip + mx_l2_saved_idtr]
    mov ax, {DATA}
    mov ss, ax
    mov ds, ax
    mov es, ax
    mov rsp, [rip + mx_l2_saved_rsp]
    pop rax                         // out
    mov [rax], rdi
    mov [rax + 8], rsi
    mov [rax + 16], rdx
    popfq
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

.section .bss
.balign 16
mx_l2_saved_rsp: .skip 8
mx_l2_saved_gdtr: .skip 16
mx_l2_saved_idtr: .skip 16
