// Host exception entry stubs: push a uniform frame (vector, error code or 0) and call
// `host_exception(frame)`, which reports and powers off: l1-hv never resumes after a host fault.
// The NMI is the exception: it belongs to the guest (an NMI a guest's device or self-IPI sent
// while l1-hv handled an exit), so its stub records it for the guest and returns. So is a #GP of
// the RDMSR/WRMSR l1-hv executes for a guest (msr.s): that fault is the guest's.

.macro ISR_NOERR vector
isr_\vector:
    push 0
    push \vector
    jmp isr_common
.endm

.macro ISR_ERR vector
isr_\vector:
    push \vector
    jmp isr_common
.endm

.section .text
ISR_NOERR 0
ISR_NOERR 1
isr_2:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    // The interrupt frame (5 words) and these 9 keep RSP 16-byte aligned for the call.
    call host_nmi
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    iretq
ISR_NOERR 3
ISR_NOERR 4
ISR_NOERR 5
ISR_NOERR 6
ISR_NOERR 7
ISR_ERR 8
ISR_NOERR 9
ISR_ERR 10
ISR_ERR 11
ISR_ERR 12
// #GP: resume an RDMSR/WRMSR of msr.s at `l1hv_msr_faulted`; any other #GP is l1-hv's.
isr_13:
    push rax
    push rcx
    mov rax, [rsp + 24]         // the faulting RIP, above RCX, RAX and the error code
    lea rcx, [rip + l1hv_msr_read_insn]
    cmp rax, rcx
    je isr_13_msr
    lea rcx, [rip + l1hv_msr_write_insn]
    cmp rax, rcx
    je isr_13_msr
    pop rcx
    pop rax
    push 13
    jmp isr_common
isr_13_msr:
    lea rcx, [rip + l1hv_msr_faulted]
    mov [rsp + 24], rcx
    pop rcx
    pop rax
    add rsp, 8                  // the error code
    iretq
ISR_ERR 14
ISR_NOERR 15
ISR_NOERR 16
ISR_ERR 17
ISR_NOERR 18
ISR_NOERR 19
ISR_NOERR 20
ISR_ERR 21
ISR_NOERR 22
ISR_NOERR 23
ISR_NOERR 24
ISR_NOERR 25
ISR_NOERR 26
ISR_NOERR 27
ISR_NOERR 28
ISR_ERR 29
ISR_ERR 30
ISR_NOERR 31

isr_common:
    mov rdi, rsp
    and rsp, -16
    call host_exception
    ud2

.section .rodata
.balign 8
.global isr_table
isr_table:
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr_\vector
.endr
