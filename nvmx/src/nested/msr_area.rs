//! vmcs12's MSR areas (SDM 25.7.2, 25.8.2): lists of 16-byte entries in the guest hypervisor's
//! memory — bits 31:0 the MSR index, bits 63:32 reserved, bits 127:64 the data — that the
//! processor would process at the transitions vmcs02 makes for it:
//!
//! - the VM-entry MSR-load area after vmcs12's guest state is loaded (SDM 27.4): each entry
//!   written as L3's WRMSR would be ([`super::l3_wrmsr`]); a failing entry fails the VM entry
//!   with exit reason 34 and the entry's number as the exit qualification (SDM 27.8);
//! - the VM-exit MSR-store area after L3's guest state is saved (SDM 28.4): each entry's data
//!   receives L3's RDMSR ([`super::l3_rdmsr`]);
//! - the VM-exit MSR-load area after the host state is loaded into L2 (SDM 28.6): each entry
//!   written as L2's WRMSR would be ([`super::l2_wrmsr`]).
//!
//! A failure of either exit list is a VMX abort (SDM 28.7). The areas are read as the
//! processor's bus answers ([`GuestMemory::read_or_ones`]): an entry outside RAM reads as all
//! ones, whose reserved half fails the entry; a store outside RAM is dropped, as the bus drops
//! it. Counts of 0 read no memory.

use super::exit::VmxAbort;
use super::msr::{l2_wrmsr, l3_rdmsr, l3_wrmsr, MsrBus, MsrFault};
use crate::insn::GuestMemory;
use shadow_vmcs::Vmcs;
use x86::msr::{IA32_FS_BASE, IA32_GS_BASE, IA32_SMBASE, IA32_SMM_MONITOR_CTL};
use x86::vmx::vmcs::control;

/// Size of one entry (SDM Table 25-15).
pub(crate) const MSR_ENTRY_BYTES: u64 = 16;

/// IA32_VMX_MISC bits 27:25 as l1-hv reports them: N = 0, so 512 × (N + 1) = 512 is the
/// recommended maximum number of entries in each list (SDM A.6). Beyond it the SDM leaves the
/// behaviour undefined; l1-hv fails the first entry past it, which bounds the work one
/// transition does for the guest hypervisor.
pub const MISC_MSR_LIST_SIZE: u64 = 0;
/// The number of entries l1-hv processes in one list (see [`MISC_MSR_LIST_SIZE`]).
pub const MSR_LIST_MAX: u32 = 512 * (MISC_MSR_LIST_SIZE as u32 + 1);

/// The 1-based number of the entry whose processing failed: the exit qualification of a
/// VM-entry failure due to MSR loading (SDM 27.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailedEntry(pub u32);

/// One entry of an MSR area.
struct MsrEntry {
    index: u32,
    reserved: u32,
    data: u64,
}

impl MsrEntry {
    /// Entry `i` (0-based) of the area at `address`.
    fn read(mem: &impl GuestMemory, address: u64, i: u32) -> Self {
        let mut bytes = [0; MSR_ENTRY_BYTES as usize];
        mem.read_or_ones(address + u64::from(i) * MSR_ENTRY_BYTES, &mut bytes);
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        MsrEntry {
            index: word(0),
            reserved: word(4),
            data: u64::from(word(8)) | u64::from(word(12)) << 32,
        }
    }

    /// The x2APIC MSRs 800H–8FFH, which no list may name (SDM 27.4, 28.4, 28.6).
    fn x2apic(&self) -> bool {
        self.index >> 8 == 0x8
    }

    /// The load checks of SDM 27.4 and 28.6 besides WRMSR's own: bits 63:32 zero; not the FS/GS
    /// bases (the VMCS loads those), not the x2APIC range, not IA32_SMM_MONITOR_CTL (writable
    /// only in SMM, and no transition l1-hv emulates is in SMM).
    fn loadable(&self) -> bool {
        self.reserved == 0
            && !self.x2apic()
            && !matches!(
                self.index,
                IA32_FS_BASE | IA32_GS_BASE | IA32_SMM_MONITOR_CTL
            )
    }

    /// The store checks of SDM 28.4 besides RDMSR's own: bits 63:32 zero; not the x2APIC range,
    /// not IA32_SMBASE (readable only in SMM).
    fn storable(&self) -> bool {
        self.reserved == 0 && !self.x2apic() && self.index != IA32_SMBASE
    }
}

/// Loads the area of `count` entries at `address` in order with `write`; stops at the first
/// entry that fails.
fn load_area(
    mem: &impl GuestMemory,
    address: u64,
    count: u32,
    mut write: impl FnMut(u32, u64) -> Result<(), MsrFault>,
) -> Result<(), FailedEntry> {
    for i in 0..count {
        if i == MSR_LIST_MAX {
            return Err(FailedEntry(i + 1));
        }
        let entry = MsrEntry::read(mem, address, i);
        if !entry.loadable() || write(entry.index, entry.data).is_err() {
            return Err(FailedEntry(i + 1));
        }
    }
    Ok(())
}

/// VM-entry MSR loading (SDM 27.4), `vmcs02` holding vmcs12's guest state just loaded: each
/// entry as L3's WRMSR. `Err`: the entry that failed the VM entry.
pub fn load_entry_msrs(
    vmcs12: &impl Vmcs,
    vmcs02: &mut impl Vmcs,
    mem: &impl GuestMemory,
    bus: &mut impl MsrBus,
) -> Result<(), FailedEntry> {
    let count = vmcs12.read(control::VMENTRY_MSR_LOAD_COUNT) as u32;
    if count == 0 {
        return Ok(());
    }
    let address = vmcs12.read(control::VMENTRY_MSR_LOAD_ADDR_FULL);
    load_area(mem, address, count, |msr, value| {
        l3_wrmsr(msr, value, vmcs02, bus)
    })
}

/// VM-exit MSR storing (SDM 28.4), `vmcs02` holding L3's state at the exit: each entry's data
/// receives L3's RDMSR.
pub fn store_exit_msrs(
    vmcs12: &impl Vmcs,
    vmcs02: &mut impl Vmcs,
    mem: &mut impl GuestMemory,
    bus: &mut impl MsrBus,
) -> Result<(), VmxAbort> {
    let count = vmcs12.read(control::VMEXIT_MSR_STORE_COUNT) as u32;
    if count == 0 {
        return Ok(());
    }
    let address = vmcs12.read(control::VMEXIT_MSR_STORE_ADDR_FULL);
    for i in 0..count.min(MSR_LIST_MAX + 1) {
        let entry = MsrEntry::read(mem, address, i);
        if i == MSR_LIST_MAX || !entry.storable() {
            return Err(VmxAbort::StoreGuestMsrs);
        }
        let value = l3_rdmsr(entry.index, vmcs02, bus).map_err(|_| VmxAbort::StoreGuestMsrs)?;
        let data = address + u64::from(i) * MSR_ENTRY_BYTES + 8;
        // Outside RAM the bus drops the write, as it would the processor's.
        let _ = mem.write(data, &value.to_le_bytes());
    }
    Ok(())
}

/// VM-exit MSR loading (SDM 28.6), `vmcs01` holding the guest hypervisor's host state just
/// loaded: each entry as L2's WRMSR.
pub fn load_exit_msrs(
    vmcs12: &impl Vmcs,
    vmcs01: &mut impl Vmcs,
    mem: &impl GuestMemory,
    bus: &mut impl MsrBus,
) -> Result<(), VmxAbort> {
    let count = vmcs12.read(control::VMEXIT_MSR_LOAD_COUNT) as u32;
    if count == 0 {
        return Ok(());
    }
    let address = vmcs12.read(control::VMEXIT_MSR_LOAD_ADDR_FULL);
    load_area(mem, address, count, |msr, value| {
        l2_wrmsr(msr, value, vmcs01, bus)
    })
    .map_err(|_| VmxAbort::LoadHostMsrs)
}
