// ghv-hostile's probes: run one hostile instruction at CPL 0 or CPL 3 and come back with what
// the processor did, whether it completed (RFLAGS, for the VMsucceed/VMfail conventions of
// SDM 31.2) or raised an exception (vector and error code, caught by ghv-hostile's own IDT).
//
// hostile_probe(op: rdi, user: rsi, operand: rdx, field: rcx, value: r8) -> vector (rax)
//   Runs `op` with RSI = operand (the address of the instruction's memory operand), RDX = field
//   (VMCS encoding, or the INVEPT/INVVPID type) and RCX = value; at CPL 3 if `user` != 0 (IRETQ
//   to the user selectors, RFLAGS.IF = 0). Every op ends in hostile_op_done: RFLAGS into RAX,
//   then INT 0x80 (a DPL 3 gate). Every gate (vectors 0-31 and 0x80) uses IST1, so the handler
//   always runs on the trap stack, from CPL 0 or CPL 3 alike. It records (vector, error code or
//   none, RAX) in hostile_trap and returns from hostile_probe on the saved kernel stack.
//   The returned vector is 0x80 when the instruction completed.

.section .text
.global hostile_probe
hostile_probe:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov [hostile_kernel_rsp], rsp
    mov rax, rdi
    mov rdi, rsi
    mov rsi, rdx
    mov rdx, rcx
    mov rcx, r8
    test rdi, rdi
    jnz 1f
    jmp rax                         // CPL 0: the op never returns here (INT 0x80 or a fault)
1:  push 0x2b                       // SS: user data
    push offset hostile_user_stack_top
    push 0x2                        // RFLAGS: IF = 0
    push 0x33                       // CS: user code
    push rax                        // RIP
    iretq

// The ops: one instruction each, then hostile_op_done.
.global hostile_op_vmptrld
hostile_op_vmptrld:
    vmptrld [rsi]
    jmp hostile_op_done
.global hostile_op_vmclear
hostile_op_vmclear:
    vmclear [rsi]
    jmp hostile_op_done
.global hostile_op_vmptrst
hostile_op_vmptrst:
    vmptrst [rsi]
    jmp hostile_op_done
.global hostile_op_vmxon
hostile_op_vmxon:
    vmxon [rsi]
    jmp hostile_op_done
.global hostile_op_vmxoff
hostile_op_vmxoff:
    vmxoff
    jmp hostile_op_done
.global hostile_op_vmread
hostile_op_vmread:
    vmread rcx, rdx
    jmp hostile_op_done
.global hostile_op_vmwrite
hostile_op_vmwrite:
    vmwrite rdx, rcx
    jmp hostile_op_done
.global hostile_op_vmlaunch
hostile_op_vmlaunch:
    vmlaunch
    jmp hostile_op_done
// MOV SS blocks events until the next instruction ends: VMLAUNCH right after it must fail
// with "VM entry with events blocked by MOV SS" (SDM 31.3 VMLAUNCH, error 26).
.global hostile_op_vmlaunch_after_mov_ss
hostile_op_vmlaunch_after_mov_ss:
    mov ax, ss
    mov ss, ax
    vmlaunch
    jmp hostile_op_done
.global hostile_op_vmresume
hostile_op_vmresume:
    vmresume
    jmp hostile_op_done
.global hostile_op_invept
hostile_op_invept:
    invept rdx, [rsi]
    jmp hostile_op_done
.global hostile_op_invvpid
hostile_op_invvpid:
    invvpid rdx, [rsi]
    jmp hostile_op_done

hostile_op_done:
    pushfq
    pop rax
    int 0x80

// Gate stubs: push (error code or NONE, vector).
.macro HOSTILE_NOERR vector
hostile_isr_\vector:
    push -1
    push \vector
    jmp hostile_isr_common
.endm
.macro HOSTILE_ERR vector
hostile_isr_\vector:
    push \vector
    jmp hostile_isr_common
.endm
.irp vector, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,128
HOSTILE_NOERR \vector
.endr
.irp vector, 8,10,11,12,13,14,17,21,29,30
HOSTILE_ERR \vector
.endr

hostile_isr_common:
    pop rdi                         // vector
    pop rsi                         // error code or NONE
    mov rdx, [rsp]                  // the interrupted RIP
    cmp qword ptr [hostile_kernel_rsp], 0
    je 2f                           // no probe running: a fault in ghv-hostile itself
    mov [hostile_trap], rdi
    mov [hostile_trap + 8], rsi
    mov [hostile_trap + 16], rax
    mov ax, 0x10                    // from CPL 3, SS was loaded with a null selector
    mov ss, ax
    mov ds, ax
    mov es, ax
    mov rsp, [hostile_kernel_rsp]
    mov qword ptr [hostile_kernel_rsp], 0
    mov rax, rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
2:  mov ax, 0x10
    mov ss, ax
    and rsp, -16
    call hostile_unexpected_trap    // (vector, error code, RIP): never returns

.section .rodata
.balign 8
.global hostile_isr_table
hostile_isr_table:
.irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad hostile_isr_\vector
.endr
.global hostile_isr_return
hostile_isr_return:
    .quad hostile_isr_128

.section .bss
.balign 16
hostile_kernel_rsp: .skip 8
.global hostile_trap
hostile_trap: .skip 24
.balign 4096
hostile_user_stack: .skip 4096
hostile_user_stack_top:
.global hostile_trap_stack_top
hostile_trap_stack: .skip 16384
hostile_trap_stack_top:
