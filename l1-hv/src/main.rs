//! l1-hv: a bare-metal L1 hypervisor for Intel VT-x that runs L2 guests under EPT and forwards
//! their events exactly as the hardware would have delivered them.
//!
//! Boot flow: multiboot2 entry (boot/entry.s) → `kmain` → console, GDT/TSS, IDT, boot
//! information, heap → VMX root operation → each multiboot2 module runs as one guest → runs of
//! the same image are compared → one verdict line → power off.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod console;
mod harness;
mod memory;
mod nested;
mod power;

mod guest;

use alloc::vec::Vec;
use boot::{Area, BootInfo, MULTIBOOT2_MAGIC};
use guest::{Extra, MsrBitmaps, Platform};
use harness::RunSpec;
use l1_vmx::{self as vmx, capabilities::Capabilities};
use memory::PhysPages;
use nvmx::insn::VmxCapabilities;
use power::ExitStatus;
use shadow_vmcs::ShadowPolicy;

/// Host-wide VMX resources every guest shares.
pub struct Host {
    /// The CPU's VMX capabilities.
    pub caps: Capabilities,
    /// The VMX capabilities l1-hv offers its guest hypervisors.
    pub offered: VmxCapabilities,
    /// The CPU's physical-address width (CPUID 80000008h:EAX[7:0]).
    pub phys_addr_bits: u8,
    /// Which vmcs12 fields a shadow VMCS serves (depends on IA32_VMX_MISC[29], real and offered).
    pub shadow_policy: ShadowPolicy,
    /// Whether the CPU supports CET (CPUID.(EAX=7,ECX=0):ECX[7] shadow stacks or EDX[20]
    /// indirect-branch tracking): only then does #CP push an error code.
    pub cet: bool,
    /// The MSR bitmaps of the two kinds of guest.
    pub msr_bitmaps: MsrBitmaps,
    /// The firmware's memory map (kernel guests see its non-RAM parts).
    pub areas: Vec<Area>,
    /// What the machine's firmware says about its power and reset ports.
    pub platform: Platform,
}

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

#[no_mangle]
extern "C" fn kmain(magic: u32, mbi: u32) -> ! {
    // SAFETY: RDTSC has no side effects; on Bochs it counts instructions since reset.
    let boot_tsc = unsafe { core::arch::x86_64::_rdtsc() };
    console::init();
    arch::gdt::init();
    arch::idt::init();
    arch::mask_legacy_pic();
    println!("l1-hv: booting (tsc={boot_tsc})");
    if magic != MULTIBOOT2_MAGIC {
        fail(format_args!(
            "not started by a multiboot2 loader (EAX={magic:#x})"
        ));
    }
    let kernel = boot::Range {
        start: &raw const __kernel_start as u64,
        end: &raw const __kernel_end as u64,
    };
    // SAFETY: EBX from a multiboot2 loader; nothing has been written over it yet.
    let info = match unsafe { BootInfo::parse(mbi, kernel) } {
        Ok(info) => info,
        Err(e) => fail(format_args!("boot information unusable: {e:?}")),
    };
    let Some(heap) = memory::init(&info) else {
        fail(format_args!("no free RAM for the heap"))
    };
    println!("l1-hv: heap {} MiB", heap >> 20);

    let Some(mut vmxon_region) = PhysPages::page() else {
        fail(format_args!("out of memory"))
    };
    let region_phys = vmxon_region.phys();
    let region: &mut [u8; 4096] = vmxon_region.bytes_mut().try_into().expect("one page");
    // SAFETY: CPL 0; the page is identity-mapped and is never freed (leaked below).
    let caps = match unsafe { vmx::bringup::enter_vmx_root(region, region_phys) } {
        Ok(caps) => caps,
        Err(e) => {
            println!("l1-hv: {e}");
            println!("l1-hv: verdict NO-VMX");
            power::exit(ExitStatus::NoVmx);
        }
    };
    // l1-hv stays in VMX operation until power-off: the VMXON region must outlive everything.
    core::mem::forget(vmxon_region);
    println!(
        "l1-hv: VMX root operation (VMCS revision {:#x})",
        caps.revision_id()
    );
    // SAFETY: VMX is present (VMXON succeeded).
    let offered = unsafe { caps.raw_msrs() }.for_guest(false);
    let phys_addr_bits = x86::cpuid::CpuId::new()
        .get_processor_capacity_feature_info()
        .map_or(36, |info| info.physical_address_bits());
    // SAFETY: as above.
    let shadow_policy = ShadowPolicy::new(unsafe { caps.misc() }, offered.misc);
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let cet = leaf7.ecx & (1 << 7) != 0 || leaf7.edx & (1 << 20) != 0;
    let Some(msr_bitmaps) = MsrBitmaps::new() else {
        fail(format_args!("out of memory"))
    };
    arch::enable_xsave();
    let platform = Platform::discover();
    println!("l1-hv: {platform}");
    let areas = info.areas().to_vec();
    let host = Host {
        caps,
        offered,
        phys_addr_bits,
        shadow_policy,
        cet,
        msr_bitmaps,
        areas,
        platform,
    };

    let mut runs = harness::Runs::new();
    let modules: Vec<_> = info.modules().collect();
    let mut index = 0;
    for (position, module) in modules.iter().enumerate() {
        // A module line starting with `+` belongs to the guest before it.
        if module.cmdline().starts_with('+') {
            continue;
        }
        let extras: Vec<Extra> = modules[position + 1..]
            .iter()
            .map_while(|m| {
                m.cmdline().strip_prefix('+').map(|rest| Extra {
                    bytes: m.bytes(),
                    cmdline: rest.trim(),
                })
            })
            .collect();
        index += 1;
        match RunSpec::parse(module.cmdline()) {
            Ok(spec) => runs.run(&host, spec, module.bytes(), &extras, index, boot_tsc),
            Err(word) => runs.reject(module.cmdline(), word),
        }
    }
    let status = runs.verdict();
    power::exit(status)
}

/// Ends the run when l1-hv itself cannot go on.
fn fail(why: core::fmt::Arguments) -> ! {
    println!("l1-hv: {why}");
    println!("l1-hv: verdict FAIL");
    power::exit(ExitStatus::Fail)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("l1-hv: PANIC: {info}");
    println!("l1-hv: verdict FAIL (panic)");
    power::exit(ExitStatus::Fail)
}
