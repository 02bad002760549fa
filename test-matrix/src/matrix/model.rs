//! The enumeration: every combination of new event, event being delivered, interception
//! controls, PFEC class, error code, CPU mode and injection, as [`Case`]s that turn into
//! [`nvmx::route::Scenario`]s and carry a stable id and a description. docs/matrix.md says what
//! is enumerated and why.

use nvmx::event::{vector_has_error_code, Event, InterruptionType};
use nvmx::explain::{exception_name, type_name, PFEC_BITS};
use nvmx::route::{InterceptControls, Scenario};
use x86::irq::{
    BREAKPOINT_VECTOR, DEBUG_VECTOR, DOUBLE_FAULT_VECTOR, NONMASKABLE_INTERRUPT_VECTOR,
    OVERFLOW_VECTOR, PAGE_FAULT_VECTOR,
};

/// Linear address of every new #PF (its CR2 on delivery, its exit qualification on a VM exit).
pub const NEW_PF_ADDRESS: u64 = 0xdead_b000;
/// Linear address of the #PF being delivered: distinct from [`NEW_PF_ADDRESS`] so that a mix-up
/// of the two faults shows.
pub const DELIVERING_PF_ADDRESS: u64 = 0x1000_2000;
/// Pending-debug bits of a new hardware #DB: B1 and BS.
pub const NEW_DB_DR6: u64 = 0x4002;
/// Error code of the new contributory exceptions #TS, #NP, #SS, #GP: GDT selector 0x18.
pub const SELECTOR_ERROR_CODE: u16 = 0x18;
/// Error code of a new #CP: 1, a near-RET mismatch.
pub const CP_ERROR_CODE: u16 = 1;
/// Vector of the external interrupt being delivered, and of the representative `INT n`.
const DELIVERING_INTR_VECTOR: u8 = 0x30;
const DELIVERING_INT_N_VECTOR: u8 = 0x80;
/// Vectors above 31 used for `INT n` and external interrupts besides 0–31: the first
/// non-exception vector, a common system-call vector, the last vector.
pub const HIGH_VECTORS: [u8; 3] = [32, 0x80, 0xff];
/// #PF error-code bits whose every combination the matrix enumerates: P, W/R, U/S, RSVD, I/D,
/// PK, SS (the HLAT and SGX bits take part through the PFEC mask classes).
const PF_PATTERN_BITS: usize = 7;

/// The event whose delivery was in progress when the new one arose: nothing, or one
/// representative of each double-fault class (SDM Table 6-4) and each non-exception type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivering {
    /// No event was being delivered.
    Nothing,
    /// A benign hardware exception: #UD.
    Benign,
    /// A contributory exception: #GP with error code 0x28.
    Contributory,
    /// A page fault: #PF with error code 0x6 (write, user) at [`DELIVERING_PF_ADDRESS`].
    PageFault,
    /// A double fault.
    DoubleFault,
    /// A software interrupt: `INT 0x80`, 2 bytes.
    SoftwareInterrupt,
    /// An NMI.
    Nmi,
    /// An external interrupt, vector 0x30.
    ExternalInterrupt,
}

impl Delivering {
    /// Every value, in enumeration order.
    pub const ALL: [Self; 8] = [
        Self::Nothing,
        Self::Benign,
        Self::Contributory,
        Self::PageFault,
        Self::DoubleFault,
        Self::SoftwareInterrupt,
        Self::Nmi,
        Self::ExternalInterrupt,
    ];

    /// The representative event, `None` for [`Delivering::Nothing`].
    pub const fn event(self) -> Option<Event> {
        Some(match self {
            Self::Nothing => return None,
            Self::Benign => Event::hardware_exception(6, 0),
            Self::Contributory => Event::hardware_exception(13, 0x28),
            Self::PageFault => Event::page_fault(0x6, DELIVERING_PF_ADDRESS),
            Self::DoubleFault => Event::double_fault(),
            Self::SoftwareInterrupt => Event::software(
                InterruptionType::SoftwareInterrupt,
                DELIVERING_INT_N_VECTOR,
                2,
            ),
            Self::Nmi => Event::nmi(),
            Self::ExternalInterrupt => Event::external_interrupt(DELIVERING_INTR_VECTOR),
        })
    }

    /// Short name used in ids.
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Nothing => "none",
            Self::Benign => "ud",
            Self::Contributory => "gp",
            Self::PageFault => "pf",
            Self::DoubleFault => "df",
            Self::SoftwareInterrupt => "int80",
            Self::Nmi => "nmi",
            Self::ExternalInterrupt => "intr30",
        }
    }

    /// Name in words, for descriptions and report rows.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Benign => "benign #UD",
            Self::Contributory => "contributory #GP",
            Self::PageFault => "page fault #PF",
            Self::DoubleFault => "#DF",
            Self::SoftwareInterrupt => "INT 0x80",
            Self::Nmi => "NMI",
            Self::ExternalInterrupt => "external interrupt 0x30",
        }
    }
}

/// The new event's type and vector pairs, for events that arise while `delivering` is delivered.
/// With nothing being delivered: hardware exceptions 0–31 but 2 (vector 2 is the NMI's; reserved
/// vectors are included because VM entry injects them and the bitmap has their bits), the NMI,
/// `INT1` (1), `INT3` (3), `INTO` (4), and `INT n` and external interrupts on 0–31 plus
/// [`HIGH_VECTORS`] (an 8259 PIC may deliver any vector). While an event is delivered only the
/// processor raises exceptions, and never #DF directly: hardware exceptions but 2 and 8.
pub fn new_events(delivering: Delivering) -> impl Iterator<Item = (InterruptionType, u8)> {
    use InterruptionType::*;
    let exceptions = (0..32u8)
        .filter(move |&v| {
            v != NONMASKABLE_INTERRUPT_VECTOR
                && (delivering == Delivering::Nothing || v != DOUBLE_FAULT_VECTOR)
        })
        .map(|v| (HardwareException, v));
    let any_vector = || (0..32u8).chain(HIGH_VECTORS);
    let others: Vec<(InterruptionType, u8)> = if delivering == Delivering::Nothing {
        [
            (Nmi, NONMASKABLE_INTERRUPT_VECTOR),
            (PrivilegedSoftwareException, DEBUG_VECTOR),
            (SoftwareException, BREAKPOINT_VECTOR),
            (SoftwareException, OVERFLOW_VECTOR),
        ]
        .into_iter()
        .chain(any_vector().map(|v| (SoftwareInterrupt, v)))
        .chain(any_vector().map(|v| (ExternalInterrupt, v)))
        .collect()
    } else {
        Vec::new()
    };
    exceptions.chain(others)
}

/// The error codes enumerated for a new event: every combination of the [`PF_PATTERN_BITS`]
/// #PF bits; one representative for the other error-code exceptions (#DF and #AC push 0); 0 for
/// events without an error code.
pub fn error_codes(kind: InterruptionType, vector: u8) -> impl Iterator<Item = u16> {
    let pf = kind == InterruptionType::HardwareException && vector == PAGE_FAULT_VECTOR;
    let patterns = if pf { 1u16 << PF_PATTERN_BITS } else { 1 };
    let fixed = representative_error_code(kind, vector);
    (0..patterns).map(move |p| if pf { pf_pattern(p) } else { fixed })
}

/// Spreads the bits of `pattern` over the #PF error-code bits of [`PFEC_BITS`], in order.
fn pf_pattern(pattern: u16) -> u16 {
    PFEC_BITS
        .iter()
        .enumerate()
        .filter(|(i, _)| pattern & (1 << i) != 0)
        .fold(0, |code, (_, (bit, _))| code | *bit as u16)
}

/// The one error code of a new non-#PF event; the report's grids use W/R (0x2) for #PF.
pub fn representative_error_code(kind: InterruptionType, vector: u8) -> u16 {
    match vector {
        _ if kind != InterruptionType::HardwareException || !vector_has_error_code(vector) => 0,
        PAGE_FAULT_VECTOR => 0x2,
        10..=13 => SELECTOR_ERROR_CODE,
        21 => CP_ERROR_CODE,
        _ => 0,
    }
}

/// A page-fault error-code mask/match pair (SDM 25.6.3): a #PF exits iff
/// `((error_code & mask) == match) == bitmap[14]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pfec {
    /// PFEC_MASK.
    pub mask: u32,
    /// PFEC_MATCH.
    pub match_: u32,
}

impl Pfec {
    /// The classes: mask 0 with match 0 (every error code matches) and with match P (none
    /// matches: match has a bit outside the mask), then for each defined error-code bit a mask
    /// selecting it with match 0 (matches when the bit is clear) and with match = the bit
    /// (matches when it is set).
    pub fn classes() -> impl Iterator<Item = Self> {
        let p = PFEC_BITS[0].0;
        [Self { mask: 0, match_: 0 }, Self { mask: 0, match_: p }]
            .into_iter()
            .chain(PFEC_BITS.iter().flat_map(|&(bit, _)| {
                [
                    Self {
                        mask: bit,
                        match_: 0,
                    },
                    Self {
                        mask: bit,
                        match_: bit,
                    },
                ]
            }))
    }

    /// `pfec-MASK-MATCH` with bit names, e.g. `pfec-W-W`, `pfec-0-P`.
    pub fn tag(self) -> String {
        let name = |value: u32| {
            PFEC_BITS
                .iter()
                .find(|(bit, _)| *bit == value)
                .map_or("0", |(_, name)| name)
        };
        format!("pfec-{}-{}", name(self.mask), name(self.match_))
    }
}

/// One scenario of the matrix, by its coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Case {
    /// The event being delivered.
    pub delivering: Delivering,
    /// The new event's type.
    pub kind: InterruptionType,
    /// The new event's vector.
    pub vector: u8,
    /// The new event's error code (used only where one is pushed).
    pub error_code: u16,
    /// The control that governs the new event: exception-bitmap bit `vector` for exceptions,
    /// `INT1`/`INT3`/`INTO` and `INT n` below 32; "NMI exiting" for the NMI; "external-interrupt
    /// exiting" for external interrupts. (`INT n` above 31 has none: both values give one
    /// scenario, kept so that every event has the same coordinates.)
    pub own: bool,
    /// Every other interception control: the rest of the bitmap (so bit 8, which decides a #DF
    /// promotion), "NMI exiting", "external-interrupt exiting", "acknowledge interrupt on exit".
    pub rest: bool,
    /// The PFEC mask/match class.
    pub pfec: Pfec,
    /// Guest CR0.PE.
    pub protected_mode: bool,
    /// The first event of the chain was injected by VM entry.
    pub injected: bool,
}

impl Case {
    /// The new event with its payload.
    pub fn event(&self) -> Event {
        match (self.kind, self.vector) {
            (InterruptionType::HardwareException, PAGE_FAULT_VECTOR) => {
                Event::page_fault(self.error_code.into(), NEW_PF_ADDRESS)
            }
            (InterruptionType::HardwareException, DEBUG_VECTOR) => Event::debug(NEW_DB_DR6),
            (InterruptionType::HardwareException, v) => {
                Event::hardware_exception(v, self.error_code.into())
            }
            (InterruptionType::Nmi, _) => Event::nmi(),
            (InterruptionType::ExternalInterrupt, v) => Event::external_interrupt(v),
            // The shortest encodings: CD ib for INT n, F1 / CC / CE for INT1 / INT3 / INTO.
            (InterruptionType::SoftwareInterrupt, v) => Event::software(self.kind, v, 2),
            (kind, v) => Event::software(kind, v, 1),
        }
    }

    /// The governing hypervisor's controls.
    pub fn controls(&self) -> InterceptControls {
        let all = if self.rest { u32::MAX } else { 0 };
        let mut controls = InterceptControls {
            exception_bitmap: all,
            pfec_mask: self.pfec.mask,
            pfec_match: self.pfec.match_,
            nmi_exiting: self.rest,
            external_interrupt_exiting: self.rest,
            ack_interrupt_on_exit: self.rest,
        };
        match self.kind {
            InterruptionType::Nmi => controls.nmi_exiting = self.own,
            InterruptionType::ExternalInterrupt => controls.external_interrupt_exiting = self.own,
            _ if self.vector < 32 => {
                let bit = 1u32 << self.vector;
                controls.exception_bitmap = (all & !bit) | if self.own { bit } else { 0 };
            }
            _ => {}
        }
        controls
    }

    /// The scenario to route.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            controls: self.controls(),
            protected_mode: self.protected_mode,
            injected: self.injected,
            delivering: self.delivering.event(),
            event: self.event(),
        }
    }

    /// Stable id from the coordinates, e.g. `gp/hw14/ec0x3/pfec-W-W/own1/rest0/prot/direct`.
    pub fn id(&self) -> String {
        let event = match self.kind {
            InterruptionType::HardwareException => format!("hw{}", self.vector),
            InterruptionType::Nmi => "nmi".to_string(),
            InterruptionType::PrivilegedSoftwareException => "int1".to_string(),
            InterruptionType::SoftwareException if self.vector == BREAKPOINT_VECTOR => {
                "int3".to_string()
            }
            InterruptionType::SoftwareException => "into".to_string(),
            InterruptionType::SoftwareInterrupt => format!("intn{}", self.vector),
            InterruptionType::ExternalInterrupt => format!("intr{}", self.vector),
            InterruptionType::OtherEvent => format!("other{}", self.vector),
        };
        format!(
            "{}/{event}/ec{:#x}/{}/own{}/rest{}/{}/{}",
            self.delivering.tag(),
            self.error_code,
            self.pfec.tag(),
            u8::from(self.own),
            u8::from(self.rest),
            if self.protected_mode { "prot" } else { "real" },
            if self.injected { "inj" } else { "direct" },
        )
    }

    /// The scenario in words.
    pub fn description(&self) -> String {
        let event = match self.kind {
            InterruptionType::HardwareException
            | InterruptionType::PrivilegedSoftwareException
            | InterruptionType::SoftwareException => {
                format!("{} {}", type_name(self.kind), exception_name(self.vector))
            }
            _ => format!("{} vector {}", type_name(self.kind), self.vector),
        };
        let own = match self.kind {
            InterruptionType::Nmi => "NMI exiting".to_string(),
            InterruptionType::ExternalInterrupt => "external-interrupt exiting".to_string(),
            _ => format!("exception-bitmap bit {}", self.vector),
        };
        let on = |set: bool| if set { "set" } else { "clear" };
        format!(
            "{event}, error code {:#x}, arising while delivering {}; {own} {}, other controls {}; \
             PFEC mask {:#x} match {:#x}; {} mode; {}",
            self.error_code,
            self.delivering.label(),
            on(self.own),
            on(self.rest),
            self.pfec.mask,
            self.pfec.match_,
            if self.protected_mode {
                "protected"
            } else {
                "real"
            },
            match (self.injected, self.delivering) {
                (false, _) => "raised in the guest",
                (true, Delivering::Nothing) => "injected by VM entry",
                (true, _) => "the event being delivered was injected by VM entry",
            },
        )
    }
}

/// Every case of the matrix, in a fixed order.
pub fn cases() -> impl Iterator<Item = Case> {
    Delivering::ALL.into_iter().flat_map(|delivering| {
        new_events(delivering).flat_map(move |(kind, vector)| {
            error_codes(kind, vector).flat_map(move |error_code| {
                Pfec::classes().flat_map(move |pfec| {
                    (0..16u8).map(move |bits| Case {
                        delivering,
                        kind,
                        vector,
                        error_code,
                        own: bits & 1 != 0,
                        rest: bits & 2 != 0,
                        pfec,
                        protected_mode: bits & 4 != 0,
                        injected: bits & 8 != 0,
                    })
                })
            })
        })
    })
}
