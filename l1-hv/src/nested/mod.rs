//! Virtual VT-x for L2 guest hypervisors: l1-hv emulates their VMX instructions with
//! `nvmx::insn`, keeps their vmcs12 in their own memory (mirrored into a hardware shadow VMCS),
//! and runs their L3 guests on a vmcs02 it builds (`entry`), reflecting L3's exits back to them
//! or handling them itself (`l3_exit`). docs/nested.md walks through it.

pub mod entry;
mod ept02;
mod hw;
mod l2_context;
pub mod l3_exit;
mod shadow;
mod stats;

pub use l2_context::{L2Context, L2Memory};
pub use shadow::ShadowVmcs;
pub use stats::NestedStats;

use crate::memory::PhysPages;
use ept02::Ept02;
use hw::Hardware;
use l1_vmx::HostRsp;

use l1_vmx::current_vmcs::CurrentVmcs;
use nvmx::event::Event;
use nvmx::exit_reason;
use nvmx::insn::{
    decode_field_access, decode_invalidation, decode_pointer_operand, Fault, NestedVmx, Outcome,
    VmxCapabilities,
};
use nvmx::nested::NestedVcpu;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::{guest, ro};

/// IA32_FEATURE_CONTROL as l1-hv's guests read it: locked, VMXON outside SMX allowed.
pub const GUEST_FEATURE_CONTROL: u64 = 0b101;

/// One L2 vCPU's virtual VMX state.
pub struct Nested {
    /// The nested engine: VMX-operation state, the current vmcs12 (SDM 24.1, 24.11) and what
    /// vmcs02 and the shadow VMCS hold of it.
    pub engine: NestedVcpu,
    /// The hardware shadow of the current vmcs12, when l1-hv uses VMCS shadowing for this guest.
    pub shadow: Option<ShadowVmcs>,
    /// The L3 side of the vCPU, from the first nested VM entry on.
    pub l3: Option<L3Vcpu>,
    /// Whether the vCPU is running L3 now (vmcs02 current) rather than L2 (vmcs01 current).
    pub in_l3: bool,
    /// Counters for the run report.
    pub stats: NestedStats,
}

/// What l1-hv keeps to run L3: vmcs02 and the composed EPT.
pub struct L3Vcpu {
    vmcs02: PhysPages,
    /// Whether vmcs02 has been launched.
    pub launched: bool,
    /// Host RSP last written into vmcs02.
    pub host_rsp: HostRsp,
    ept02: Ept02,
    /// The guest hypervisor's EPTP that `ept02` was composed from.
    eptp12: u64,
    /// vmcs02's virtual-APIC page when vmcs12's is not RAM (see [`L3Vcpu::absent_page`]).
    absent: PhysPages,
}

impl Nested {
    /// A vCPU outside VMX operation, offered `caps`; `shadow` mirrors vmcs12 if given.
    pub fn new(caps: VmxCapabilities, phys_addr_bits: u8, shadow: Option<ShadowVmcs>) -> Self {
        let engine = NestedVcpu::new(
            caps,
            phys_addr_bits,
            shadow.as_ref().map(ShadowVmcs::policy),
        );
        Self {
            engine,
            shadow,
            l3: None,
            in_l3: false,
            stats: NestedStats::default(),
        }
    }

    /// The engine's view of this vCPU's VMCSs.
    ///
    /// # Safety
    /// vmcs02 (`self.in_l3`) or else vmcs01 (at `vmcs01_phys`) must be current.
    unsafe fn hardware(&self, vmcs01_phys: u64) -> Hardware {
        let (vmcs02, fresh) = match &self.l3 {
            Some(l3) => (Some(l3.vmcs02.phys()), !l3.launched),
            None => (None, false),
        };
        Hardware::new(
            self.in_l3,
            vmcs01_phys,
            vmcs02,
            fresh,
            self.shadow.as_ref().map(ShadowVmcs::phys),
        )
    }
}

/// What the VMX instruction exit asks of the run loop.
pub enum InstructionEnd {
    /// Resume L2 (the instruction completed, failed architecturally, or faulted into L2).
    Resume,
    /// Inject this fault into L2 (RIP stays at the instruction).
    Fault(Event),
    /// VMLAUNCH (`launch`) or VMRESUME passed the instruction checks: enter L3.
    Enter { launch: bool },
}

/// Emulates the VMX instruction that caused `reason` in L2 through the nested engine, which
/// keeps vmcs12, the shadow VMCS and vmcs02 in step; links the shadow anew when the current
/// vmcs12 changed.
// Not inlined into the run loop or the L2 exit dispatch: the nested paths inline many vmcs12
// accesses, which would otherwise weigh on every other exit path.
#[inline(never)]
pub fn emulate_instruction(
    nested: &mut Nested,
    cx: &mut L2Context<'_, CurrentVmcs>,
    reason: u16,
    vmcs01_phys: u64,
) -> InstructionEnd {
    // SAFETY: L2 exited, so vmcs01 is current.
    let mut hw = unsafe { nested.hardware(vmcs01_phys) };
    let Nested {
        engine, l3, shadow, ..
    } = nested;
    let (end, changed) =
        engine.instruction(&mut hw, reason, |vmx| emulate(vmx, l3.as_mut(), cx, reason));
    if let (Some(shadow), true) = (shadow, changed) {
        shadow.link(cx.vmcs, engine.vmx().current_vmcs_pointer().is_some());
    }
    end
}

fn emulate<V: Vmcs>(
    vmx: &mut NestedVmx,
    l3: Option<&mut L3Vcpu>,
    cx: &mut L2Context<'_, V>,
    reason: u16,
) -> InstructionEnd {
    let info = cx.vmcs.read(ro::VMEXIT_INSTRUCTION_INFO) as u32;
    let qualification = cx.vmcs.read(ro::EXIT_QUALIFICATION);
    let mode = cx.mode();
    let outcome = match reason {
        exit_reason::VMXON | exit_reason::VMCLEAR | exit_reason::VMPTRLD | exit_reason::VMPTRST => {
            match decode_pointer_operand(info, qualification) {
                Ok(op) => match reason {
                    exit_reason::VMXON => vmx.vmxon(&mode, GUEST_FEATURE_CONTROL, cx, &op),
                    exit_reason::VMCLEAR => vmx.vmclear(&mode, cx, &op),
                    exit_reason::VMPTRLD => vmx.vmptrld(&mode, cx, &op),
                    _ => vmx.vmptrst(&mode, cx, &op),
                },
                Err(_) => Outcome::Fault(Fault::Ud),
            }
        }
        exit_reason::VMREAD | exit_reason::VMWRITE => {
            match decode_field_access(info, qualification) {
                Ok(ops) if reason == exit_reason::VMREAD => vmx.vmread(&mode, cx, &ops),
                Ok(ops) => vmx.vmwrite(&mode, cx, &ops),
                Err(_) => Outcome::Fault(Fault::Ud),
            }
        }
        exit_reason::INVEPT | exit_reason::INVVPID => {
            match decode_invalidation(info, qualification) {
                Ok(ops) if reason == exit_reason::INVEPT => vmx.invept(&mode, cx, &ops),
                Ok(ops) => vmx.invvpid(&mode, cx, &ops),
                Err(_) => Outcome::Fault(Fault::Ud),
            }
        }
        exit_reason::VMXOFF => vmx.vmxoff(&mode, cx),
        exit_reason::VMLAUNCH | exit_reason::VMRESUME => {
            let blocked_by_mov_ss = cx.vmcs.read(guest::INTERRUPTIBILITY_STATE) & 2 != 0;
            if reason == exit_reason::VMLAUNCH {
                vmx.vmlaunch(&mode, blocked_by_mov_ss)
            } else {
                vmx.vmresume(&mode, blocked_by_mov_ss)
            }
        }
        _ => Outcome::Fault(Fault::Ud),
    };
    match outcome {
        Outcome::Fault(fault) => InstructionEnd::Fault(fault_event(fault)),
        Outcome::Enter { launch } => InstructionEnd::Enter { launch },
        // l1-hv's composed EPT is rebuilt on demand and VPIDs are l1-hv's own: dropping EPT02
        // and flushing all of the CPU's EPT-derived translations covers every INVEPT/INVVPID
        // type (SDM 29.4.3).
        Outcome::Invalidate(_) => {
            // EPT02 caches the guest hypervisor's EPT: drop it (refilled on demand), and every
            // translation the CPU derived from it.
            if let Some(l3) = l3 {
                l3.ept02.clear();
            }
            // SAFETY: CPL 0 in VMX root operation; INVEPT support was checked at bring-up.
            let _ = unsafe { l1_vmx::instructions::invept_all_contexts() };
            complete(cx, Outcome::Succeed)
        }
        done => complete(cx, done),
    }
}

/// Applies VMsucceed/VMfail to RFLAGS (SDM 31.2) and steps over the instruction.
pub fn complete<V: Vmcs>(cx: &mut L2Context<'_, V>, outcome: Outcome) -> InstructionEnd {
    if let Some(rflags) = outcome.rflags(cx.vmcs.read(guest::RFLAGS)) {
        cx.vmcs.write(guest::RFLAGS, rflags);
    }
    let rip = cx.vmcs.read(guest::RIP) + cx.vmcs.read(ro::VMEXIT_INSTRUCTION_LEN);
    cx.vmcs.write(guest::RIP, rip);
    InstructionEnd::Resume
}

/// The exception a faulting VMX instruction raises in L2.
pub fn fault_event(fault: Fault) -> Event {
    match fault {
        Fault::Ud => Event::hardware_exception(x86::irq::INVALID_OPCODE_VECTOR, 0),
        Fault::Gp(code) => {
            Event::hardware_exception(x86::irq::GENERAL_PROTECTION_FAULT_VECTOR, code)
        }
        Fault::Ss(code) => Event::hardware_exception(x86::irq::STACK_SEGEMENT_FAULT_VECTOR, code),
        Fault::Pf { linear, error_code } => Event::page_fault(error_code, linear),
    }
}
