//! Events as VT-x describes them: exceptions, NMIs and interrupts, their interruption-information
//! encoding (SDM Vol. 3, 25.8.3 VM-entry and 25.9.2 / 27.2.2 VM-exit interruption information,
//! 27.2.4 IDT-vectoring information) and their double-fault classes (SDM Table 6-4).
//!
//! Levels: L0 runs l1-hv, L1 is l1-hv, L2 are its guests (some are guest hypervisors), L3 is a
//! guest hypervisor's guest. An [`Event`] is level-neutral: the same value describes an event
//! that arises in L2 (governed by l1-hv) or in L3 (governed by an L2 guest hypervisor).

#[cfg(test)]
mod tests;

use bitflags::bitflags;
use shadow_vmcs::Vmcs;
use x86::debugregs::Dr6;
use x86::irq::{
    ALIGNMENT_CHECK_VECTOR, BOUND_RANGE_EXCEEDED_VECTOR, DEBUG_VECTOR, DEVICE_NOT_AVAILABLE_VECTOR,
    DIVIDE_ERROR_VECTOR, DOUBLE_FAULT_VECTOR, GENERAL_PROTECTION_FAULT_VECTOR,
    INVALID_OPCODE_VECTOR, INVALID_TSS_VECTOR, NONMASKABLE_INTERRUPT_VECTOR, PAGE_FAULT_VECTOR,
    SEGMENT_NOT_PRESENT_VECTOR, SIMD_FLOATING_POINT_VECTOR, STACK_SEGEMENT_FAULT_VECTOR,
    VIRTUALIZATION_VECTOR, X87_FPU_VECTOR,
};
use x86::vmx::vmcs::{control, ro};

/// Vector of the control-protection exception (#CP), which the `x86` crate does not name.
pub const CONTROL_PROTECTION_VECTOR: u8 = 21;

/// The interruption type, bits 10:8 of every interruption-information field (SDM 25.8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InterruptionType {
    /// An external interrupt (INTR).
    ExternalInterrupt = 0,
    /// A non-maskable interrupt (vector 2).
    Nmi = 2,
    /// An exception raised by the processor (faults, traps, aborts; also BOUND, UD0-2).
    HardwareException = 3,
    /// `INT n`.
    SoftwareInterrupt = 4,
    /// `INT1` (ICEBP, opcode F1), reported as #DB.
    PrivilegedSoftwareException = 5,
    /// `INT3` (#BP) or `INTO` (#OF).
    SoftwareException = 6,
    /// A pending monitor-trap-flag trap; only VM entry injects it (SDM 26.6.2).
    OtherEvent = 7,
}

impl InterruptionType {
    /// Decodes bits 10:8 of an interruption-information field; `None` for the reserved value 1.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => Self::ExternalInterrupt,
            2 => Self::Nmi,
            3 => Self::HardwareException,
            4 => Self::SoftwareInterrupt,
            5 => Self::PrivilegedSoftwareException,
            6 => Self::SoftwareException,
            7 => Self::OtherEvent,
            _ => return None,
        })
    }

    /// Whether the event comes from an instruction whose length the VMCS reports or needs
    /// (VM-entry instruction length, SDM 25.8.3; VM-exit instruction length, SDM 27.2.5).
    pub const fn is_software(self) -> bool {
        matches!(
            self,
            Self::SoftwareInterrupt | Self::PrivilegedSoftwareException | Self::SoftwareException
        )
    }
}

/// Double-fault class of an event (SDM Table 6-4), the input of Table 6-5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExceptionClass {
    /// Everything not listed below, including every NMI, INTR, `INT n`, `INT3`, `INTO`, `INT1`.
    Benign,
    /// #DE, #TS, #NP, #SS, #GP and #CP.
    Contributory,
    /// #PF, and #VE, which the SDM gives the page-fault severity.
    PageFault,
    /// #DF itself.
    DoubleFault,
}

bitflags! {
    /// The flag bits of an interruption-information field; bits 10:0 hold vector and type.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct InfoFlags: u32 {
        /// Bit 11: an error code is (to be) pushed and lives in the matching error-code field.
        const DELIVER_ERROR_CODE = 1 << 11;
        /// Bit 12 (VM-exit interruption information only): NMI unblocking due to IRET.
        const NMI_UNBLOCKING_DUE_TO_IRET = 1 << 12;
        /// Bit 31: the field is valid.
        const VALID = 1 << 31;
    }
}

/// An interruption-information field value: VM-entry interruption information, VM-exit
/// interruption information or IDT-vectoring information (one layout, SDM 25.8.3 / 25.9.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InterruptionInfo(pub u32);

impl InterruptionInfo {
    /// The invalid (all-zero) field.
    pub const INVALID: Self = Self(0);

    /// A valid field for `vector` of type `kind`, with bit 11 set iff `deliver_error_code`.
    pub const fn new(kind: InterruptionType, vector: u8, deliver_error_code: bool) -> Self {
        let ec = if deliver_error_code {
            InfoFlags::DELIVER_ERROR_CODE.bits()
        } else {
            0
        };
        Self(InfoFlags::VALID.bits() | ec | ((kind as u32) << 8) | vector as u32)
    }

    /// Bits 7:0.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }

    /// Bits 10:8, `None` for the reserved type 1.
    pub const fn interruption_type(self) -> Option<InterruptionType> {
        InterruptionType::from_bits(((self.0 >> 8) & 7) as u8)
    }

    /// Bit 11.
    pub const fn deliver_error_code(self) -> bool {
        self.0 & InfoFlags::DELIVER_ERROR_CODE.bits() != 0
    }

    /// Bit 31.
    pub const fn valid(self) -> bool {
        self.0 & InfoFlags::VALID.bits() != 0
    }

    /// The raw field value.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// Whether exception `vector` pushes an error code in protected mode (SDM Table 6-1; the same
/// list the VM-entry checks of SDM 26.2.1.3 use for the deliver-error-code bit).
pub const fn vector_has_error_code(vector: u8) -> bool {
    matches!(
        vector,
        DOUBLE_FAULT_VECTOR
            | INVALID_TSS_VECTOR
            | SEGMENT_NOT_PRESENT_VECTOR
            | STACK_SEGEMENT_FAULT_VECTOR
            | GENERAL_PROTECTION_FAULT_VECTOR
            | PAGE_FAULT_VECTOR
            | ALIGNMENT_CHECK_VECTOR
            | CONTROL_PROTECTION_VECTOR
    )
}

/// Whether exception `vector` is a fault (SDM Table 6-1): its frame returns to the faulting
/// instruction, and the processor pushes RFLAGS.RF = 1 with it (SDM 18.3.1.1) so that the
/// return does not re-trigger an instruction breakpoint. #DB is excluded: it is a fault or a
/// trap depending on its cause. #DF and #MC are aborts; #BP and #OF traps.
pub const fn vector_is_fault(vector: u8) -> bool {
    matches!(
        vector,
        DIVIDE_ERROR_VECTOR
            | BOUND_RANGE_EXCEEDED_VECTOR
            | INVALID_OPCODE_VECTOR
            | DEVICE_NOT_AVAILABLE_VECTOR
            | INVALID_TSS_VECTOR
            | SEGMENT_NOT_PRESENT_VECTOR
            | STACK_SEGEMENT_FAULT_VECTOR
            | GENERAL_PROTECTION_FAULT_VECTOR
            | PAGE_FAULT_VECTOR
            | X87_FPU_VECTOR
            | ALIGNMENT_CHECK_VECTOR
            | SIMD_FLOATING_POINT_VECTOR
            | VIRTUALIZATION_VECTOR
            | CONTROL_PROTECTION_VECTOR
    )
}

/// The interruption information in `field` if its valid bit is set: the companion fields are
/// read only then (every exit path reads these, and most find them invalid).
fn valid_info(vmcs: &impl Vmcs, field: u32) -> Option<InterruptionInfo> {
    let info = InterruptionInfo(vmcs.read(field) as u32);
    info.valid().then_some(info)
}

/// The DR6-format bits a #DB payload carries and a #DB VM exit reports in its exit qualification
/// (B0–B3, BD, BS; SDM Table 27-1).
pub const DEBUG_PAYLOAD_BITS: u64 = (Dr6::B0.bits()
    | Dr6::B1.bits()
    | Dr6::B2.bits()
    | Dr6::B3.bits()
    | Dr6::BD.bits()
    | Dr6::BS.bits()) as u64;

/// DR6 after a #DB with `payload` (DR6-format bits) is delivered on a DR6 of `dr6`: the
/// breakpoint-match bits B0–B3 describe this exception only, so delivery replaces them, while
/// BD, BS and BT accumulate (SDM 18.2.3: "certain debug exceptions may clear bits 0-3"; the
/// processors l1-hv runs on clear them on every #DB, and software such as kvm-unit-tests'
/// `debug` test checks the exact value). Hardware cannot do this for l1-hv: a #DB that exits
/// leaves DR6 unchanged (SDM 28.1) and injection never writes it (SDM 27.6.1.1).
pub const fn dr6_after_delivery(dr6: u64, payload: u64) -> u64 {
    const MATCHES: u64 = (Dr6::B0.bits() | Dr6::B1.bits() | Dr6::B2.bits() | Dr6::B3.bits()) as u64;
    dr6 & !MATCHES | payload & DEBUG_PAYLOAD_BITS
}

/// One exception, NMI or interrupt, with everything delivery or a VM exit needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// SDM interruption type.
    pub kind: InterruptionType,
    /// Vector (for exceptions 0–31).
    pub vector: u8,
    /// Error code; meaningful only where [`Event::pushes_error_code`] says one is pushed. Intel
    /// error codes are 16 bits: bits 31:16 of the error-code fields are reserved, never set by
    /// the CPU and rejected by VM entry (SDM 26.2.1.3), so the type cannot hold them.
    pub error_code: u16,
    /// Instruction length for software types (1–15), else 0.
    pub insn_len: u8,
    /// CR2 for #PF, pending-debug bits in DR6 format ([`DEBUG_PAYLOAD_BITS`]) for #DB, else 0.
    /// Applied to the guest only when the event is delivered through its IDT.
    pub payload: u64,
}

impl Event {
    /// A hardware exception. Bits 31:16 of `error_code` are dropped (see [`Event::error_code`]);
    /// #DF and #AC always push zero (SDM 6.15), so their error code is forced to 0.
    pub const fn hardware_exception(vector: u8, error_code: u32) -> Self {
        let error_code = match vector {
            DOUBLE_FAULT_VECTOR | ALIGNMENT_CHECK_VECTOR => 0,
            _ => error_code as u16,
        };
        Self {
            kind: InterruptionType::HardwareException,
            vector,
            error_code,
            insn_len: 0,
            payload: 0,
        }
    }

    /// A page fault at linear address `cr2`.
    pub const fn page_fault(error_code: u32, cr2: u64) -> Self {
        let mut event = Self::hardware_exception(PAGE_FAULT_VECTOR, error_code);
        event.payload = cr2;
        event
    }

    /// A hardware #DB with pending-debug bits `dr6` (only [`DEBUG_PAYLOAD_BITS`] are kept).
    pub const fn debug(dr6: u64) -> Self {
        let mut event = Self::hardware_exception(DEBUG_VECTOR, 0);
        event.payload = dr6 & DEBUG_PAYLOAD_BITS;
        event
    }

    /// A double fault (error code 0).
    pub const fn double_fault() -> Self {
        Self::hardware_exception(DOUBLE_FAULT_VECTOR, 0)
    }

    /// An NMI.
    pub const fn nmi() -> Self {
        Self {
            kind: InterruptionType::Nmi,
            vector: NONMASKABLE_INTERRUPT_VECTOR,
            error_code: 0,
            insn_len: 0,
            payload: 0,
        }
    }

    /// An external interrupt with `vector`.
    pub const fn external_interrupt(vector: u8) -> Self {
        Self {
            kind: InterruptionType::ExternalInterrupt,
            vector,
            error_code: 0,
            insn_len: 0,
            payload: 0,
        }
    }

    /// An event raised by an instruction of `insn_len` bytes: `INT n`, `INT1`, `INT3` or `INTO`.
    pub const fn software(kind: InterruptionType, vector: u8, insn_len: u8) -> Self {
        Self {
            kind,
            vector,
            error_code: 0,
            insn_len,
            payload: 0,
        }
    }

    /// Rebuilds an event from a valid interruption-information field and its companions;
    /// `None` if `info` is invalid or has the reserved type. `payload` is kept only for #PF/#DB.
    pub fn from_info(
        info: InterruptionInfo,
        error_code: u32,
        insn_len: u8,
        payload: u64,
    ) -> Option<Self> {
        if !info.valid() {
            return None;
        }
        let kind = info.interruption_type()?;
        let vector = info.vector();
        Some(match kind {
            InterruptionType::HardwareException => match vector {
                PAGE_FAULT_VECTOR => Self::page_fault(error_code, payload),
                DEBUG_VECTOR => Self::debug(payload),
                _ => Self::hardware_exception(vector, error_code),
            },
            k if k.is_software() => Self::software(k, vector, insn_len),
            _ => Self {
                kind,
                vector,
                error_code: 0,
                insn_len: 0,
                payload: 0,
            },
        })
    }

    /// The event a VM exit reports in the VM-exit interruption-information field of `vmcs`,
    /// with its error code, instruction length and, as payload, the exit qualification (the
    /// faulting address for #PF, the pending-debug bits for #DB; SDM 27.2.1).
    pub fn from_exit(vmcs: &impl Vmcs) -> Option<Self> {
        let info = valid_info(vmcs, ro::VMEXIT_INTERRUPTION_INFO)?;
        Self::from_info(
            info,
            vmcs.read(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32,
            vmcs.read(ro::VMEXIT_INSTRUCTION_LEN) as u8,
            vmcs.read(ro::EXIT_QUALIFICATION),
        )
    }

    /// The event whose delivery the VM exit in `vmcs` interrupted (IDT-vectoring information,
    /// SDM 27.2.4), if valid. Its payload is 0: the VMCS does not record one.
    pub fn from_idt_vectoring(vmcs: &impl Vmcs) -> Option<Self> {
        let info = valid_info(vmcs, ro::IDT_VECTORING_INFO)?;
        Self::from_info(
            info,
            vmcs.read(ro::IDT_VECTORING_ERR_CODE) as u32,
            vmcs.read(ro::VMEXIT_INSTRUCTION_LEN) as u8,
            0,
        )
    }

    /// The event VM entry is set up to inject (VM-entry interruption information of `vmcs`).
    pub fn from_entry(vmcs: &impl Vmcs) -> Option<Self> {
        let info = valid_info(vmcs, control::VMENTRY_INTERRUPTION_INFO_FIELD)?;
        Self::from_info(
            info,
            vmcs.read(control::VMENTRY_EXCEPTION_ERR_CODE) as u32,
            vmcs.read(control::VMENTRY_INSTRUCTION_LEN) as u8,
            0,
        )
    }

    /// The double-fault class (SDM Table 6-4). Only hardware exceptions can be contributory or
    /// page faults: `INT n` with such a vector, and every NMI or interrupt, is benign.
    pub const fn class(&self) -> ExceptionClass {
        if !matches!(self.kind, InterruptionType::HardwareException) {
            return ExceptionClass::Benign;
        }
        match self.vector {
            DIVIDE_ERROR_VECTOR
            | INVALID_TSS_VECTOR
            | SEGMENT_NOT_PRESENT_VECTOR
            | STACK_SEGEMENT_FAULT_VECTOR
            | GENERAL_PROTECTION_FAULT_VECTOR
            | CONTROL_PROTECTION_VECTOR => ExceptionClass::Contributory,
            PAGE_FAULT_VECTOR | VIRTUALIZATION_VECTOR => ExceptionClass::PageFault,
            DOUBLE_FAULT_VECTOR => ExceptionClass::DoubleFault,
            _ => ExceptionClass::Benign,
        }
    }

    /// Whether delivery pushes an error code: hardware exceptions of the vectors in
    /// [`vector_has_error_code`], and only in protected mode (real mode pushes none).
    pub const fn pushes_error_code(&self, protected_mode: bool) -> bool {
        protected_mode
            && matches!(self.kind, InterruptionType::HardwareException)
            && vector_has_error_code(self.vector)
    }

    /// The error code delivery pushes, if any.
    pub const fn pushed_error_code(&self, protected_mode: bool) -> Option<u16> {
        if self.pushes_error_code(protected_mode) {
            Some(self.error_code)
        } else {
            None
        }
    }

    /// The interruption-information encoding of this event.
    pub const fn info(&self, protected_mode: bool) -> InterruptionInfo {
        InterruptionInfo::new(
            self.kind,
            self.vector,
            self.pushes_error_code(protected_mode),
        )
    }

    /// Whether this is a hardware exception with `vector` (so `INT n` with the same vector and
    /// `INT3` are not).
    pub const fn is_hardware(&self, vector: u8) -> bool {
        matches!(self.kind, InterruptionType::HardwareException) && self.vector == vector
    }
}
