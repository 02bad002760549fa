// ghv-hostile's L3 payloads, entered at CPL 3 with RSI = a scratch page - 8 (the memory
// operands below use displacement 8, which the exit qualification of a VMX-instruction exit
// reports: SDM 28.2.1). A payload that is not stopped by a VM exit
// reports with VMCALL, RAX = {DONE}, RDI = what it read ({NONE} if nothing).
// L3's IDTR limit is 0: any exception in L3 is a triple fault (exit reason 2).

.section .text
.global hostile_l3_vmcall
hostile_l3_vmcall:
    mov eax, 0x77
    vmcall
    jmp hostile_l3_done
.global hostile_l3_vmclear
hostile_l3_vmclear:
    vmclear [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_vmlaunch
hostile_l3_vmlaunch:
    vmlaunch
    jmp hostile_l3_done
.global hostile_l3_vmptrld
hostile_l3_vmptrld:
    vmptrld [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_vmptrst
hostile_l3_vmptrst:
    vmptrst [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_vmread
hostile_l3_vmread:
    xor edx, edx
    vmread [rsi + 8], rdx
    jmp hostile_l3_done
.global hostile_l3_vmresume
hostile_l3_vmresume:
    vmresume
    jmp hostile_l3_done
.global hostile_l3_vmwrite
hostile_l3_vmwrite:
    xor edx, edx
    vmwrite rdx, [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_vmxoff
hostile_l3_vmxoff:
    vmxoff
    jmp hostile_l3_done
.global hostile_l3_vmxon
hostile_l3_vmxon:
    vmxon [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_invept
hostile_l3_invept:
    mov edx, 1
    invept rdx, [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_invvpid
hostile_l3_invvpid:
    mov edx, 1
    invvpid rdx, [rsi + 8]
    jmp hostile_l3_done
.global hostile_l3_ud2
hostile_l3_ud2:
    ud2
    jmp hostile_l3_done
// Reads the 8 bytes at RSI + 8 (ghv-hostile points RSI there through its EPT scenarios).
.global hostile_l3_read
hostile_l3_read:
    mov rdi, [rsi + 8]
    mov eax, {DONE}
    vmcall
    ud2
hostile_l3_done:
    mov rdi, {NONE}
    mov eax, {DONE}
    vmcall
    ud2
