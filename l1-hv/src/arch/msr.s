// RDMSR and WRMSR that l1-hv executes for a guest (`arch::msr`). The MSR may not exist or the
// value may be one the processor refuses: the #GP stub (isr.s) resumes a fault at exactly the
// two instructions below at `l1hv_msr_faulted`, which returns 1 instead of 0.

.section .text
// u64 l1hv_msr_read(u32 msr [edi], u64 *value [rsi]): 0 with *value set, or 1 on #GP.
.global l1hv_msr_read
l1hv_msr_read:
    mov ecx, edi
.global l1hv_msr_read_insn
l1hv_msr_read_insn:
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov [rsi], rax
    xor eax, eax
    ret

// u64 l1hv_msr_write(u32 msr [edi], u64 value [rsi]): 0, or 1 on #GP.
.global l1hv_msr_write
l1hv_msr_write:
    mov ecx, edi
    mov eax, esi
    mov rdx, rsi
    shr rdx, 32
.global l1hv_msr_write_insn
l1hv_msr_write_insn:
    wrmsr
    xor eax, eax
    ret

// Both functions push nothing before their instruction, so the return address is on top here.
.global l1hv_msr_faulted
l1hv_msr_faulted:
    mov eax, 1
    ret
