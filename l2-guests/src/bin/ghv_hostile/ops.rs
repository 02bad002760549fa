//! The hostile operations and the answer the SDM requires for each (the table ghv-hostile
//! checks itself against; docs/hostile.md explains each row).
//!
//! VM-instruction error numbers are SDM 31.4's; injection checks SDM 27.2.1.3; the VMCS link
//! pointer SDM 27.3.1.5 (a failure is the VM-entry failure exit 33 | bit 31 with qualification 4,
//! SDM 27.8); VMX instructions in VMX non-root operation exit unconditionally (SDM 26.1.2) before
//! any CPL check, and in VMX root operation at CPL > 0 raise #GP(0) (each instruction's
//! pseudocode, SDM Vol. 3C 31.3).

use crate::host::Op;
use crate::l3::Payload;
use core::fmt;

/// VM-exit basic reasons (SDM Appendix C).
const TRIPLE_FAULT: u32 = 2;
const VMCALL: u32 = 18;
const ENTRY_FAILURE_GUEST_STATE: u32 = 33 | 1 << 31;
const EPT_VIOLATION: u32 = 48;
const EPT_MISCONFIGURATION: u32 = 49;

/// What a hostile operation observably did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// CF = ZF = 0.
    Succeed,
    /// CF = 1.
    FailInvalid,
    /// ZF = 1, with the VM-instruction error field's value.
    FailValid(u32),
    /// An exception in ghv-hostile: vector, error code.
    Exception(u8, Option<u32>),
    /// A VM exit from L3 (or a VM-entry failure exit): full exit reason, qualification.
    Exit(u32, u64),
    /// L3 ran to its reporting VMCALL having read this value.
    L3Read(u64),
    /// A VMREAD (or VMPTRST) succeeded with this value.
    Value(u64),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::Succeed => f.write_str("VMsucceed"),
            Self::FailInvalid => f.write_str("VMfailInvalid"),
            Self::FailValid(error) => write!(f, "VMfailValid({error})"),
            Self::Exception(vector, Some(code)) => {
                write!(f, "exception vector={vector} error_code={code:#x}")
            }
            Self::Exception(vector, None) => write!(f, "exception vector={vector} error_code=none"),
            Self::Exit(reason, qual) => write!(f, "exit reason={reason:#x} qual={qual:#x}"),
            Self::L3Read(value) => write!(f, "l3 read {value:#x}"),
            Self::Value(value) => write!(f, "VMsucceed value={value:#x}"),
        }
    }
}

/// Where an instruction's memory operand points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// ghv-hostile's own VMXON region.
    VmxonRegion,
    /// Its VMCS, 8 bytes in: not 4 KiB-aligned.
    VmcsUnaligned,
    /// 1 << MAXPHYADDR (CPUID 80000008H): beyond the physical-address width.
    BeyondWidth,
    /// 1 GiB: within the width, beyond RAM both bare (Bochs: 256 MiB) and under l1-hv (8 MiB).
    BeyondRam,
    /// A 4 KiB region whose revision identifier is the processor's with bit 0 flipped.
    WrongRevision,
    /// A zeroed scratch page (INVEPT/INVVPID descriptors, VMPTRST's destination).
    Scratch,
    /// The pointer itself is non-canonical: the operand fetch faults.
    NonCanonical,
    /// An INVEPT/INVVPID descriptor: bits 63:0, bits 127:64.
    Descriptor(u64, u64),
}

/// How one operation is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `op` in ghv-hostile at CPL 0 with the VMCS current (`operand`, field/type, value).
    Root(Op, Operand, u64, u64),
    /// `op` in ghv-hostile at CPL 3 (VMX root operation).
    User(Op, Operand),
    /// VMLAUNCH of a fresh VMCS whose L3 runs `Payload`, after `Setup`.
    Launch(Payload, Setup),
    /// VMLAUNCH once (L3 exits at its VMCALL), then VMLAUNCH again.
    LaunchTwice,
    /// VMRESUME of a fresh (clear) VMCS.
    ResumeClear,
    /// VMPTRLD of a region whose revision identifier has bit 31 (shadow VMCS) set, then
    /// VMLAUNCH.
    LaunchShadowVmcs,
    /// VMCLEAR of the current VMCS, then `op` (CPL 0) on field/type `.1`.
    AfterClearingCurrent(Op, u64),
    /// VMWRITEs `(field, value)` in order to a fresh VMCS, then VMREAD of the last field read
    /// as `.1`.
    RoundTrip(&'static [(u64, u64)], u64),
    /// VMPTRST after VMPTRLD of the VMCS: its address.
    StoreCurrentPointer,
}

/// What is done to a fresh, valid VMCS before VMLAUNCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Nothing.
    None,
    /// VM-entry interruption information, exception error code, instruction length.
    Inject(u32, u32, u32),
    /// The VMCS link pointer.
    LinkPointer(Operand),
    /// The EPT PDPT entry for guest-physical 1–2 GiB, and the guest-physical address L3 reads.
    EptWindow(Window, u64),
}

/// EPT PDPT[1] for a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Points at a PD at 1 GiB: outside RAM.
    TableOutsideRam,
    /// Points back at the EPT PML4.
    LoopToPml4,
}

/// What the SDM lets the answer depend on: IA32_VMX_MISC bits 29 (VMWRITE to any field) and
/// 30 (software-event injection with instruction length 0).
#[derive(Clone, Copy, Debug)]
pub struct Misc {
    pub vmwrite_any_field: bool,
    pub inject_length_0: bool,
    /// IA32_VMX_PROCBASED_CTLS2 allows "VMCS shadowing" (then a shadow VMCS may be current).
    pub vmcs_shadowing: bool,
}

/// One row of the table.
pub struct Operation {
    pub name: &'static str,
    pub kind: Kind,
    expect: fn(Misc) -> Answer,
    /// A second answer the SDM leaves room for (each use says why), or `None`.
    also_permitted: Option<Answer>,
}

const fn row(name: &'static str, kind: Kind, expect: fn(Misc) -> Answer) -> Operation {
    Operation {
        name,
        kind,
        expect,
        also_permitted: None,
    }
}

impl Operation {
    /// The SDM's answer on a processor with `misc`.
    pub fn expected(&self, misc: Misc) -> Answer {
        (self.expect)(misc)
    }

    /// Whether `answer` is one the SDM allows.
    pub fn permits(&self, answer: Answer, misc: Misc) -> bool {
        answer == self.expected(misc) || Some(answer) == self.also_permitted
    }
}

/// Interruption-information fields (SDM 25.8.3): valid, type (10:8), deliver error code (11).
const VALID: u32 = 1 << 31;
const fn event(kind: u32, vector: u32) -> u32 {
    VALID | kind << 8 | vector
}
const HARDWARE_EXCEPTION: u32 = 3;
const NMI: u32 = 2;
const SOFTWARE_EXCEPTION: u32 = 6;
const DELIVER_ERROR_CODE: u32 = 1 << 11;

/// Encodings (SDM Appendix B): VM-exit reason (read-only data), a 32-bit read-only index no
/// processor defines, and the guest ES selector (0x800) with bit 32 set.
const EXIT_REASON_FIELD: u64 = 0x4402;
const UNSUPPORTED_FIELD: u64 = 0x4ffe;
const HIGH_BITS_FIELD: u64 = 1 << 32 | GUEST_ES_SELECTOR;
/// Fields of each width (SDM Appendix B): 16-bit guest ES selector, 32-bit exception bitmap,
/// 64-bit TSC offset (full; +1 is its high half), natural-width exit qualification
/// (read-only).
const GUEST_ES_SELECTOR: u64 = 0x800;
const EXCEPTION_BITMAP: u64 = 0x4004;
const TSC_OFFSET: u64 = 0x2010;
const EXIT_QUALIFICATION: u64 = 0x6400;

/// The displacement of L3's memory operands, `[RSI + 8]`.
const L3_QUALIFICATION_DISPLACEMENT: u64 = 8;

/// Every operation, in run order. User-mode VMXOFF is last: if it were (wrongly) executed,
/// nothing after it could run in VMX operation.
pub const OPERATIONS: &[Operation] = &[
    // VMPTRLD (SDM 31.3 VMPTRLD; errors 9, 10, 11).
    row(
        "vmptrld-vmxon-region",
        Kind::Root(Op::Vmptrld, Operand::VmxonRegion, 0, 0),
        |_| Answer::FailValid(10),
    ),
    row(
        "vmptrld-unaligned",
        Kind::Root(Op::Vmptrld, Operand::VmcsUnaligned, 0, 0),
        |_| Answer::FailValid(9),
    ),
    row(
        "vmptrld-beyond-address-width",
        Kind::Root(Op::Vmptrld, Operand::BeyondWidth, 0, 0),
        |_| Answer::FailValid(9),
    ),
    // The revision identifier read where no memory is (all ones on Bochs) is not the
    // processor's: error 11, what hardware does. The SDM defines no contents for physical
    // addresses without memory (the VMCS region is memory, accessed with the type of
    // IA32_VMX_BASIC[53:50], A.1); l1-hv refuses a non-RAM pointer as an invalid address,
    // error 9 (a documented difference, docs/hostile.md).
    Operation {
        also_permitted: Some(Answer::FailValid(9)),
        ..row(
            "vmptrld-beyond-ram",
            Kind::Root(Op::Vmptrld, Operand::BeyondRam, 0, 0),
            |_| Answer::FailValid(11),
        )
    },
    row(
        "vmptrld-wrong-revision",
        Kind::Root(Op::Vmptrld, Operand::WrongRevision, 0, 0),
        |_| Answer::FailValid(11),
    ),
    row(
        "vmptrld-non-canonical-operand",
        Kind::Root(Op::Vmptrld, Operand::NonCanonical, 0, 0),
        |_| Answer::Exception(13, Some(0)),
    ),
    // VMCLEAR (errors 2, 3).
    row(
        "vmclear-vmxon-region",
        Kind::Root(Op::Vmclear, Operand::VmxonRegion, 0, 0),
        |_| Answer::FailValid(3),
    ),
    row(
        "vmclear-unaligned",
        Kind::Root(Op::Vmclear, Operand::VmcsUnaligned, 0, 0),
        |_| Answer::FailValid(2),
    ),
    row(
        "vmclear-beyond-address-width",
        Kind::Root(Op::Vmclear, Operand::BeyondWidth, 0, 0),
        |_| Answer::FailValid(2),
    ),
    // VMCLEAR checks only alignment, width and the VMXON pointer; it then writes the VMCS data
    // back, which where no memory is goes nowhere: VMsucceed.
    row(
        "vmclear-beyond-ram",
        Kind::Root(Op::Vmclear, Operand::BeyondRam, 0, 0),
        |_| Answer::Succeed,
    ),
    // VMXON in VMX root operation (error 15).
    row(
        "vmxon-in-root-operation",
        Kind::Root(Op::Vmxon, Operand::VmxonRegion, 0, 0),
        |_| Answer::FailValid(15),
    ),
    // VMREAD/VMWRITE (errors 12, 13).
    row(
        "vmwrite-read-only-field",
        Kind::Root(Op::Vmwrite, Operand::Scratch, EXIT_REASON_FIELD, 0),
        |misc| {
            if misc.vmwrite_any_field {
                Answer::Succeed
            } else {
                Answer::FailValid(13)
            }
        },
    ),
    row(
        "vmread-unsupported-field",
        Kind::Root(Op::Vmread, Operand::Scratch, UNSUPPORTED_FIELD, 0),
        |_| Answer::FailValid(12),
    ),
    row(
        "vmwrite-unsupported-field",
        Kind::Root(Op::Vmwrite, Operand::Scratch, UNSUPPORTED_FIELD, 0),
        |_| Answer::FailValid(12),
    ),
    // "VMREAD and VMWRITE ... fail if any of the high 32 bits of a 64-bit register operand are
    // nonzero" (SDM 25.11.2): the encoding of the guest ES selector with bit 32 set.
    row(
        "vmread-encoding-bits-63-32",
        Kind::Root(Op::Vmread, Operand::Scratch, HIGH_BITS_FIELD, 0),
        |_| Answer::FailValid(12),
    ),
    row(
        "vmwrite-encoding-bits-63-32",
        Kind::Root(Op::Vmwrite, Operand::Scratch, HIGH_BITS_FIELD, 0),
        |_| Answer::FailValid(12),
    ),
    // INVEPT/INVVPID with a type the SDM does not define, or single-context with VPID 0 (28).
    row(
        "invept-type-0",
        Kind::Root(Op::Invept, Operand::Scratch, 0, 0),
        |_| Answer::FailValid(28),
    ),
    row(
        "invept-type-3",
        Kind::Root(Op::Invept, Operand::Scratch, 3, 0),
        |_| Answer::FailValid(28),
    ),
    row(
        "invvpid-type-4",
        Kind::Root(Op::Invvpid, Operand::Scratch, 4, 0),
        |_| Answer::FailValid(28),
    ),
    row(
        "invvpid-single-context-vpid-0",
        Kind::Root(Op::Invvpid, Operand::Scratch, 1, 0),
        |_| Answer::FailValid(28),
    ),
    // Single-context INVEPT checks the EPTP like VM entry (SDM 31.3 INVEPT): memory type 5 is
    // reserved.
    row(
        "invept-single-context-invalid-eptp",
        Kind::Root(Op::Invept, Operand::Descriptor(5 | 3 << 3, 0), 1, 0),
        |_| Answer::FailValid(28),
    ),
    // INVVPID: descriptor bits 63:16 must be 0, and an individual address must be canonical
    // (SDM 31.3 INVVPID).
    row(
        "invvpid-descriptor-bits-63-16",
        Kind::Root(Op::Invvpid, Operand::Descriptor(1 | 1 << 16, 0), 2, 0),
        |_| Answer::FailValid(28),
    ),
    row(
        "invvpid-individual-address-non-canonical",
        Kind::Root(Op::Invvpid, Operand::Descriptor(1, 1 << 63), 0, 0),
        |_| Answer::FailValid(28),
    ),
    // VMLAUNCH/VMRESUME launch state (errors 4, 5).
    row("vmlaunch-launched-vmcs", Kind::LaunchTwice, |_| {
        Answer::FailValid(4)
    }),
    row("vmresume-clear-vmcs", Kind::ResumeClear, |_| {
        Answer::FailValid(5)
    }),
    row(
        "vmlaunch-after-mov-ss",
        Kind::Root(Op::VmlaunchAfterMovSs, Operand::Scratch, 0, 0),
        |_| Answer::FailValid(26),
    ),
    // A shadow VMCS can be made current where VMCS shadowing exists, but never entered:
    // VMLAUNCH fails with VMfailInvalid (SDM 25.10; KVM's nested_vmx_run does the same);
    // without VMCS shadowing VMPTRLD itself refuses the region (error 11). Bochs 2.7 does not
    // check the indicator and goes on to the control checks (error 7 for this blank VMCS): a
    // Bochs deviation, reported in docs/hostile.md and accepted here so that it stays visible
    // in the log instead of failing every bare run.
    Operation {
        also_permitted: Some(Answer::FailValid(7)),
        ..row("vmlaunch-shadow-vmcs", Kind::LaunchShadowVmcs, |misc| {
            if misc.vmcs_shadowing {
                Answer::FailInvalid
            } else {
                Answer::FailValid(11)
            }
        })
    },
    // VMCLEAR of the current VMCS makes the current-VMCS pointer invalid (FFFFFFFF_FFFFFFFFH,
    // SDM 31.3 VMCLEAR): VMREAD, VMWRITE and VMLAUNCH then fail with VMfailInvalid, VMPTRST
    // stores all ones.
    row(
        "vmread-after-vmclear-of-current",
        Kind::AfterClearingCurrent(Op::Vmread, GUEST_ES_SELECTOR),
        |_| Answer::FailInvalid,
    ),
    row(
        "vmwrite-after-vmclear-of-current",
        Kind::AfterClearingCurrent(Op::Vmwrite, GUEST_ES_SELECTOR),
        |_| Answer::FailInvalid,
    ),
    row(
        "vmlaunch-after-vmclear-of-current",
        Kind::AfterClearingCurrent(Op::Vmlaunch, 0),
        |_| Answer::FailInvalid,
    ),
    row(
        "vmptrst-after-vmclear-of-current",
        Kind::AfterClearingCurrent(Op::Vmptrst, 0),
        |_| Answer::Value(u64::MAX),
    ),
    // VMPTRST stores the current-VMCS pointer: the VMCS's own address (checked by run.rs).
    row("vmptrst-current", Kind::StoreCurrentPointer, |_| {
        Answer::Succeed
    }),
    // Field widths (SDM 25.11.2): a VMWRITE to a 16-bit field keeps bits 15:0, to a 32-bit
    // field bits 31:0; "high" encodings (bit 0 = 1) access bits 63:32 of a 64-bit field.
    row(
        "vmwrite-16-bit-field-wide-value",
        Kind::RoundTrip(&[(GUEST_ES_SELECTOR, 0xffff_1234)], GUEST_ES_SELECTOR),
        |_| Answer::Value(0x1234),
    ),
    row(
        "vmwrite-32-bit-field-wide-value",
        Kind::RoundTrip(&[(EXCEPTION_BITMAP, 0x1_0000_4001)], EXCEPTION_BITMAP),
        |_| Answer::Value(0x4001),
    ),
    row(
        "vmwrite-high-then-read-full",
        Kind::RoundTrip(
            &[
                (TSC_OFFSET, 0x1111_2222_3333_4444),
                (TSC_OFFSET + 1, 0x5555_6666_7777_8888),
            ],
            TSC_OFFSET,
        ),
        |_| Answer::Value(0x7777_8888_3333_4444),
    ),
    row(
        "vmread-high-of-full",
        Kind::RoundTrip(&[(TSC_OFFSET, 0x1111_2222_3333_4444)], TSC_OFFSET + 1),
        |_| Answer::Value(0x1111_2222),
    ),
    // With IA32_VMX_MISC bit 29 a read-only field is writable and reads back what was
    // written; without it the VMWRITE fails (13).
    row(
        "vmwrite-read-only-then-read",
        Kind::RoundTrip(&[(EXIT_QUALIFICATION, 0x1234)], EXIT_QUALIFICATION),
        |misc| {
            if misc.vmwrite_any_field {
                Answer::Value(0x1234)
            } else {
                Answer::FailValid(13)
            }
        },
    ),
    // Event injection (SDM 27.2.1.3): VMfailValid(7) "invalid control field(s)".
    row(
        "inject-reserved-type-1",
        Kind::Launch(Payload::Vmcall, Setup::Inject(event(1, 0), 0, 0)),
        |_| Answer::FailValid(7),
    ),
    row(
        "inject-hardware-exception-vector-32",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(event(HARDWARE_EXCEPTION, 32), 0, 0),
        ),
        |_| Answer::FailValid(7),
    ),
    row(
        "inject-nmi-vector-3",
        Kind::Launch(Payload::Vmcall, Setup::Inject(event(NMI, 3), 0, 0)),
        |_| Answer::FailValid(7),
    ),
    row(
        "inject-ud-with-error-code",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(event(HARDWARE_EXCEPTION, 6) | DELIVER_ERROR_CODE, 0, 0),
        ),
        |_| Answer::FailValid(7),
    ),
    row(
        "inject-gp-without-error-code",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(event(HARDWARE_EXCEPTION, 13), 0, 0),
        ),
        |_| Answer::FailValid(7),
    ),
    row(
        "inject-gp-error-code-bits-31-16",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(
                event(HARDWARE_EXCEPTION, 13) | DELIVER_ERROR_CODE,
                0x1_0000,
                0,
            ),
        ),
        |_| Answer::FailValid(7),
    ),
    row(
        "inject-reserved-bits-30-12",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(event(HARDWARE_EXCEPTION, 6) | 1 << 20, 0, 0),
        ),
        |_| Answer::FailValid(7),
    ),
    // A #BP of length 0 is allowed only with IA32_VMX_MISC bit 30; it is then delivered to L3,
    // whose IDT is empty: triple fault.
    row(
        "inject-bp-length-0",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(event(SOFTWARE_EXCEPTION, 3), 0, 0),
        ),
        |misc| {
            if misc.inject_length_0 {
                Answer::Exit(TRIPLE_FAULT, 0)
            } else {
                Answer::FailValid(7)
            }
        },
    ),
    row(
        "inject-bp-length-16",
        Kind::Launch(
            Payload::Vmcall,
            Setup::Inject(event(SOFTWARE_EXCEPTION, 3), 0, 16),
        ),
        |_| Answer::FailValid(7),
    ),
    // VMCS link pointer (SDM 27.3.1.5): entry fails with exit reason 33 | bit 31, qualification 4.
    row(
        "link-pointer-beyond-ram",
        Kind::Launch(Payload::Vmcall, Setup::LinkPointer(Operand::BeyondRam)),
        |_| Answer::Exit(ENTRY_FAILURE_GUEST_STATE, 4),
    ),
    row(
        "link-pointer-unaligned",
        Kind::Launch(Payload::Vmcall, Setup::LinkPointer(Operand::VmcsUnaligned)),
        |_| Answer::Exit(ENTRY_FAILURE_GUEST_STATE, 4),
    ),
    row(
        "link-pointer-beyond-address-width",
        Kind::Launch(Payload::Vmcall, Setup::LinkPointer(Operand::BeyondWidth)),
        |_| Answer::Exit(ENTRY_FAILURE_GUEST_STATE, 4),
    ),
    row(
        "link-pointer-wrong-revision",
        Kind::Launch(Payload::Vmcall, Setup::LinkPointer(Operand::WrongRevision)),
        |_| Answer::Exit(ENTRY_FAILURE_GUEST_STATE, 4),
    ),
    // The VMXON region starts with the processor's revision identifier and bit 31 clear, which
    // is all 27.3.1.5 asks of a link pointer while "VMCS shadowing" is 0: entry succeeds, and
    // L3 reaches its VMCALL.
    row(
        "link-pointer-vmxon-region",
        Kind::Launch(Payload::Vmcall, Setup::LinkPointer(Operand::VmxonRegion)),
        |_| Answer::Exit(VMCALL, 0),
    ),
    // L3 at CPL 3: every VMX instruction exits (SDM 26.1.2), before the CPL check. Memory
    // operands are [RSI + 8]: the qualification is the displacement, 8 (SDM 28.2.1).
    row(
        "l3-cpl3-vmcall",
        Kind::Launch(Payload::Vmcall, Setup::None),
        |_| Answer::Exit(VMCALL, 0),
    ),
    row(
        "l3-cpl3-vmclear",
        Kind::Launch(Payload::Vmclear, Setup::None),
        |_| Answer::Exit(19, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-vmlaunch",
        Kind::Launch(Payload::Vmlaunch, Setup::None),
        |_| Answer::Exit(20, 0),
    ),
    row(
        "l3-cpl3-vmptrld",
        Kind::Launch(Payload::Vmptrld, Setup::None),
        |_| Answer::Exit(21, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-vmptrst",
        Kind::Launch(Payload::Vmptrst, Setup::None),
        |_| Answer::Exit(22, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-vmread",
        Kind::Launch(Payload::Vmread, Setup::None),
        |_| Answer::Exit(23, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-vmresume",
        Kind::Launch(Payload::Vmresume, Setup::None),
        |_| Answer::Exit(24, 0),
    ),
    row(
        "l3-cpl3-vmwrite",
        Kind::Launch(Payload::Vmwrite, Setup::None),
        |_| Answer::Exit(25, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-vmxoff",
        Kind::Launch(Payload::Vmxoff, Setup::None),
        |_| Answer::Exit(26, 0),
    ),
    row(
        "l3-cpl3-vmxon",
        Kind::Launch(Payload::Vmxon, Setup::None),
        |_| Answer::Exit(27, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-invept",
        Kind::Launch(Payload::Invept, Setup::None),
        |_| Answer::Exit(50, L3_QUALIFICATION_DISPLACEMENT),
    ),
    row(
        "l3-cpl3-invvpid",
        Kind::Launch(Payload::Invvpid, Setup::None),
        |_| Answer::Exit(53, L3_QUALIFICATION_DISPLACEMENT),
    ),
    // L3 with an empty IDT (limit 0): #UD → #GP → #DF → triple fault (SDM 6.15), exit reason 2.
    row(
        "l3-empty-idt-triple-fault",
        Kind::Launch(Payload::Ud2, Setup::None),
        |_| Answer::Exit(TRIPLE_FAULT, 0),
    ),
    // EPT (SDM 29.3.3). A PD outside RAM reads as all ones: bit 7 (a 2 MiB page) with reserved
    // bits 20:12 set is a misconfiguration (qualification 0).
    row(
        "ept-table-outside-ram",
        Kind::Launch(
            Payload::Read,
            Setup::EptWindow(Window::TableOutsideRam, 1 << 30),
        ),
        |_| Answer::Exit(EPT_MISCONFIGURATION, 0),
    ),
    // PDPT[1] → PML4: the walk for 1 GiB + n·4 KiB reads PML4[0] as a PDE (→ the PDPT as a
    // page table) and PDPT[n] as the PTE. A 4-level walk always ends after 4 levels: n = 0 is
    // a 4 KiB page on the EPT PD (memory type 0, UC, valid), so L3 reads PD[0] = 0xb7
    // (2 MiB, write-back, RWX, at 0).
    row(
        "ept-loop-leaf-is-a-table",
        Kind::Launch(Payload::Read, Setup::EptWindow(Window::LoopToPml4, 1 << 30)),
        |_| Answer::L3Read(0xb7),
    ),
    // n = 2: PDPT[2] is 0, not present: EPT violation, qualification read (bit 0), no
    // permissions (5:3), linear address valid (7) and a translation of it (8).
    row(
        "ept-loop-not-present",
        Kind::Launch(
            Payload::Read,
            Setup::EptWindow(Window::LoopToPml4, (1 << 30) + 0x2000),
        ),
        |_| Answer::Exit(EPT_VIOLATION, 0x181),
    ),
    // ghv-hostile's own ring-3 excursions, in VMX root operation: #GP(0) for each.
    row(
        "user-vmptrld",
        Kind::User(Op::Vmptrld, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmclear",
        Kind::User(Op::Vmclear, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmptrst",
        Kind::User(Op::Vmptrst, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmread",
        Kind::User(Op::Vmread, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmwrite",
        Kind::User(Op::Vmwrite, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmxon",
        Kind::User(Op::Vmxon, Operand::VmxonRegion),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-invept",
        Kind::User(Op::Invept, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-invvpid",
        Kind::User(Op::Invvpid, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmlaunch",
        Kind::User(Op::Vmlaunch, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmresume",
        Kind::User(Op::Vmresume, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
    row(
        "user-vmxoff",
        Kind::User(Op::Vmxoff, Operand::Scratch),
        |_| Answer::Exception(13, Some(0)),
    ),
];
