// 32-bit multiboot2 entry: zero .bss, identity-map the low 4 GiB with 2 MiB pages, enter long mode
// and call `kmain(magic, mbi)`. GRUB enters here in 32-bit protected mode, paging off,
// EAX = multiboot2 magic, EBX = physical address of the boot information (multiboot2 spec 3.3).

.section .multiboot2_header, "a"
.balign 8
mb2_header:
    .long 0xe85250d6                                        // magic
    .long 0                                                 // architecture: i386 protected mode
    .long mb2_header_end - mb2_header                       // header length
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    .balign 8
    .short 0, 0                                             // end tag
    .long 8
mb2_header_end:

.section .text.boot, "ax"
.code32
.global _start
_start:
    cli
    cld
    mov esi, eax                    // keep magic and boot-information pointer
    mov ebp, ebx

    // GRUB may leave the caches disabled (CR0.CD/NW): turn them on.
    mov eax, cr0
    and eax, 0x9fffffff
    mov cr0, eax

    // Zero .bss (page tables and stacks live there).
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd
    mov esp, offset boot_stack_top

    // No long mode: nothing this kernel can do. Say so on COM1 and halt.
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 90f
    mov eax, 0x80000001
    cpuid
    bt edx, 29
    jnc 90f

    // PD entries: 2048 x 2 MiB pages = 4 GiB, present | writable | page size.
    mov edi, offset boot_pd
    xor ecx, ecx
1:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [edi + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jne 1b
    // PDPT[0..3] -> the four page directories; PML4[0] -> PDPT.
    mov edi, offset boot_pdpt
    mov eax, offset boot_pd
    or eax, 0x3
    mov [edi], eax
    add eax, 0x1000
    mov [edi + 8], eax
    add eax, 0x1000
    mov [edi + 16], eax
    add eax, 0x1000
    mov [edi + 24], eax
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov [boot_pml4], eax

    mov eax, offset boot_pml4
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

    lgdt [boot_gdt_pointer]
    mov eax, 0x08                   // far return into 64-bit code: CS = 0x08
    push eax
    mov eax, offset long_mode_entry
    push eax
    retf

90: mov edx, 0x3f8
    mov ebx, offset no_long_mode_message
91: mov al, [ebx]
    test al, al
    jz 92f
    out dx, al
    inc ebx
    jmp 91b
92: hlt
    jmp 92b

.code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov edi, esi                    // kmain(magic: u32, mbi: u32): zero-extended
    mov esi, ebp
    mov rsp, offset boot_stack_top
    call kmain
2:  hlt
    jmp 2b

.section .rodata
.balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        // 0x08: 64-bit code, ring 0
    .quad 0x00cf92000000ffff        // 0x10: data, ring 0
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt
no_long_mode_message:
    .asciz "l1-hv: this CPU has no long mode (CPUID 80000001h:EDX[29] = 0)\r\n"

.section .bss
.balign 4096
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4096 * 4
.global boot_stack_top
boot_stack: .skip 64 * 1024
boot_stack_top:
