//! The debugger's breakpoints: INT3 bytes it wrote into guest memory and the four debug
//! address registers it owns while attached. l1-hv's exit handlers consult this state to tell
//! the debugger's events from the guest's own.

use alloc::vec::Vec;

/// The INT3 instruction (SDM vol. 2, "INT n/INTO/INT3/INT1").
pub const INT3: u8 = 0xcc;

/// One INT3 the debugger wrote into guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwBreakpoint {
    /// Guest-virtual address gdb asked for.
    pub addr: u64,
    /// Guest-physical address the byte was written at (restored there, whatever CR3 is then).
    pub gpa: u64,
    /// The byte the INT3 replaced.
    pub original: u8,
}

/// What a debug address register watches (DR7 R/W field, SDM 18.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwKind {
    /// Instruction fetch (R/W = 00, LEN must be 00).
    Execute,
    /// Data writes (R/W = 01).
    Write,
    /// Data reads and writes (R/W = 11; x86 has no read-only data breakpoint).
    ReadWrite,
}

/// One debug address register the debugger uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwSlot {
    /// Guest-virtual (linear) address.
    pub addr: u64,
    /// What it watches.
    pub kind: HwKind,
    /// Bytes watched: 1, 2, 4 or 8, `addr` aligned to it (SDM 18.2.5); 1 for `Execute`.
    pub len: u8,
}

/// DR7 bit 10 reads as 1 (SDM 18.2.4).
const DR7_RESERVED_ONE: u64 = 1 << 10;
/// DR7.LE/GE: exact data breakpoints, recommended whenever data breakpoints are used
/// (SDM 18.2.4).
const DR7_EXACT: u64 = 3 << 8;
/// DR6 B0–B3 (SDM 18.2.3); the exit qualification of a #DB VM exit has them in the same bits
/// (SDM 28.2.1, Table 28-1).
const DR6_B0_B3: u64 = 0xf;

/// The debugger's state a guest keeps while a debugger is attached.
#[derive(Debug, Default)]
pub struct DebugState {
    /// INT3s in guest memory.
    pub sw: Vec<SwBreakpoint>,
    /// DR0–DR3 as the debugger uses them.
    pub hw: [Option<HwSlot>; 4],
    /// The next VM entry single-steps with the monitor trap flag.
    pub stepping: bool,
}

impl DebugState {
    /// Whether an INT3 at guest-virtual `addr` is the debugger's.
    pub fn owns_breakpoint(&self, addr: u64) -> bool {
        self.sw.iter().any(|b| b.addr == addr)
    }

    /// The slot a #DB with these DR6-format bits (a #DB exit's qualification) reports, if it
    /// is the debugger's. B0–B3 may be set for a matching breakpoint DR7 does not enable (SDM
    /// 18.2.3), so only the slots the debugger filled count.
    pub fn hit(&self, dr6: u64) -> Option<(usize, HwSlot)> {
        (0..4)
            .filter(|i| dr6 & DR6_B0_B3 & (1 << i) != 0)
            .find_map(|i| self.hw[i].map(|slot| (i, slot)))
    }

    /// DR0–DR3 and DR7 for the debugger's slots: each used slot locally enabled (L0–L3) with
    /// its R/W and LEN fields (SDM 18.2.4, Figure 18-1).
    pub fn debug_registers(&self) -> ([u64; 4], u64) {
        let mut addrs = [0; 4];
        let mut dr7 = DR7_RESERVED_ONE;
        for (i, slot) in self.hw.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let rw = match slot.kind {
                HwKind::Execute => 0b00,
                HwKind::Write => 0b01,
                HwKind::ReadWrite => 0b11,
            };
            let len = match slot.len {
                2 => 0b01,
                8 => 0b10,
                4 => 0b11,
                _ => 0b00,
            };
            addrs[i] = slot.addr;
            dr7 |= 1 << (2 * i) | rw << (16 + 4 * i) | len << (18 + 4 * i);
            if slot.kind != HwKind::Execute {
                dr7 |= DR7_EXACT;
            }
        }
        (addrs, dr7)
    }

    /// Takes a free debug register for `slot`; `false` when all four are in use or the
    /// length/alignment is one the hardware cannot watch (gdb then falls back on software
    /// watchpoints).
    pub fn add_hw(&mut self, slot: HwSlot) -> bool {
        let len_ok = match slot.kind {
            HwKind::Execute => slot.len == 1,
            _ => matches!(slot.len, 1 | 2 | 4 | 8) && slot.addr.is_multiple_of(u64::from(slot.len)),
        };
        match self.hw.iter_mut().find(|s| s.is_none()) {
            Some(free) if len_ok => {
                *free = Some(slot);
                true
            }
            _ => false,
        }
    }

    /// Frees the debug register holding exactly `slot`; `false` if none does.
    pub fn remove_hw(&mut self, slot: HwSlot) -> bool {
        match self.hw.iter_mut().find(|s| **s == Some(slot)) {
            Some(used) => {
                *used = None;
                true
            }
            None => false,
        }
    }
}
