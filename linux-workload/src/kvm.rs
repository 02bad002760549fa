//! `kvm`: the smallest VMM, to see whether the guest's own KVM runs VMs (issue 14): two VMs,
//! each with 64 KiB of memory at guest-physical 0 and one vCPU. The first, in real mode, runs
//! [`REAL_MODE_CODE`], which takes each kind of exit a VMM sees first: port output and input
//! (KVM_EXIT_IO), a write outside the VM's memory, twice (KVM_EXIT_MMIO: under EPT, KVM learns
//! of the first through an EPT violation and, with MMIO caching, marks the page with a
//! misconfigured EPT entry, so the second comes through an EPT misconfiguration), CPUID and a
//! busy loop that KVM handles without leaving the kernel (16 M iterations: the host's timer
//! interrupts arrive while the VM runs, each a VM exit that KVM handles and resumes from), and
//! HLT (KVM_EXIT_HLT). The second, in 64-bit mode under its own page tables, runs
//! [`LONG_MODE_CODE`]: port output, CPUID, a write outside its memory, HLT. Each exit is
//! printed; a step that fails is printed with its errno. Under a hypervisor that runs Linux,
//! these VMs are that hypervisor's L3 (in l1-hv's levels).

use kvm_bindings::{kvm_segment, kvm_sregs, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};

/// Guest-physical size of each VM's memory, mapped at 0.
const MEMORY_BYTES: usize = 64 << 10;
/// Where the code sits and the vCPU starts.
const CODE_AT: u64 = 0x1000;
/// The value the VMM answers the port input with; the code writes it back out.
const PORT_INPUT: u8 = 0x5a;
/// Real-mode code, assembled by hand (16-bit operand size unless prefixed with 66h).
#[rustfmt::skip]
const REAL_MODE_CODE: &[u8] = &[
    0xB0, 0x42,                         // mov al, 0x42
    0xE6, 0x10,                         // out 0x10, al
    0xE4, 0x11,                         // in al, 0x11
    0xE6, 0x10,                         // out 0x10, al
    0x66, 0x31, 0xC0,                   // xor eax, eax
    0x0F, 0xA2,                         // cpuid (KVM answers it: zeros, no table set)
    0x66, 0xB9, 0x00, 0x00, 0x00, 0x01, // mov ecx, 0x1000000
    0x66, 0x49,                         // dec ecx
    0x75, 0xFC,                         // jnz (the dec)
    0xB8, 0x00, 0x10,                   // mov ax, 0x1000
    0x8E, 0xD8,                         // mov ds, ax: DS base 0x10000, past the VM's memory
    0xC6, 0x06, 0x00, 0x00, 0x43,       // mov byte [0], 0x43
    0xC6, 0x06, 0x00, 0x00, 0x44,       // mov byte [0], 0x44
    0xF4,                               // hlt
];
/// The exits [`REAL_MODE_CODE`] takes, in order, as [`describe`] prints them.
const REAL_MODE_EXITS: &[&str] = &[
    "KVM_EXIT_IO out port=0x10 data=[42]",
    "KVM_EXIT_IO in port=0x11 size=1",
    "KVM_EXIT_IO out port=0x10 data=[5a]",
    "KVM_EXIT_MMIO write address=0x10000 data=[43]",
    "KVM_EXIT_MMIO write address=0x10000 data=[44]",
    "KVM_EXIT_HLT",
];
/// 64-bit code, under the identity map [`long_mode`] builds.
#[rustfmt::skip]
const LONG_MODE_CODE: &[u8] = &[
    0xB0, 0x64,                                     // mov al, 0x64
    0xE6, 0x10,                                     // out 0x10, al
    0x31, 0xC0,                                     // xor eax, eax
    0x0F, 0xA2,                                     // cpuid
    0xC6, 0x04, 0x25, 0x00, 0x00, 0x01, 0x00, 0x45, // mov byte [0x10000], 0x45
    0xF4,                                           // hlt
];
/// The exits [`LONG_MODE_CODE`] takes.
const LONG_MODE_EXITS: &[&str] = &[
    "KVM_EXIT_IO out port=0x10 data=[64]",
    "KVM_EXIT_MMIO write address=0x10000 data=[45]",
    "KVM_EXIT_HLT",
];
/// The 64-bit VM's paging structures: PML4, PDPT, PD (one 2 MiB page at 0).
const PML4_AT: u64 = 0x2000;
const PDPT_AT: u64 = 0x3000;
const PD_AT: u64 = 0x4000;

pub fn run() -> Result<(), String> {
    let kvm = Kvm::new().map_err(|e| format!("kvm: open /dev/kvm: {e}"))?;
    println!("kvm: api version {}", kvm.get_api_version());
    let real = run_vm(
        &kvm,
        "real-mode",
        REAL_MODE_CODE,
        REAL_MODE_EXITS,
        real_mode,
    )?;
    let long = run_vm(&kvm, "64-bit", LONG_MODE_CODE, LONG_MODE_EXITS, long_mode)?;
    if real && long {
        Ok(())
    } else {
        Err("kvm: a vm did not run as expected".into())
    }
}

/// Real mode as at reset, but CS at 0 (reset has selector F000h, base FFFF0000h). IF set (bit 9;
/// bit 1 is reserved as 1): the host's interrupts exit the VM either way (KVM sets external-
/// interrupt exiting), but Bochs 2.7 lets a guest with IF clear run on without that exit
/// (docs/linux.md). No interrupt is ever delivered into the VM: it has no interrupt controller.
fn real_mode(_: &Memory, sregs: &mut kvm_sregs) -> u64 {
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    0x202
}

/// 64-bit mode (IA-32e, SDM 10.8.5: CR0.PE and PG, CR4.PAE, EFER.LME and LMA) with the first
/// 2 MiB identity-mapped, flat 64-bit code and data segments; RFLAGS as in [`real_mode`].
fn long_mode(memory: &Memory, sregs: &mut kvm_sregs) -> u64 {
    const PRESENT_WRITABLE: u64 = 0b11;
    const PAGE_SIZE_2M: u64 = 1 << 7;
    memory.write(
        PML4_AT as usize,
        &(PDPT_AT | PRESENT_WRITABLE).to_le_bytes(),
    );
    memory.write(PDPT_AT as usize, &(PD_AT | PRESENT_WRITABLE).to_le_bytes());
    memory.write(
        PD_AT as usize,
        &(PAGE_SIZE_2M | PRESENT_WRITABLE).to_le_bytes(),
    );
    let segment = |selector, type_, l, db| kvm_segment {
        base: 0,
        limit: 0xFFFF_FFFF,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db,
        s: 1,
        l,
        g: 1,
        ..Default::default()
    };
    // Code execute/read accessed (11), data read/write accessed (3).
    sregs.cs = segment(0x8, 11, 1, 0);
    let data = segment(0x10, 3, 0, 1);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.cr3 = PML4_AT;
    sregs.cr4 = 1 << 5; // PAE
    sregs.cr0 = 1 << 31 | 1 << 4 | 1; // PG, ET, PE
    sregs.efer = 1 << 10 | 1 << 8; // LMA, LME
    0x202
}

/// One VM: 64 KiB at 0 holding `code` at [`CODE_AT`], one vCPU that `setup` puts in its mode
/// (returning RFLAGS), run until HLT or until it has taken as many exits as `expected` lists.
/// Whether the exits were `expected` is printed and returned; a failed ioctl is an error.
fn run_vm(
    kvm: &Kvm,
    name: &str,
    code: &[u8],
    expected: &[&str],
    setup: fn(&Memory, &mut kvm_sregs) -> u64,
) -> Result<bool, String> {
    // Declared before the VM, so dropped after it: locals drop in reverse order.
    let memory = Memory::new(MEMORY_BYTES)?;
    memory.write(CODE_AT as usize, code);
    let vm = kvm
        .create_vm()
        .map_err(|e| format!("kvm: {name}: KVM_CREATE_VM: {e}"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEMORY_BYTES as u64,
        userspace_addr: memory.address(),
        flags: 0,
    };
    // SAFETY: the mapping outlives the VM (see `memory` above).
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("kvm: {name}: KVM_SET_USER_MEMORY_REGION: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("kvm: {name}: KVM_CREATE_VCPU: {e}"))?;
    println!("kvm: {name} vm and vcpu created");
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("kvm: {name}: KVM_GET_SREGS: {e}"))?;
    let rflags = setup(&memory, &mut sregs);
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("kvm: {name}: KVM_SET_SREGS: {e}"))?;
    let mut regs = vcpu
        .get_regs()
        .map_err(|e| format!("kvm: {name}: KVM_GET_REGS: {e}"))?;
    regs.rip = CODE_AT;
    regs.rflags = rflags;
    vcpu.set_regs(&regs)
        .map_err(|e| format!("kvm: {name}: KVM_SET_REGS: {e}"))?;
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let exit = vcpu
            .run()
            .map_err(|e| format!("kvm: {name}: KVM_RUN: {e}"))?;
        let line = describe(exit);
        println!("kvm: {name} exit {line}");
        let done = line == "KVM_EXIT_HLT";
        seen.push(line);
        if done {
            break;
        }
    }
    let ran = seen == expected;
    println!(
        "kvm: {name} vm ran as expected: {}",
        if ran { "yes" } else { "no" }
    );
    Ok(ran)
}

/// One exit as a line (answering port input with [`PORT_INPUT`]).
fn describe(exit: VcpuExit) -> String {
    match exit {
        VcpuExit::IoOut(port, data) => format!("KVM_EXIT_IO out port={port:#x} data={data:02x?}"),
        VcpuExit::IoIn(port, data) => {
            data.fill(PORT_INPUT);
            format!("KVM_EXIT_IO in port={port:#x} size={}", data.len())
        }
        VcpuExit::MmioWrite(address, data) => {
            format!("KVM_EXIT_MMIO write address={address:#x} data={data:02x?}")
        }
        VcpuExit::Hlt => "KVM_EXIT_HLT".into(),
        other => format!("unexpected {other:?}"),
    }
}

/// An anonymous private mapping: the VM's memory.
struct Memory {
    base: *mut libc::c_void,
    len: usize,
}

impl Memory {
    fn new(len: usize) -> Result<Self, String> {
        // SAFETY: a fresh anonymous mapping, owned by the returned value.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("kvm: mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Self { base, len })
    }

    fn address(&self) -> u64 {
        self.base as u64
    }

    fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len);
        // SAFETY: in bounds (checked above) of a mapping this value owns.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.base.cast::<u8>().add(at),
                bytes.len(),
            )
        };
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; `run` drops the VM that uses it first.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
