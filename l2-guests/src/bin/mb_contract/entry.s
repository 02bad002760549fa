// mb-contract's entry: a multiboot1 kernel (multiboot spec 0.6.96, section 3.1) entered by GRUB's
// `multiboot` or by l1-hv's loader in flat 32-bit protected mode with paging off, EAX = the
// boot magic and EBX = the physical address of the multiboot information. It identity-maps the
// low 4 GiB with 2 MiB pages (the local APIC page at 0xFEE00000 lies in the last GiB, mapped
// uncached), enters long mode and calls contract_main(magic, info).

.section .text.entry, "ax"
.balign 4
mb1_header:
    .long 0x1badb002                // magic
    .long 0x00000003                // flags: modules page-aligned, memory information wanted
    .long -(0x1badb002 + 0x00000003)

.code32
.global _start
_start:
    cli
    cld
    mov esi, eax                    // boot magic (kept through the switch)
    mov edi, ebx                    // multiboot information
    // GRUB may leave the caches disabled (CR0.CD/NW): turn them on.
    mov eax, cr0
    and eax, 0x9fffffff
    mov cr0, eax
    // Four page directories, 2048 x 2 MiB = 4 GiB: present | writable | page size; the last
    // GiB (MMIO: local APIC, I/O APIC, HPET) also PCD | PWT.
    mov ebx, offset mb_boot_pd
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    cmp ecx, 1536
    jb 2f
    or eax, 0x18
2:  mov [ebx + ecx * 8], eax
    mov eax, ecx
    shr eax, 11                     // bits 63:32 of the address: entry >> 11
    mov [ebx + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne 1b
    xor ecx, ecx
3:  mov eax, ecx
    shl eax, 12
    add eax, offset mb_boot_pd
    or eax, 0x3
    mov [mb_boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne 3b
    mov eax, offset mb_boot_pdpt
    or eax, 0x3
    mov [mb_boot_pml4], eax
    mov eax, offset mb_boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 1 << 5                  // PAE
    mov cr4, eax
    mov ecx, 0xc0000080             // IA32_EFER.LME
    rdmsr
    or eax, 1 << 8
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | (1 << 5) | 1   // PG | WP | NE | PE
    mov cr0, eax
    lgdt [mb_boot_gdt_pointer]
    mov esp, offset mb_stack_top
    mov eax, 0x08                   // far return into 64-bit code: CS = 0x08
    push eax
    mov eax, offset mb_long_mode
    push eax
    retf

.code64
mb_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, offset mb_stack_top
    xor ebp, ebp
    // RDI = magic, RSI = information (zero-extended by the 32-bit moves above).
    xchg rdi, rsi
    call contract_main
4:  cli
    hlt
    jmp 4b

// One 16-byte stub per vector: a zero error code where the CPU pushes none (SDM 6.13: vectors
// 8, 10-14, 17, 21, 29 and 30 push one), then the vector, then the common path.
.balign 16
.global mb_vector_stubs
mb_vector_stubs:
.set vector, 0
.rept 256
    .balign 16
    .if (vector == 8) || (vector >= 10 && vector <= 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    push 0
    .endif
    push vector
    jmp mb_trap_common
    .set vector, vector + 1
.endr

// Saves the general registers under the vector and error code, hands the frame to
// contract_trap (which may edit RIP and RFLAGS in it), and returns with IRETQ.
mb_trap_common:
    push r15
    push r14
    push r13
    push r12
    push r11
    push r10
    push r9
    push r8
    push rbp
    push rdi
    push rsi
    push rdx
    push rcx
    push rbx
    push rax
    mov rdi, rsp
    call contract_trap
    pop rax
    pop rbx
    pop rcx
    pop rdx
    pop rsi
    pop rdi
    pop rbp
    pop r8
    pop r9
    pop r10
    pop r11
    pop r12
    pop r13
    pop r14
    pop r15
    add rsp, 16
    iretq

.section .rodata
.balign 8
mb_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        // 0x08: 64-bit code, ring 0
    .quad 0x00cf92000000ffff        // 0x10: data, ring 0
mb_boot_gdt_end:
mb_boot_gdt_pointer:
    .short mb_boot_gdt_end - mb_boot_gdt - 1
    .long mb_boot_gdt

.section .bss
.balign 4096
mb_boot_pml4: .skip 4096
mb_boot_pdpt: .skip 4096
mb_boot_pd:   .skip 4 * 4096
mb_stack:     .skip 64 * 1024
mb_stack_top:
