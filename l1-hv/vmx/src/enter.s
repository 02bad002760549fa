// vmx_enter(regs: *mut GuestRegisters, launched: u64, host_rsp: *mut u64) -> u64
//
// Loads the guest's general-purpose registers and CR2, then VMLAUNCH (launched == 0) or
// VMRESUME. A VM exit lands at vmx_exit (the VMCS host RIP) with RSP as written below: the
// guest's registers are stored back and vmx_enter returns 0 to its caller as an ordinary call.
// If the instruction itself fails, it returns RFLAGS (CF: VMfailInvalid, ZF: VMfailValid).
// The VMCS host RSP is written only when it differs from *host_rsp (the value last written into
// this VMCS, updated here): an exit path without that VMWRITE is shorter, and for a hypervisor
// that is itself a guest (ghv) host RSP is not a shadowed field, so every VMWRITE of it would be
// a VM exit to its L1.
// Offsets follow `GuestRegisters` (mod.rs): rax 0, rbx 8, rcx 16, rdx 24, rsi 32, rdi 40,
// rbp 48, r8..r15 56..112, cr2 120.

.section .text
.global vmx_enter
vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                        // [rsp] = regs: found again by vmx_exit
    cmp rsp, [rdx]                  // host RSP as last written: skip the VMWRITE
    je 3f
    mov [rdx], rsp
    mov rax, 0x6c14                 // VMCS host RSP
    vmwrite rax, rsp
3:
    mov rax, [rdi + 120]
    mov cr2, rax
    cmp rsi, 0                      // flags survive the MOVs below
    mov rax, [rdi + 0]
    mov rbx, [rdi + 8]
    mov rcx, [rdi + 16]
    mov rdx, [rdi + 24]
    mov rsi, [rdi + 32]
    mov rbp, [rdi + 48]
    mov r8,  [rdi + 56]
    mov r9,  [rdi + 64]
    mov r10, [rdi + 72]
    mov r11, [rdi + 80]
    mov r12, [rdi + 88]
    mov r13, [rdi + 96]
    mov r14, [rdi + 104]
    mov r15, [rdi + 112]
    mov rdi, [rdi + 40]
    jne 1f
    vmlaunch
    jmp 2f
1:  vmresume
2:  pushfq                          // VM entry failed: report RFLAGS
    pop rax
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

.global vmx_exit
vmx_exit:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0], rax
    mov [rdi + 8], rbx
    mov [rdi + 16], rcx
    mov [rdi + 24], rdx
    mov [rdi + 32], rsi
    mov [rdi + 48], rbp
    mov [rdi + 56], r8
    mov [rdi + 64], r9
    mov [rdi + 72], r10
    mov [rdi + 80], r11
    mov [rdi + 88], r12
    mov [rdi + 96], r13
    mov [rdi + 104], r14
    mov [rdi + 112], r15
    pop rax
    mov [rdi + 40], rax
    mov rax, cr2
    mov [rdi + 120], rax
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    xor eax, eax
    ret
