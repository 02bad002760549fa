//! I/O instructions (SDM 28.2.1, Table 28-5).

use shadow_vmcs::Vmcs;

/// The access size (bits 2:0, size − 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSize {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Word,
    /// 4 bytes.
    Dword,
}

impl IoSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u16 {
        match self {
            IoSize::Byte => 1,
            IoSize::Word => 2,
            IoSize::Dword => 4,
        }
    }
}

/// The direction of the access (bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDirection {
    /// OUT, OUTS.
    Out,
    /// IN, INS.
    In,
}

/// How the instruction names its port (bit 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOperand {
    /// In DX.
    Dx,
    /// An immediate.
    Immediate,
}

/// The I/O instruction that caused the exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoInstruction {
    /// The first port accessed (bits 31:16).
    pub port: u16,
    /// The access size.
    pub size: IoSize,
    /// IN or OUT.
    pub direction: IoDirection,
    /// INS/OUTS (bit 4).
    pub string: bool,
    /// A REP prefix (bit 5).
    pub rep: bool,
    /// DX or immediate.
    pub operand: IoOperand,
}

impl IoInstruction {
    /// The bits Table 28-5 defines: 2:0 size, 3 direction, 4 string, 5 REP, 6 operand
    /// encoding, 31:16 port.
    pub const DEFINED: u64 = 0xFFFF_007F;

    /// Decodes qualification `q`; `None` if the size field holds a value Table 28-5 does not
    /// use (only 0, 1 and 3 are).
    pub const fn from_qualification(q: u64) -> Option<Self> {
        let size = match q & 7 {
            0 => IoSize::Byte,
            1 => IoSize::Word,
            3 => IoSize::Dword,
            _ => return None,
        };
        Some(IoInstruction {
            port: (q >> 16) as u16,
            size,
            direction: if q & 1 << 3 != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: q & 1 << 4 != 0,
            rep: q & 1 << 5 != 0,
            operand: if q & 1 << 6 != 0 {
                IoOperand::Immediate
            } else {
                IoOperand::Dx
            },
        })
    }

    /// The I/O instruction of the exit `vmcs` last recorded.
    pub fn read(vmcs: &impl Vmcs) -> Option<Self> {
        Self::from_qualification(super::qualification(vmcs))
    }

    /// The ports accessed, `port` to `port + size − 1`, as 32-bit numbers: the last ones lie
    /// above FFFFH when the access wraps (which always exits, SDM 26.1.3).
    pub fn ports(&self) -> core::ops::Range<u32> {
        let first = u32::from(self.port);
        first..first + u32::from(self.size.bytes())
    }
}
