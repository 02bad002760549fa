//! Events in the VMCS's interruption-information format (SDM 25.8.3 VM-entry, 25.9.2 VM-exit,
//! 25.9.3 IDT-vectoring), and how two exceptions combine (SDM 6.15, Table 6-5).

/// Bit 31: the information is valid.
const VALID: u32 = 1 << 31;
/// Bit 11: an error code is delivered (and is in the matching error-code field).
pub const ERROR_CODE_VALID: u32 = 1 << 11;
const DOUBLE_FAULT: u8 = 8;
const PAGE_FAULT: u8 = 14;

/// Interruption types (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// External interrupt (0), NMI (2) or a type ghv does not tell apart.
    Other,
    /// Hardware exception (3).
    HardwareException,
    /// Software interrupt (4), privileged software exception (5), software exception (6):
    /// caused by an instruction whose length VM entry needs to deliver it (SDM 27.6.1.1).
    Software,
}

/// One event: vector, type, error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The information field, bit 31 set, bit 12 (NMI unblocking, exit-only) clear.
    info: u32,
    /// The error code, if bit 11 is set.
    pub error_code: Option<u32>,
}

impl Event {
    /// The event an information field and its error-code field describe, if valid.
    pub fn decode(info: u32, error_code: Option<u32>) -> Option<Self> {
        (info & VALID != 0).then_some(Self {
            info: info & !(1 << 12),
            error_code,
        })
    }

    /// A #DF, which always has error code 0 (SDM 6.15, Interrupt 8).
    fn double_fault() -> Self {
        Self {
            info: VALID | ERROR_CODE_VALID | (3 << 8) | u32::from(DOUBLE_FAULT),
            error_code: Some(0),
        }
    }

    /// The vector.
    pub fn vector(self) -> u8 {
        self.info as u8
    }

    /// The type.
    pub fn kind(self) -> Kind {
        match (self.info >> 8) & 7 {
            3 => Kind::HardwareException,
            4..=6 => Kind::Software,
            _ => Kind::Other,
        }
    }

    /// The VM-entry interruption-information value that injects this event.
    pub fn entry_info(self) -> u32 {
        self.info
    }
}

/// The SDM's classes for the double-fault rule (SDM Table 6-4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

fn class(vector: u8) -> Class {
    match vector {
        0 | 10..=13 => Class::Contributory,
        PAGE_FAULT => Class::PageFault,
        DOUBLE_FAULT => Class::DoubleFault,
        _ => Class::Benign,
    }
}

/// What L3 must receive when `second` was raised while delivering `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combined {
    /// Deliver this event.
    Deliver(Event),
    /// A fault while delivering #DF: L3 shuts down.
    TripleFault,
}

/// SDM Table 6-5, applied when a hardware exception interrupted the delivery of another
/// hardware exception; every other pair is handled serially (the second event is delivered,
/// an interrupted software event recurs when its instruction runs again).
pub fn combine(first: Option<Event>, second: Event) -> Combined {
    let Some(first) = first.filter(|f| f.kind() == Kind::HardwareException) else {
        return Combined::Deliver(second);
    };
    if second.kind() != Kind::HardwareException {
        return Combined::Deliver(second);
    }
    match (class(first.vector()), class(second.vector())) {
        (Class::DoubleFault, Class::Contributory | Class::PageFault) => Combined::TripleFault,
        (Class::Contributory, Class::Contributory)
        | (Class::PageFault, Class::Contributory | Class::PageFault) => {
            Combined::Deliver(Event::double_fault())
        }
        _ => Combined::Deliver(second),
    }
}
