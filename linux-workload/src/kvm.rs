//! `kvm`: the smallest VMM, to see whether the guest's own KVM runs VMs (issue 14): four VMs,
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
//!
//! The third VM, 64-bit too, runs [`exceptions`]: it raises exceptions and reports what its own
//! handlers saw; a fourth runs it again with the VMM debugging it (KVM_SET_GUEST_DEBUG), so
//! that its INT3 and single steps exit to the VMM. `kvm exceptions` runs only the third, for a
//! second configuration of kvm_intel (`ept=0`: KVM intercepts #PF). Each VM's name says which
//! configuration it ran in. Every line starts with `vmm: `.

mod exceptions;

use kvm_bindings::{
    kvm_debug_exit_arch, kvm_guest_debug, kvm_segment, kvm_sregs, kvm_userspace_memory_region,
    KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_SW_BP,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};

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
/// The 64-bit VMs' paging structures: PML4, PDPT, PD (one 2 MiB page at 0).
const PML4_AT: u64 = 0x2000;
const PDPT_AT: u64 = 0x3000;
const PD_AT: u64 = 0x4000;
/// The 64-bit VMs' GDT: null, code (selector 8), data (selector 0x10). IRETQ loads CS and SS
/// from it, so it must hold what [`long_mode`] puts in the segment registers.
const GDT_AT: u64 = 0x5000;
/// How many instructions the VMM single-steps after the debugged VM's INT3.
const SINGLE_STEPS: u32 = 3;
/// How many times the undebugged exception VM times each event (`test-matrix bench-kvm`
/// reads the figures); the debugged one times none, its INT3 and steps are the VMM's.
const TIMED_ITERATIONS: u64 = 1000;
const _: () = assert!(TIMED_ITERATIONS <= exceptions::MAX_ITERATIONS);

/// Which VMs `linux-workload kvm` runs: all in kvm_intel's first configuration, the one
/// whose exits depend on it in the next.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Vms {
    /// All four.
    All,
    /// The exception VM, undebugged.
    Exceptions,
}

pub fn run(vms: Vms) -> Result<(), String> {
    let kvm = Kvm::new().map_err(|e| format!("vmm: open /dev/kvm: {e}"))?;
    println!("vmm: api version {}", kvm.get_api_version());
    // Whether kvm_intel uses EPT or shadow paging changes which exceptions it intercepts.
    let ept = std::fs::read_to_string("/sys/module/kvm_intel/parameters/ept")
        .map_err(|e| format!("vmm: kvm_intel's ept parameter: {e}"))?;
    let ept = format!("ept={}", ept.trim());
    let exceptions = |debugged| Vm {
        name: if debugged {
            format!("exceptions {ept} guest-debug")
        } else {
            format!("exceptions {ept}")
        },
        code: exceptions::code(),
        expected: if debugged {
            exceptions::EXITS_DEBUGGED
        } else {
            exceptions::EXITS
        },
        setup: long_mode,
        debugged,
        timed: if debugged { 0 } else { TIMED_ITERATIONS },
    };
    let mut list = Vec::new();
    if vms == Vms::All {
        list.push(Vm {
            name: "real-mode".into(),
            code: REAL_MODE_CODE,
            expected: REAL_MODE_EXITS,
            setup: real_mode,
            debugged: false,
            timed: 0,
        });
        list.push(Vm {
            name: "64-bit".into(),
            code: LONG_MODE_CODE,
            expected: LONG_MODE_EXITS,
            setup: long_mode,
            debugged: false,
            timed: 0,
        });
    }
    list.push(exceptions(false));
    if vms == Vms::All {
        list.push(exceptions(true));
    }
    let mut all_ran = true;
    for vm in &list {
        all_ran &= run_vm(&kvm, vm)?;
    }
    if all_ran {
        Ok(())
    } else {
        Err("vmm: a vm did not run as expected".into())
    }
}

/// A VM to run: its code at [`CODE_AT`], the exits it must take (as [`describe`] prints
/// them), how to put its vCPU in its mode (returning RFLAGS), whether the VMM debugs it, and
/// how many iterations of each timed loop the exception code runs (in R12).
struct Vm {
    name: String,
    code: &'static [u8],
    expected: &'static [&'static str],
    setup: fn(&Memory, &mut kvm_sregs) -> u64,
    debugged: bool,
    timed: u64,
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
/// 2 MiB identity-mapped, flat 64-bit code and data segments described in a GDT; RFLAGS as in
/// [`real_mode`].
fn long_mode(memory: &Memory, sregs: &mut kvm_sregs) -> u64 {
    const PRESENT_WRITABLE: u64 = 0b11;
    const PAGE_SIZE_2M: u64 = 1 << 7;
    // Base 0, limit FFFFFh in 4 KiB units; code: access 9Bh (present, DPL 0, execute/read,
    // accessed), L; data: access 93h (present, DPL 0, read/write, accessed), D/B (SDM 3.4.5).
    const GDT: [u64; 3] = [0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF];
    for (i, descriptor) in GDT.iter().enumerate() {
        memory.write(GDT_AT as usize + 8 * i, &descriptor.to_le_bytes());
    }
    sregs.gdt.base = GDT_AT;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
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

/// Runs `vm` (64 KiB at 0, one vCPU) until HLT or until it has taken as many exits as it
/// expects. Whether the exits were those expected is printed and returned; a failed ioctl is
/// an error.
fn run_vm(kvm: &Kvm, vm: &Vm) -> Result<bool, String> {
    let name = vm.name.as_str();
    let fail = |what: &'static str| move |e| format!("vmm: {name}: {what}: {e}");
    // Declared before the VM, so dropped after it: locals drop in reverse order.
    let memory = Memory::new(MEMORY_BYTES)?;
    memory.write(CODE_AT as usize, vm.code);
    let fd = kvm.create_vm().map_err(fail("KVM_CREATE_VM"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEMORY_BYTES as u64,
        userspace_addr: memory.address(),
        flags: 0,
    };
    // SAFETY: the mapping outlives the VM (see `memory` above).
    unsafe { fd.set_user_memory_region(region) }.map_err(fail("KVM_SET_USER_MEMORY_REGION"))?;
    let mut vcpu = fd.create_vcpu(0).map_err(fail("KVM_CREATE_VCPU"))?;
    println!("vmm: {name} vm and vcpu created");
    let mut sregs = vcpu.get_sregs().map_err(fail("KVM_GET_SREGS"))?;
    let rflags = (vm.setup)(&memory, &mut sregs);
    vcpu.set_sregs(&sregs).map_err(fail("KVM_SET_SREGS"))?;
    let mut regs = vcpu.get_regs().map_err(fail("KVM_GET_REGS"))?;
    regs.rip = CODE_AT;
    regs.rflags = rflags;
    regs.r12 = vm.timed;
    vcpu.set_regs(&regs).map_err(fail("KVM_SET_REGS"))?;
    if vm.debugged {
        set_guest_debug(&vcpu, false).map_err(fail("KVM_SET_GUEST_DEBUG"))?;
    }
    let mut steps_left = 0;
    let mut seen = Vec::new();
    while seen.len() < vm.expected.len() {
        let exit = vcpu.run().map_err(fail("KVM_RUN"))?;
        // A timed loop's figures: not an exit the VM is expected to take (they differ from
        // run to run, and between bare and nested), so printed apart from the `vmm: ` lines.
        if let VcpuExit::IoOut(exceptions::BENCH_PORT, data) = exit {
            let config = name.replace(' ', "-");
            println!(
                "{}",
                exceptions::bench_line(&config, data[0], vm.timed, &memory)
            );
            continue;
        }
        let debug = match exit {
            VcpuExit::Debug(debug) => Some(debug),
            _ => None,
        };
        let line = describe(exit, &memory);
        println!("vmm: {name} exit {line}");
        let done = line == "KVM_EXIT_HLT";
        seen.push(line);
        if done {
            break;
        }
        match debug.map(|d| d.exception) {
            // The INT3: the VM exit it caused saved the INT3's own RIP (an exception that causes
            // a VM exit is not delivered, SDM "Saving RIP"), so the VMM steps over it by hand,
            // then single-steps.
            Some(BP_VECTOR) => {
                let mut regs = vcpu.get_regs().map_err(fail("KVM_GET_REGS"))?;
                regs.rip += 1;
                vcpu.set_regs(&regs).map_err(fail("KVM_SET_REGS"))?;
                steps_left = SINGLE_STEPS;
                set_guest_debug(&vcpu, true).map_err(fail("KVM_SET_GUEST_DEBUG"))?;
            }
            Some(DB_VECTOR) => {
                steps_left = steps_left.saturating_sub(1);
                if steps_left == 0 {
                    set_guest_debug(&vcpu, false).map_err(fail("KVM_SET_GUEST_DEBUG"))?;
                }
            }
            _ => {}
        }
    }
    let ran = seen == vm.expected;
    println!(
        "vmm: {name} vm ran as expected: {}",
        if ran { "yes" } else { "no" }
    );
    Ok(ran)
}

/// #DB and #BP, as KVM_EXIT_DEBUG names the exception.
const DB_VECTOR: u32 = 1;
const BP_VECTOR: u32 = 3;

/// Debugs the vCPU with software breakpoints (an INT3 exits to the VMM), and with
/// single-stepping (each instruction exits to the VMM) if `single_step`.
fn set_guest_debug(vcpu: &VcpuFd, single_step: bool) -> Result<(), kvm_ioctls::Error> {
    let mut control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
    if single_step {
        control |= KVM_GUESTDBG_SINGLESTEP;
    }
    vcpu.set_guest_debug(&kvm_guest_debug {
        control,
        ..Default::default()
    })
}

/// One exit as a line (answering port input with [`PORT_INPUT`]); on the exception VM's
/// report port, what its handler reported.
fn describe(exit: VcpuExit, memory: &Memory) -> String {
    match exit {
        VcpuExit::IoOut(exceptions::REPORT_PORT, _) => exceptions::describe_report(memory),
        VcpuExit::IoOut(port, data) => format!("KVM_EXIT_IO out port={port:#x} data={data:02x?}"),
        VcpuExit::IoIn(port, data) => {
            data.fill(PORT_INPUT);
            format!("KVM_EXIT_IO in port={port:#x} size={}", data.len())
        }
        VcpuExit::MmioWrite(address, data) => {
            format!("KVM_EXIT_MMIO write address={address:#x} data={data:02x?}")
        }
        VcpuExit::Hlt => "KVM_EXIT_HLT".into(),
        VcpuExit::Debug(debug) => describe_debug(&debug),
        other => format!("unexpected {other:?}"),
    }
}

/// A KVM_EXIT_DEBUG of the exception VM: the exception and its RIP relative to the INT3.
fn describe_debug(debug: &kvm_debug_exit_arch) -> String {
    let name = match debug.exception {
        DB_VECTOR => "#DB".to_string(),
        BP_VECTOR => "#BP".to_string(),
        other => format!("vector {other}"),
    };
    let int3 = exceptions::int3_address();
    let pc = match debug.pc.checked_sub(int3) {
        Some(0) => "int3".to_string(),
        Some(distance) => format!("int3+{distance}"),
        None => format!("{:#x}", debug.pc),
    };
    format!("KVM_EXIT_DEBUG {name} pc={pc}")
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
            return Err(format!("vmm: mmap: {}", std::io::Error::last_os_error()));
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

    fn read_u32(&self, at: usize) -> u32 {
        assert!(at + 4 <= self.len);
        // SAFETY: in bounds (checked above) of a mapping this value owns.
        unsafe {
            self.base
                .cast::<u8>()
                .add(at)
                .cast::<u32>()
                .read_unaligned()
        }
    }

    fn read_u64(&self, at: usize) -> u64 {
        assert!(at + 8 <= self.len);
        // SAFETY: in bounds (checked above) of a mapping this value owns.
        unsafe {
            self.base
                .cast::<u8>()
                .add(at)
                .cast::<u64>()
                .read_unaligned()
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; `run` drops the VM that uses it first.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
