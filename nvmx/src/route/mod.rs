//! The routing decision: for an event that arises while a guest runs, does it cause a VM exit to
//! the hypervisor governing that guest (and with which exit information), or is it delivered
//! through the guest's IDT, possibly promoted to #DF, or ending in a triple fault?
//!
//! Pure functions over the governing hypervisor's [`InterceptControls`]. l1-hv asks it as
//! virtual hardware for an L2 guest hypervisor (events of its L3 guest, controls from vmcs12)
//! and, with no controls set, when it injects an event into its own L2 guest.
//!
//! Order of the decision (what VT-x does; SDM 25.2, Table 6-5, 27.2.4): the new exception is
//! checked against the exception bitmap *before* it is combined with the event being delivered;
//! only an exception that is not intercepted can be promoted to #DF, and the #DF is then checked
//! against the bitmap itself.

#[cfg(test)]
mod tests;

use crate::event::{Event, ExceptionClass, InterruptionInfo, InterruptionType};
use shadow_vmcs::Vmcs;
use x86::irq::{DEBUG_VECTOR, PAGE_FAULT_VECTOR};
use x86::vmx::vmcs::control::{
    ExitControls, PinbasedControls, EXCEPTION_BITMAP, PAGE_FAULT_ERR_CODE_MASK,
    PAGE_FAULT_ERR_CODE_MATCH, PINBASED_EXEC_CONTROLS, VMEXIT_CONTROLS,
};
use x86::vmx::vmcs::ro;

/// The VM-execution and VM-exit controls of the governing hypervisor that decide interception.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InterceptControls {
    /// Exception bitmap: bit n set makes exception n cause a VM exit (SDM 25.6.3).
    pub exception_bitmap: u32,
    /// Page-fault error-code mask.
    pub pfec_mask: u32,
    /// Page-fault error-code match.
    pub pfec_match: u32,
    /// Pin-based "NMI exiting".
    pub nmi_exiting: bool,
    /// Pin-based "external-interrupt exiting".
    pub external_interrupt_exiting: bool,
    /// VM-exit control "acknowledge interrupt on exit".
    pub ack_interrupt_on_exit: bool,
}

impl InterceptControls {
    /// Reads the controls from a VMCS (vmcs12 of a guest hypervisor, or l1-hv's own).
    pub fn from_vmcs(vmcs: &impl Vmcs) -> Self {
        let pin = PinbasedControls::from_bits_truncate(vmcs.read(PINBASED_EXEC_CONTROLS) as u32);
        let exit = ExitControls::from_bits_truncate(vmcs.read(VMEXIT_CONTROLS) as u32);
        Self {
            exception_bitmap: vmcs.read(EXCEPTION_BITMAP) as u32,
            pfec_mask: vmcs.read(PAGE_FAULT_ERR_CODE_MASK) as u32,
            pfec_match: vmcs.read(PAGE_FAULT_ERR_CODE_MATCH) as u32,
            nmi_exiting: pin.contains(PinbasedControls::NMI_EXITING),
            external_interrupt_exiting: pin.contains(PinbasedControls::EXTERNAL_INTERRUPT_EXITING),
            ack_interrupt_on_exit: exit.contains(ExitControls::ACK_INTERRUPT_ON_EXIT),
        }
    }

    fn bitmap_bit(&self, vector: u8) -> bool {
        vector < 32 && self.exception_bitmap & (1 << vector) != 0
    }
}

/// Whether `event`, arising in the guest (not injected by VM entry), causes a VM exit
/// (SDM 25.2): exceptions by the exception bitmap — #PF by the PFEC rule, exit iff
/// `((ec & mask) == match) == bitmap[14]` — and `INT1`, `INT3`, `INTO` by the bitmap too;
/// NMIs by "NMI exiting"; external interrupts by "external-interrupt exiting"; `INT n` never.
pub fn intercepts(controls: &InterceptControls, event: &Event) -> bool {
    match event.kind {
        InterruptionType::ExternalInterrupt => controls.external_interrupt_exiting,
        InterruptionType::Nmi => controls.nmi_exiting,
        InterruptionType::HardwareException if event.vector == PAGE_FAULT_VECTOR => {
            let matches = u32::from(event.error_code) & controls.pfec_mask == controls.pfec_match;
            matches == controls.bitmap_bit(PAGE_FAULT_VECTOR)
        }
        InterruptionType::HardwareException
        | InterruptionType::PrivilegedSoftwareException
        | InterruptionType::SoftwareException => controls.bitmap_bit(event.vector),
        InterruptionType::SoftwareInterrupt | InterruptionType::OtherEvent => false,
    }
}

/// The result of a second exception arising while the first is delivered (SDM Table 6-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Combination {
    /// Deliver the second exception; the first is abandoned (re-executing the instruction
    /// regenerates it).
    Serial,
    /// Deliver #DF with error code 0 instead.
    DoubleFault,
    /// The processor shuts down (triple fault), which VMX turns into a VM exit.
    TripleFault,
}

/// Table 6-5, extended by the #DF row of SDM 6.15 (Interrupt 8): a contributory exception or
/// page fault while delivering #DF is a triple fault, a benign one is handled serially.
pub const fn combine(first: ExceptionClass, second: ExceptionClass) -> Combination {
    use ExceptionClass::*;
    match (first, second) {
        (DoubleFault, Contributory | PageFault | DoubleFault) => Combination::TripleFault,
        (Contributory, Contributory | DoubleFault)
        | (PageFault, Contributory | PageFault | DoubleFault) => Combination::DoubleFault,
        _ => Combination::Serial,
    }
}

/// Basic exit reasons of the exits routing produces (SDM Appendix C).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ExitReason {
    /// Exception or NMI (0).
    ExceptionOrNmi = 0,
    /// External interrupt (1).
    ExternalInterrupt = 1,
    /// Triple fault (2).
    TripleFault = 2,
}

/// Exit information for a VM exit caused by an event (SDM 27.2.1–27.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExitInfo {
    /// Basic exit reason.
    pub reason: ExitReason,
    /// VM-exit interruption information; invalid for triple faults and for external interrupts
    /// without "acknowledge interrupt on exit".
    pub interruption_info: InterruptionInfo,
    /// VM-exit interruption error code, present iff `interruption_info` has bit 11 set.
    pub interruption_error_code: Option<u16>,
    /// Exit qualification: the faulting linear address for #PF (guest CR2 is not written), the
    /// DR6-format bits B0–B3, BD, BS for #DB, else 0.
    pub qualification: u64,
    /// IDT-vectoring information: the event whose delivery the exit interrupted, or invalid.
    pub idt_vectoring_info: InterruptionInfo,
    /// IDT-vectoring error code, present iff `idt_vectoring_info` has bit 11 set.
    pub idt_vectoring_error_code: Option<u16>,
    /// VM-exit instruction length, for exits caused by, or during delivery of, a software-type
    /// event (SDM 27.2.5).
    pub instruction_length: Option<u8>,
}

impl ExitInfo {
    /// Writes the exit-information fields into `vmcs` (a guest hypervisor's vmcs12 on a virtual
    /// VM exit). Fields this exit leaves undefined are not written.
    pub fn write_to(&self, vmcs: &mut impl Vmcs) {
        vmcs.write(ro::EXIT_REASON, self.reason as u64);
        vmcs.write(
            ro::VMEXIT_INTERRUPTION_INFO,
            self.interruption_info.bits().into(),
        );
        if let Some(ec) = self.interruption_error_code {
            vmcs.write(ro::VMEXIT_INTERRUPTION_ERR_CODE, ec.into());
        }
        vmcs.write(ro::EXIT_QUALIFICATION, self.qualification);
        vmcs.write(
            ro::IDT_VECTORING_INFO,
            self.idt_vectoring_info.bits().into(),
        );
        if let Some(ec) = self.idt_vectoring_error_code {
            vmcs.write(ro::IDT_VECTORING_ERR_CODE, ec.into());
        }
        if let Some(len) = self.instruction_length {
            vmcs.write(ro::VMEXIT_INSTRUCTION_LEN, len.into());
        }
    }
}

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scenario {
    /// The governing hypervisor's controls.
    pub controls: InterceptControls,
    /// Guest CR0.PE: error codes are pushed (and reported) only in protected mode.
    pub protected_mode: bool,
    /// The first event of the chain (`delivering` if present, else `event`) was injected by VM
    /// entry. An injected event is exempt from interception (SDM 26.6.1); an exception arising
    /// during its delivery is not, so this matters only when `delivering` is `None`.
    pub injected: bool,
    /// The event whose delivery was in progress when `event` arose.
    pub delivering: Option<Event>,
    /// The new event.
    pub event: Event,
}

/// What happens to the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Delivered through the guest IDT: this event (possibly #DF), pushing this error code.
    Deliver {
        /// The event delivered.
        event: Event,
        /// The error code pushed, if any.
        error_code: Option<u16>,
    },
    /// A VM exit to the governing hypervisor.
    VmExit(ExitInfo),
}

/// The routing decision; every path in nvmx uses it.
pub fn route(s: &Scenario) -> Outcome {
    let Some(first) = s.delivering else {
        if !s.injected && intercepts(&s.controls, &s.event) {
            return Outcome::VmExit(exit_for(&s.event, None, &s.controls, s.protected_mode));
        }
        return deliver(s.event, s.protected_mode);
    };
    // Hardware order: the bitmap sees the new exception before any #DF promotion.
    if intercepts(&s.controls, &s.event) {
        return Outcome::VmExit(exit_for(
            &s.event,
            Some(&first),
            &s.controls,
            s.protected_mode,
        ));
    }
    match combine(first.class(), s.event.class()) {
        Combination::Serial => deliver(s.event, s.protected_mode),
        Combination::DoubleFault => {
            let df = Event::double_fault();
            if intercepts(&s.controls, &df) {
                // A #DF that causes the exit directly is not "during event delivery" (27.2.4).
                Outcome::VmExit(exit_for(&df, None, &s.controls, s.protected_mode))
            } else {
                deliver(df, s.protected_mode)
            }
        }
        Combination::TripleFault => Outcome::VmExit(triple_fault_exit()),
    }
}

/// The exit a triple fault causes: no interruption information, and not "during event delivery"
/// (SDM 27.2.4), so the IDT-vectoring information is invalid too.
pub const fn triple_fault_exit() -> ExitInfo {
    ExitInfo {
        reason: ExitReason::TripleFault,
        interruption_info: InterruptionInfo::INVALID,
        interruption_error_code: None,
        qualification: 0,
        idt_vectoring_info: InterruptionInfo::INVALID,
        idt_vectoring_error_code: None,
        instruction_length: None,
    }
}

/// Delivery of `event` as it is, with the error code it pushes.
pub(crate) fn deliver(event: Event, protected_mode: bool) -> Outcome {
    Outcome::Deliver {
        event,
        error_code: event.pushed_error_code(protected_mode),
    }
}

/// Exit information for an exit caused by `event`, which arose while delivering `during`.
pub(crate) fn exit_for(
    event: &Event,
    during: Option<&Event>,
    controls: &InterceptControls,
    protected_mode: bool,
) -> ExitInfo {
    let (reason, interruption_info) = match event.kind {
        // Without "acknowledge interrupt on exit" the interrupt stays pending in the interrupt
        // controller and the field is invalid (SDM 27.2.2).
        InterruptionType::ExternalInterrupt if !controls.ack_interrupt_on_exit => {
            (ExitReason::ExternalInterrupt, InterruptionInfo::INVALID)
        }
        InterruptionType::ExternalInterrupt => {
            (ExitReason::ExternalInterrupt, event.info(protected_mode))
        }
        _ => (ExitReason::ExceptionOrNmi, event.info(protected_mode)),
    };
    let qualification = match event.kind {
        InterruptionType::HardwareException
            if matches!(event.vector, PAGE_FAULT_VECTOR | DEBUG_VECTOR) =>
        {
            event.payload
        }
        _ => 0,
    };
    let instruction_length = if event.kind.is_software() {
        Some(event.insn_len)
    } else {
        during.filter(|d| d.kind.is_software()).map(|d| d.insn_len)
    };
    ExitInfo {
        reason,
        interruption_info,
        interruption_error_code: if interruption_info.deliver_error_code() {
            Some(event.error_code)
        } else {
            None
        },
        qualification,
        idt_vectoring_info: during.map_or(InterruptionInfo::INVALID, |d| d.info(protected_mode)),
        idt_vectoring_error_code: during.and_then(|d| d.pushed_error_code(protected_mode)),
        instruction_length,
    }
}
