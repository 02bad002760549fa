//! `kvm`: the smallest VMM, to see whether the guest's own KVM runs a VM (issue 14): one VM with
//! 64 KiB of memory at guest-physical 0 and one vCPU in real mode running [`CODE`], which takes
//! each kind of exit a VMM sees first: port output and input (KVM_EXIT_IO), a write outside the
//! VM's memory, twice (KVM_EXIT_MMIO: under EPT, KVM learns of the first through an EPT
//! violation and marks the page for MMIO with a misconfigured EPT entry, so the second comes
//! through an EPT misconfiguration), CPUID and a busy loop that KVM handles without leaving the
//! kernel (16 M iterations: the host's timer interrupts arrive while the VM runs, each a VM exit
//! that KVM handles and resumes from), and HLT (KVM_EXIT_HLT). Each exit is printed; a step that fails is printed with its errno.
//! Under a hypervisor that runs Linux, this VM is that hypervisor's L3 (in l1-hv's levels).

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};

/// Guest-physical size of the VM's memory, mapped at 0.
const MEMORY_BYTES: usize = 64 << 10;
/// Where the code sits and the vCPU starts (CS base 0, IP 0x1000).
const CODE_AT: u64 = 0x1000;
/// The value the VMM answers the port input with; the code writes it back out.
const PORT_INPUT: u8 = 0x5a;
/// Real-mode code, assembled by hand (16-bit operand size unless prefixed with 66h).
#[rustfmt::skip]
const CODE: [u8; 41] = [
    0xB0, 0x42,                         // mov al, 0x42
    0xE6, 0x10,                         // out 0x10, al
    0xE4, 0x11,                         // in al, 0x11
    0xE6, 0x10,                         // out 0x10, al
    0x66, 0x31, 0xC0,                   // xor eax, eax
    0x0F, 0xA2,                         // cpuid
    0x66, 0xB9, 0x00, 0x00, 0x00, 0x01, // mov ecx, 0x1000000
    0x66, 0x49,                         // dec ecx
    0x75, 0xFC,                         // jnz (the dec)
    0xB8, 0x00, 0x10,                   // mov ax, 0x1000
    0x8E, 0xD8,                         // mov ds, ax: DS base 0x10000, past the VM's memory
    0xC6, 0x06, 0x00, 0x00, 0x43,       // mov byte [0], 0x43
    0xC6, 0x06, 0x00, 0x00, 0x44,       // mov byte [0], 0x44
    0xF4,                               // hlt
    0xF4, 0xF4,                         // (never reached)
];
/// The exits [`CODE`] takes, in order, as [`describe`] prints them.
const EXPECTED: [&str; 6] = [
    "KVM_EXIT_IO out port=0x10 data=[42]",
    "KVM_EXIT_IO in port=0x11 size=1",
    "KVM_EXIT_IO out port=0x10 data=[5a]",
    "KVM_EXIT_MMIO write address=0x10000 data=[43]",
    "KVM_EXIT_MMIO write address=0x10000 data=[44]",
    "KVM_EXIT_HLT",
];

pub fn run() -> Result<(), String> {
    // Declared before the VM, so dropped after it: locals drop in reverse order.
    let memory = Memory::new(MEMORY_BYTES)?;
    memory.write(CODE_AT as usize, &CODE);
    let kvm = Kvm::new().map_err(|e| format!("kvm: open /dev/kvm: {e}"))?;
    println!("kvm: api version {}", kvm.get_api_version());
    let vm = kvm
        .create_vm()
        .map_err(|e| format!("kvm: KVM_CREATE_VM: {e}"))?;
    println!("kvm: vm created");
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEMORY_BYTES as u64,
        userspace_addr: memory.address(),
        flags: 0,
    };
    // SAFETY: the mapping outlives the VM (see `memory` above).
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("kvm: KVM_SET_USER_MEMORY_REGION: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("kvm: KVM_CREATE_VCPU: {e}"))?;
    println!("kvm: vcpu created");
    // Real mode at reset is CS selector F000h with base FFFF0000h; point CS at 0 instead.
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("kvm: KVM_GET_SREGS: {e}"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("kvm: KVM_SET_SREGS: {e}"))?;
    let mut regs = vcpu
        .get_regs()
        .map_err(|e| format!("kvm: KVM_GET_REGS: {e}"))?;
    regs.rip = CODE_AT;
    // IF set (bit 9; bit 1 is reserved as 1): the host's interrupts exit the VM either way
    // (KVM sets external-interrupt exiting), but Bochs 2.7 lets a guest with IF clear run on
    // without that exit (docs/linux.md). No interrupt is ever delivered into this VM: it has no
    // interrupt controller.
    regs.rflags = 0x202;
    vcpu.set_regs(&regs)
        .map_err(|e| format!("kvm: KVM_SET_REGS: {e}"))?;
    let mut seen = Vec::new();
    while seen.len() < EXPECTED.len() {
        let exit = vcpu.run().map_err(|e| format!("kvm: KVM_RUN: {e}"))?;
        let line = describe(exit);
        println!("kvm: exit {line}");
        let done = line == "KVM_EXIT_HLT";
        seen.push(line);
        if done {
            break;
        }
    }
    let regs = vcpu
        .get_regs()
        .map_err(|e| format!("kvm: KVM_GET_REGS: {e}"))?;
    // CPUID leaf 0 left the highest basic leaf in EAX (not 0 on any processor); the loop left
    // ECX at 0.
    let ran = seen == EXPECTED && regs.rcx == 0 && regs.rax != 0;
    println!(
        "kvm: vm ran as expected: {}",
        if ran { "yes" } else { "no" }
    );
    if ran {
        Ok(())
    } else {
        Err(format!(
            "kvm: exits {seen:?}, rcx={:#x} rax={:#x}",
            regs.rcx, regs.rax
        ))
    }
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
