// Guest entry, exception stubs and the user-mode round trip.

.section .text.entry, "ax"
.global _start
_start:
    mov rsp, offset guest_stack_top
    call guest_main
    ud2

.section .text
// Exception stubs: push (vector, error code or 0) and call guest_exception(frame).
.macro STUB_NOERR vector
guest_isr_\vector:
    push 0
    push \vector
    jmp guest_isr_common
.endm
.macro STUB_ERR vector
guest_isr_\vector:
    push \vector
    jmp guest_isr_common
.endm

STUB_NOERR 0
STUB_NOERR 1
STUB_NOERR 2
STUB_NOERR 3
STUB_NOERR 4
STUB_NOERR 5
STUB_NOERR 6
STUB_NOERR 7
STUB_ERR 8
STUB_NOERR 9
STUB_ERR 10
STUB_ERR 11
STUB_ERR 12
STUB_ERR 13
STUB_ERR 14
STUB_NOERR 15
STUB_NOERR 16
STUB_ERR 17
STUB_NOERR 18
STUB_NOERR 19
STUB_NOERR 20
STUB_ERR 21
STUB_NOERR 22
STUB_NOERR 23
STUB_NOERR 24
STUB_NOERR 25
STUB_NOERR 26
STUB_NOERR 27
STUB_NOERR 28
STUB_ERR 29
STUB_ERR 30
STUB_NOERR 31

guest_isr_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    mov rdi, rsp
    add rdi, 80                     // &frame (vector, error code, CPU frame)
    mov rbx, rsp                    // rbx is callee-saved: keeps the unaligned rsp
    and rsp, -16
    call guest_exception
    mov rsp, rbx
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16                     // vector, error code
    iretq

// run_user(entry: u64, user_stack: u64): runs `entry` at CPL 3 until it executes INT 0x80.
.global run_user
run_user:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [kernel_resume_rsp], rsp
    push 0x1b                       // SS: user data
    push rsi                        // RSP
    push 0x2                        // RFLAGS
    push 0x23                       // CS: user code
    push rdi                        // RIP
    iretq

// INT 0x80 (a DPL 3 gate): back to run_user's caller at CPL 0; the user frame is dropped.
.global guest_isr_return_to_kernel
guest_isr_return_to_kernel:
    mov ax, 0x10
    mov ss, ax
    mov rsp, [kernel_resume_rsp]
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

.section .rodata
.balign 8
.global guest_isr_table
guest_isr_table:
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad guest_isr_\vector
.endr

.section .bss
.balign 16
kernel_resume_rsp: .skip 8
.balign 4096
guest_stack: .skip 32 * 1024
.global guest_stack_top
guest_stack_top:
