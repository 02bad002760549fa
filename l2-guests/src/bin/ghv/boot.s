// ghv's two ways in, both ending in ghv_main(bare) in 64-bit mode on ghv's own stack.
//
// Bare (GRUB multiboot2): the header's entry address tag (multiboot2 spec 3.1.6, tag type 3)
// sends GRUB to ghv_start32 in 32-bit protected mode, paging off. It identity-maps the first GiB
// with 2 MiB pages (as l1-hv's entry does) and enters long mode; ghv_main(1).
// Under l1-hv: the ELF entry _start, already in 64-bit mode on l1-hv's boot tables (l2-abi);
// ghv_main(0). GRUB and l1-hv both zero .bss when they load the ELF segments.

.section .text.entry, "ax"
.balign 8
ghv_mb2_header:
    .long 0xe85250d6                                        // magic
    .long 0                                                 // architecture: i386 protected mode
    .long ghv_mb2_header_end - ghv_mb2_header               // header length
    .long 0x100000000 - (0xe85250d6 + (ghv_mb2_header_end - ghv_mb2_header))
    .balign 8
    .short 3, 0                                             // entry address tag
    .long 12
    .long ghv_start32
    .balign 8
    .short 0, 0                                             // end tag
    .long 8
ghv_mb2_header_end:

.code64
.global _start
_start:
    xor edi, edi                    // under l1-hv
    jmp ghv_start64

.code32
ghv_start32:
    cli
    cld
    // GRUB may leave the caches disabled (CR0.CD/NW): turn them on.
    mov eax, cr0
    and eax, 0x9fffffff
    mov cr0, eax
    // PD: 512 x 2 MiB = the first GiB, present | writable | page size.
    mov edi, offset ghv_boot_pd
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [edi + ecx * 8], eax
    inc ecx
    cmp ecx, 512
    jne 1b
    mov eax, offset ghv_boot_pd
    or eax, 0x3
    mov [ghv_boot_pdpt], eax
    mov eax, offset ghv_boot_pdpt
    or eax, 0x3
    mov [ghv_boot_pml4], eax
    mov eax, offset ghv_boot_pml4
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
    lgdt [ghv_boot_gdt_pointer]
    mov esp, offset ghv_stack_top
    mov eax, 0x08                   // far return into 64-bit code: CS = 0x08
    push eax
    mov eax, offset ghv_long_mode
    push eax
    retf

.code64
ghv_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov edi, 1                      // bare
ghv_start64:
    mov rsp, offset ghv_stack_top
    xor ebp, ebp
    call ghv_main
2:  cli
    hlt
    jmp 2b

.section .rodata
.balign 8
ghv_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        // 0x08: 64-bit code, ring 0
    .quad 0x00cf92000000ffff        // 0x10: data, ring 0
ghv_boot_gdt_end:
ghv_boot_gdt_pointer:
    .short ghv_boot_gdt_end - ghv_boot_gdt - 1
    .long ghv_boot_gdt

.section .bss
.balign 4096
ghv_boot_pml4: .skip 4096
ghv_boot_pdpt: .skip 4096
ghv_boot_pd:   .skip 4096
ghv_stack:     .skip 64 * 1024
ghv_stack_top:
