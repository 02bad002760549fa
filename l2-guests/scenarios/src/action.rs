//! What the payload executes, and the event the CPU raises first for it (SDM Vol. 3 chapter 6,
//! the instruction's page in Vol. 2, and 4.7 for page-fault error codes).

use crate::{selectors, NOT_PRESENT, NO_EXECUTE, READ_ONLY, RESERVED, SUPERVISOR};

/// An event's interruption type, as VT-x names it (SDM 25.8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fault, trap or abort the processor detects (type 3).
    Hardware,
    /// `INT n` (type 4).
    SoftwareInterrupt,
    /// `INT1` (type 5).
    PrivilegedSoftware,
    /// `INT3`, `INTO` (type 6).
    SoftwareException,
}

/// An event the CPU raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    /// Its type.
    pub kind: Kind,
    /// Its vector.
    pub vector: u8,
    /// Its error code (0 for vectors that push none).
    pub error_code: u16,
    /// CR2 for a #PF, the DR6 bits for a #DB, else 0.
    pub payload: u64,
    /// The instruction's length for software types, else 0.
    pub insn_len: u8,
}

impl Raised {
    /// A hardware exception.
    pub const fn hardware(vector: u8, error_code: u16) -> Self {
        Self {
            kind: Kind::Hardware,
            vector,
            error_code,
            payload: 0,
            insn_len: 0,
        }
    }

    /// A #PF with its error code and address.
    pub const fn page_fault(error_code: u16, address: u64) -> Self {
        Self {
            kind: Kind::Hardware,
            vector: 14,
            error_code,
            payload: address,
            insn_len: 0,
        }
    }

    pub const fn software(kind: Kind, vector: u8, insn_len: u8) -> Self {
        Self {
            kind,
            vector,
            error_code: 0,
            payload: 0,
            insn_len,
        }
    }
}

/// #PF error-code bits (SDM 4.7).
const P: u16 = 1 << 0;
const W: u16 = 1 << 1;
const U: u16 = 1 << 2;
const RSVD: u16 = 1 << 3;
const ID: u16 = 1 << 4;
/// DR6.BS: the #DB of single-stepping (SDM 18.2.3).
const DR6_BS: u64 = 1 << 14;

macro_rules! actions {
    ($($variant:ident $name:literal $user:literal => $raised:expr;)*) => {
        /// What the payload executes (one entry point each in the guests' payload.s, named
        /// `mx_` + the name with `-` as `_`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Action { $($variant,)* }

        /// Every action, in run order.
        pub const ACTIONS: &[Action] = &[$(Action::$variant,)*];

        impl Action {
            /// The name in scenario ids.
            pub const fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// Whether the payload runs it at CPL 3 (after an IRETQ from CPL 0).
            pub const fn user(self) -> bool {
                match self { $(Self::$variant => $user,)* }
            }

            /// The event the CPU raises first.
            pub const fn raised(self) -> Raised {
                match self { $(Self::$variant => $raised,)* }
            }
        }
    };
}

actions! {
    // #DE: DIV by zero (SDM 6.15, Interrupt 0).
    DivideByZero "de" false => Raised::hardware(0, 0);
    // #DB from RFLAGS.TF: a trap after the next instruction, DR6.BS (SDM 18.3.1.4).
    SingleStep "db-tf" false => Raised { kind: Kind::Hardware, vector: 1, error_code: 0, payload: DR6_BS, insn_len: 0 };
    // INT1 (ICEBP, 0xF1): a privileged software exception (SDM 25.8.3).
    Int1 "int1" false => Raised::software(Kind::PrivilegedSoftware, 1, 1);
    // INT3 (0xCC): a software exception.
    Int3 "int3" false => Raised::software(Kind::SoftwareException, 3, 1);
    // INT n (0xCD n): software interrupts, also onto exception vectors. INT 4 and INT 5 are
    // the only ways to reach #OF's and #BR's gates in 64-bit mode (INTO and BOUND are #UD).
    IntN0 "int-0x0" false => Raised::software(Kind::SoftwareInterrupt, 0, 2);
    IntN1 "int-0x1" false => Raised::software(Kind::SoftwareInterrupt, 1, 2);
    IntN3 "int-0x3" false => Raised::software(Kind::SoftwareInterrupt, 3, 2);
    IntN4 "int-0x4" false => Raised::software(Kind::SoftwareInterrupt, 4, 2);
    IntN5 "int-0x5" false => Raised::software(Kind::SoftwareInterrupt, 5, 2);
    IntN6 "int-0x6" false => Raised::software(Kind::SoftwareInterrupt, 6, 2);
    IntN7 "int-0x7" false => Raised::software(Kind::SoftwareInterrupt, 7, 2);
    IntN16 "int-0x10" false => Raised::software(Kind::SoftwareInterrupt, 16, 2);
    IntN32 "int-0x20" false => Raised::software(Kind::SoftwareInterrupt, 0x20, 2);
    IntN128 "int-0x80" false => Raised::software(Kind::SoftwareInterrupt, 0x80, 2);
    IntN255 "int-0xff" false => Raised::software(Kind::SoftwareInterrupt, 0xff, 2);
    // INTO (0xCE) is invalid in 64-bit mode: #UD, never #OF (SDM Vol. 2, INTO).
    Into "into" false => Raised::hardware(6, 0);
    // UD2.
    Ud2 "ud2" false => Raised::hardware(6, 0);
    // FNOP with CR0.TS = 1: #NM (SDM 6.15, Interrupt 7).
    FnopTs "nm-fnop" false => Raised::hardware(7, 0);
    // FWAIT with CR0.MP = CR0.TS = 1: #NM.
    FwaitTs "nm-fwait" false => Raised::hardware(7, 0);
    // A load through a non-canonical address: #GP(0) (SDM 3.3.7.1).
    ReadNonCanonical "gp-noncanonical" false => Raised::hardware(13, 0);
    // MOV DS with a selector beyond the GDT limit: #GP(selector).
    LoadBeyondGdt "gp-selector" false => Raised::hardware(13, selectors::BEYOND_GDT);
    // A load through RBP (SS-relative) at a non-canonical address: #SS(0).
    StackNonCanonical "ss-noncanonical" false => Raised::hardware(12, 0);
    // MOV DS with a not-present descriptor: #NP(selector).
    LoadNotPresent "np-selector" false => Raised::hardware(11, selectors::NOT_PRESENT_DATA);
    // x87 division by zero with ZM unmasked, then FWAIT, CR0.NE = 1: #MF (SDM 6.15, Int 16).
    X87DivideByZero "mf" false => Raised::hardware(16, 0);
    // DIVSS by zero with MXCSR.ZM clear, CR4.OSFXSR = CR4.OSXMMEXCPT = 1: #XM (Interrupt 19).
    SseDivideByZero "xm" false => Raised::hardware(19, 0);
    // #PF at CPL 0: not-present read/write/fetch, write to read-only, reserved bit, NX fetch.
    ReadNotPresent "pf-r-np" false => Raised::page_fault(0, NOT_PRESENT);
    WriteNotPresent "pf-w-np" false => Raised::page_fault(W, NOT_PRESENT);
    FetchNotPresent "pf-x-np" false => Raised::page_fault(ID, NOT_PRESENT);
    WriteReadOnly "pf-w-ro" false => Raised::page_fault(P | W, READ_ONLY);
    ReadReserved "pf-r-rsvd" false => Raised::page_fault(P | RSVD, RESERVED);
    WriteReserved "pf-w-rsvd" false => Raised::page_fault(P | W | RSVD, RESERVED);
    FetchNoExecute "pf-x-nx" false => Raised::page_fault(P | ID, NO_EXECUTE);
    // #PF at CPL 3.
    UserReadNotPresent "u-pf-r-np" true => Raised::page_fault(U, NOT_PRESENT);
    UserWriteNotPresent "u-pf-w-np" true => Raised::page_fault(U | W, NOT_PRESENT);
    UserReadSupervisor "u-pf-r-sup" true => Raised::page_fault(P | U, SUPERVISOR);
    UserWriteSupervisor "u-pf-w-sup" true => Raised::page_fault(P | W | U, SUPERVISOR);
    UserReadReserved "u-pf-r-rsvd" true => Raised::page_fault(P | U | RSVD, RESERVED);
    UserFetchNoExecute "u-pf-x-nx" true => Raised::page_fault(P | U | ID, NO_EXECUTE);
    UserFetchSupervisor "u-pf-x-sup" true => Raised::page_fault(P | U | ID, SUPERVISOR);
    // CPL 3: INT n and INT3 through a DPL 0 gate; their delivery raises #GP(vector * 8 + 2)
    // (SDM 6.12.1.1, `Env::delivery_fault`).
    UserIntN32 "u-int-0x20" true => Raised::software(Kind::SoftwareInterrupt, 0x20, 2);
    UserInt3 "u-int3" true => Raised::software(Kind::SoftwareException, 3, 1);
    // CLI at CPL 3 with IOPL 0: #GP(0).
    UserCli "u-cli" true => Raised::hardware(13, 0);
    // A misaligned load at CPL 3 with CR0.AM = RFLAGS.AC = 1: #AC(0) (SDM 6.15, Int 17).
    UserMisaligned "u-ac" true => Raised::hardware(17, 0);
    // UD2 and DIV by zero at CPL 3 (delivered through a stack switch to RSP0).
    UserUd2 "u-ud2" true => Raised::hardware(6, 0);
    UserDivideByZero "u-de" true => Raised::hardware(0, 0);
}
