// vmx_enter(regs: *mut GuestRegisters, launched: u64, host_rsp: *mut u64) -> u64
// vmx_enter_fast(regs, launched, host_rsp, handler: FastHandler, context: *mut C) -> u64
//
// Loads the guest's general-purpose registers and CR2, then VMLAUNCH (launched == 0) or
// VMRESUME. A VM exit lands at the VMCS host RIP with RSP as written below: vmx_exit for
// vmx_enter, vmx_exit_fast for vmx_enter_fast. The guest's registers are stored back and the
// enter function returns 0 to its caller as an ordinary call. If the instruction itself fails,
// it returns RFLAGS (CF: VMfailInvalid, ZF: VMfailValid).
//
// Unless context is null, vmx_exit_fast first saves only the registers a call may clobber (and
// RBX, which CPUID writes) as an `ExitFrame` and calls handler(frame, context). If the handler returns true it
// has handled the exit completely: the frame is loaded back and the guest resumed at once,
// without returning to the caller (the guest's RBP and R12-R15 never left their registers: the
// handler preserves them, as the C ABI requires). Otherwise the whole register file is stored
// and the caller sees an ordinary exit. The handler must leave everything unchanged when it
// returns false.
//
// The VMCS host RSP is written only when it differs from *host_rsp (the value last written into
// this VMCS, updated here): an exit path without that VMWRITE is shorter, and for a hypervisor
// that is itself a guest (ghv) host RSP is not a shadowed field, so every VMWRITE of it would be
// a VM exit to its L1.
// Offsets follow `GuestRegisters` (lib.rs): rax 0, rbx 8, rcx 16, rdx 24, rsi 32, rdi 40,
// rbp 48, r8..r15 56..112, cr2 120.

.macro SAVE_HOST
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
.endm

// Writes the VMCS host RSP if it changed, loads the guest's registers from RDI and enters.
// ZF from `cmp launched, 0` must survive the MOVs.
.macro ENTER_GUEST
    cmp rsp, [rdx]
    je 3f
    mov [rdx], rsp
    mov rax, 0x6c14                 // VMCS host RSP
    vmwrite rax, rsp
3:
    mov rax, [rdi + 120]
    mov cr2, rax
    cmp rsi, 0
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
2:
.endm

.macro RESTORE_HOST_AND_RETURN
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
.endm

// At a VM exit with [rsp] = regs: the guest's registers other than RBP, R12-R15 into regs,
// which RDI then points to.
.macro STORE_GUEST_GPRS
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0], rax
    mov [rdi + 8], rbx
    mov [rdi + 16], rcx
    mov [rdi + 24], rdx
    mov [rdi + 32], rsi
    mov [rdi + 56], r8
    mov [rdi + 64], r9
    mov [rdi + 72], r10
    mov [rdi + 80], r11
    pop qword ptr [rdi + 40]
.endm

// The guest's RBP, R12-R15 and CR2 into regs (RDI).
.macro SAVE_GUEST_CALLEE_SAVED
    mov [rdi + 48], rbp
    mov [rdi + 88], r12
    mov [rdi + 96], r13
    mov [rdi + 104], r14
    mov [rdi + 112], r15
    mov rax, cr2
    mov [rdi + 120], rax
.endm

.section .text
.global vmx_enter
vmx_enter:
    SAVE_HOST
    push rdi                        // [rsp] = regs: found again by vmx_exit
    ENTER_GUEST
    pushfq                          // VM entry failed: report RFLAGS
    pop rax
    add rsp, 8
    RESTORE_HOST_AND_RETURN

.global vmx_exit
vmx_exit:
    STORE_GUEST_GPRS
    SAVE_GUEST_CALLEE_SAVED
    add rsp, 8
    xor eax, eax
    RESTORE_HOST_AND_RETURN

.global vmx_enter_fast
vmx_enter_fast:
    SAVE_HOST
    push r8                         // [rsp + 16] = context
    push rcx                        // [rsp + 8] = handler
    push rdi                        // [rsp] = regs; RSP is now 16-byte aligned
    ENTER_GUEST
5:  pushfq                          // VM entry failed: report RFLAGS
    pop rax
    add rsp, 24
    RESTORE_HOST_AND_RETURN

.global vmx_exit_fast
vmx_exit_fast:
    cmp qword ptr [rsp + 16], 0     // no context: no handler either
    je 7f
    push rax                        // the ExitFrame, lowest address last (lib.rs)
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    mov rdi, rsp                    // 80 bytes pushed: RSP stays 16-byte aligned for the call
    mov rsi, [rsp + 96]
    call [rsp + 88]
    test al, al
    jz 6f
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
    vmresume
    // VMRESUME failed. The guest's registers stay as of its last ordinary exit: an entry that
    // fails ends the guest's run.
    jmp 5b
6:  mov rdi, [rsp + 80]
    pop qword ptr [rdi + 80]
    pop qword ptr [rdi + 72]
    pop qword ptr [rdi + 64]
    pop qword ptr [rdi + 56]
    pop qword ptr [rdi + 40]
    pop qword ptr [rdi + 32]
    pop qword ptr [rdi + 24]
    pop qword ptr [rdi + 16]
    pop qword ptr [rdi + 8]
    pop qword ptr [rdi + 0]
    jmp 8f
7:  STORE_GUEST_GPRS
8:  SAVE_GUEST_CALLEE_SAVED
    add rsp, 24
    xor eax, eax
    RESTORE_HOST_AND_RETURN
