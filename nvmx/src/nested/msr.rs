//! RDMSR/WRMSR of L3 that vmcs12 lets through (its MSR bitmap, SDM 25.6.9, 26.1.3): the
//! processor would have executed it for L3 as if the guest hypervisor were not there, on the MSR
//! as L3 has it. vmcs02 makes every such access exit (it uses no MSR bitmap), so l1-hv performs
//! it where L3's value is while l1-hv runs:
//!
//! - MSRs vmcs02's VM entry loaded and its VM exit saved (SDM 27.3.2.1, 28.3.1): in vmcs02's
//!   guest-state area, with the checks WRMSR makes;
//! - MSRs l1-hv's own MSR bitmap for L2 makes exit (those it owns, those outside the bitmap's
//!   ranges): the view l1-hv gives L2, emulated the same way;
//! - the rest L2 reaches directly: on the processor, as L2's access would be, with the TSC
//!   offset of vmcs02 added to a read of the TSC (SDM 26.3 "RDMSR").

use super::arch::{canonical, efer_after_wrmsr, pat_valid, DEBUGCTL_ALLOWED};
use super::controls::Controls;
use shadow_vmcs::Vmcs;
use x86::msr::{
    IA32_DEBUGCTL, IA32_EFER, IA32_FS_BASE, IA32_GS_BASE, IA32_PAT, IA32_SYSENTER_CS,
    IA32_SYSENTER_EIP, IA32_SYSENTER_ESP, IA32_TIME_STAMP_COUNTER,
};
use x86::vmx::vmcs::control::{self, EntryControls, ExitControls, PrimaryControls};
use x86::vmx::vmcs::guest;

/// The bit for MSR `msr`'s read (or `write`) access in a 4 KiB MSR bitmap (SDM 25.6.9): read
/// bitmaps for 0–1FFFH and C0000000H–C0001FFFH at byte 0 and 1024, write bitmaps 2048 bytes
/// after them. `None` for an MSR outside both ranges, whose access always exits.
pub fn msr_bitmap_bit(msr: u32, write: bool) -> Option<u64> {
    let (range_byte, index) = match msr {
        0..=0x1FFF => (0, msr),
        0xC000_0000..=0xC000_1FFF => (0x400, msr - 0xC000_0000),
        _ => return None,
    };
    let byte = range_byte + if write { 0x800 } else { 0 };
    Some(byte * 8 + u64::from(index))
}

/// Whether `bitmap` (an MSR bitmap page) makes this access exit.
fn bitmap_exits(bitmap: &[u8; 4096], msr: u32, write: bool) -> bool {
    msr_bitmap_bit(msr, write).is_none_or(|bit| bitmap[bit as usize / 8] & 1 << (bit % 8) != 0)
}

/// An MSR whose value a VMCS's guest-state area holds while l1-hv runs: L3's in vmcs02 while
/// l1-hv handles an exit of L3, L2's in vmcs01.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmcsMsr {
    Efer,
    Pat,
    DebugCtl,
    SysenterCs,
    SysenterEsp,
    SysenterEip,
    FsBase,
    GsBase,
}

impl VmcsMsr {
    /// The MSR `msr` if `vmcs` switches it: loaded by its VM entry and saved by its VM exit.
    /// SYSENTER_CS/ESP/EIP and the FS/GS bases always are (SDM 27.3.2.1, 27.3.2.2, 28.3.1,
    /// 28.3.2); IA32_EFER, IA32_PAT and IA32_DEBUGCTL by their load and save controls.
    pub fn of(msr: u32, vmcs: &impl Vmcs) -> Option<Self> {
        let c = Controls::read(vmcs);
        let switched = |entry: EntryControls, exit: ExitControls| {
            c.entry.contains(entry) && c.exit.contains(exit)
        };
        match msr {
            IA32_SYSENTER_CS => Some(Self::SysenterCs),
            IA32_SYSENTER_ESP => Some(Self::SysenterEsp),
            IA32_SYSENTER_EIP => Some(Self::SysenterEip),
            IA32_FS_BASE => Some(Self::FsBase),
            IA32_GS_BASE => Some(Self::GsBase),
            IA32_EFER => switched(EntryControls::LOAD_IA32_EFER, ExitControls::SAVE_IA32_EFER)
                .then_some(Self::Efer),
            IA32_PAT => switched(EntryControls::LOAD_IA32_PAT, ExitControls::SAVE_IA32_PAT)
                .then_some(Self::Pat),
            IA32_DEBUGCTL => switched(
                EntryControls::LOAD_DEBUG_CONTROLS,
                ExitControls::SAVE_DEBUG_CONTROLS,
            )
            .then_some(Self::DebugCtl),
            _ => None,
        }
    }

    /// The guest-state field that holds it.
    const fn field(self) -> u32 {
        match self {
            Self::Efer => guest::IA32_EFER_FULL,
            Self::Pat => guest::IA32_PAT_FULL,
            Self::DebugCtl => guest::IA32_DEBUGCTL_FULL,
            Self::SysenterCs => guest::IA32_SYSENTER_CS,
            Self::SysenterEsp => guest::IA32_SYSENTER_ESP,
            Self::SysenterEip => guest::IA32_SYSENTER_EIP,
            Self::FsBase => guest::FS_BASE,
            Self::GsBase => guest::GS_BASE,
        }
    }

    /// RDMSR: the guest's value.
    pub fn read(self, vmcs: &impl Vmcs) -> u64 {
        vmcs.read(self.field())
    }

    /// WRMSR of `value`, or `Err(MsrFault)` where the processor raises #GP(0) and nothing
    /// changes: reserved EFER bits or a change of LME with paging on ([`efer_after_wrmsr`]), an
    /// invalid memory type in the PAT (SDM 13.12.2), IA32_DEBUGCTL bits other than those the
    /// VM-entry checks let vmcs02 load (an access the processor might allow is refused rather
    /// than make the VMCS's entry fail, SDM 27.3.1.1), a non-canonical address (SDM Vol. 2B
    /// WRMSR). SYSENTER_CS keeps bits 31:0, the width of its field (SDM 25.4.2).
    pub fn write(self, vmcs: &mut impl Vmcs, value: u64) -> Result<(), MsrFault> {
        let stored = match self {
            Self::Efer => efer_after_wrmsr(
                vmcs.read(guest::IA32_EFER_FULL),
                value,
                vmcs.read(guest::CR0),
            )
            .ok_or(MsrFault)?,
            Self::Pat => Some(value).filter(|&v| pat_valid(v)).ok_or(MsrFault)?,
            Self::DebugCtl => Some(value)
                .filter(|&v| v & !DEBUGCTL_ALLOWED == 0)
                .ok_or(MsrFault)?,
            Self::SysenterCs => value & 0xFFFF_FFFF,
            Self::SysenterEsp | Self::SysenterEip | Self::FsBase | Self::GsBase => {
                Some(value).filter(|&v| canonical(v)).ok_or(MsrFault)?
            }
        };
        vmcs.write(self.field(), stored);
        Ok(())
    }
}

/// The processor would raise #GP(0) for this RDMSR/WRMSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrFault;

/// Where an RDMSR/WRMSR of L3 that vmcs12 does not intercept is performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3Msr {
    /// In vmcs02's guest-state area ([`VmcsMsr::read`], [`VmcsMsr::write`]).
    Vmcs02(VmcsMsr),
    /// l1-hv's MSR bitmap makes L2's own access exit: l1-hv answers L3 as it answers L2.
    AsForL2,
    /// RDMSR of IA32_TSC with "use TSC offsetting" in vmcs02: the processor's TSC plus vmcs02's
    /// TSC offset, which is what L3's RDMSR returns on hardware (SDM 26.3).
    OffsetTsc {
        /// vmcs02's TSC offset (vmcs12's plus l1-hv's).
        offset: u64,
    },
    /// L2 accesses it directly: executed on the processor, as L2's access would be.
    Hardware,
}

/// Where L3's RDMSR (or `write`: WRMSR) of `msr` goes, vmcs02 current with L3's state, and
/// `l2_bitmap` the MSR bitmap l1-hv runs L2 with.
pub fn l3_msr(msr: u32, write: bool, vmcs02: &impl Vmcs, l2_bitmap: &[u8; 4096]) -> L3Msr {
    if let Some(held) = VmcsMsr::of(msr, vmcs02) {
        return L3Msr::Vmcs02(held);
    }
    if bitmap_exits(l2_bitmap, msr, write) {
        return L3Msr::AsForL2;
    }
    let offsetting = Controls::read(vmcs02)
        .primary
        .contains(PrimaryControls::USE_TSC_OFFSETTING);
    if msr == IA32_TIME_STAMP_COUNTER && !write && offsetting {
        return L3Msr::OffsetTsc {
            offset: vmcs02.read(control::TSC_OFFSET_FULL),
        };
    }
    L3Msr::Hardware
}

/// The MSRs outside the VMCSs, as the kernel has them: the processor's, and those l1-hv
/// emulates for L2.
pub trait MsrBus {
    /// The MSR bitmap l1-hv runs L2 with: its set bits are the MSRs l1-hv emulates.
    fn l2_bitmap(&self) -> &[u8; 4096];
    /// RDMSR on the processor.
    fn read_hardware(&mut self, msr: u32) -> Result<u64, MsrFault>;
    /// WRMSR on the processor, of an MSR L2 may write directly (so none l1-hv depends on).
    fn write_hardware(&mut self, msr: u32, value: u64) -> Result<(), MsrFault>;
    /// RDMSR of an MSR l1-hv emulates for L2, performed with `vmcs` (vmcs01, or vmcs02 for L3)
    /// holding the accessing level's guest state.
    fn read_emulated(&mut self, msr: u32, vmcs: &mut impl Vmcs) -> Result<u64, MsrFault>;
    /// WRMSR of an MSR l1-hv emulates for L2, as [`Self::read_emulated`].
    fn write_emulated(
        &mut self,
        msr: u32,
        value: u64,
        vmcs: &mut impl Vmcs,
    ) -> Result<(), MsrFault>;
}

/// RDMSR of L3 that vmcs12 does not intercept, performed where [`l3_msr`] places it; `vmcs02`
/// holds L3's state.
pub fn l3_rdmsr(msr: u32, vmcs02: &mut impl Vmcs, bus: &mut impl MsrBus) -> Result<u64, MsrFault> {
    match l3_msr(msr, false, vmcs02, bus.l2_bitmap()) {
        L3Msr::Vmcs02(held) => Ok(held.read(vmcs02)),
        L3Msr::OffsetTsc { offset } => bus
            .read_hardware(IA32_TIME_STAMP_COUNTER)
            .map(|tsc| tsc.wrapping_add(offset)),
        L3Msr::AsForL2 => bus.read_emulated(msr, vmcs02),
        L3Msr::Hardware => bus.read_hardware(msr),
    }
}

/// WRMSR of L3 that vmcs12 does not intercept, as [`l3_rdmsr`].
pub fn l3_wrmsr(
    msr: u32,
    value: u64,
    vmcs02: &mut impl Vmcs,
    bus: &mut impl MsrBus,
) -> Result<(), MsrFault> {
    match l3_msr(msr, true, vmcs02, bus.l2_bitmap()) {
        L3Msr::Vmcs02(held) => held.write(vmcs02, value),
        L3Msr::AsForL2 => bus.write_emulated(msr, value, vmcs02),
        L3Msr::OffsetTsc { .. } | L3Msr::Hardware => bus.write_hardware(msr, value),
    }
}

/// WRMSR of L2 as l1-hv runs it, `vmcs01` holding L2's state: in vmcs01's guest-state area where
/// vmcs01 switches the MSR, emulated where l1-hv's bitmap makes L2's access exit, else on the
/// processor.
pub fn l2_wrmsr(
    msr: u32,
    value: u64,
    vmcs01: &mut impl Vmcs,
    bus: &mut impl MsrBus,
) -> Result<(), MsrFault> {
    if let Some(held) = VmcsMsr::of(msr, vmcs01) {
        return held.write(vmcs01, value);
    }
    if bitmap_exits(bus.l2_bitmap(), msr, true) {
        bus.write_emulated(msr, value, vmcs01)
    } else {
        bus.write_hardware(msr, value)
    }
}

#[cfg(test)]
mod tests;
