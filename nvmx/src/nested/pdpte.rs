//! PAE page-directory-pointer-table entries: which ones a VM entry or exit loads, and their
//! reserved bits (SDM 4.4.1, 27.3.1.6, 28.5.4).

use super::arch::{CR0_PG, CR4_PAE, PDPTE_FIELDS};
use super::controls::Controls;
use crate::insn::GuestMemory;
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::guest;

/// PDPTE bits 2:1 and 8:5 are reserved when the entry is present.
const PDPTE_RESERVED: u64 = 0b110 | 0b1111 << 5;

/// Whether the guest in `vmcs` will use PAE paging: CR0.PG = 1, CR4.PAE = 1 and not IA-32e mode.
pub(crate) fn guest_uses_pae_paging(vmcs: &impl Vmcs, controls: &Controls) -> bool {
    vmcs.read(guest::CR0) & CR0_PG != 0
        && vmcs.read(guest::CR4) & CR4_PAE != 0
        && !controls.ia32e_guest()
}

/// The PDPTEs VM entry gives a PAE-paging guest: the PDPTE fields with "enable EPT", else the
/// 32 bytes at CR3 bits 31:5 in the guest hypervisor's memory. `None` if that is not RAM.
pub(crate) fn guest_pdptes(
    vmcs: &impl Vmcs,
    controls: &Controls,
    mem: &impl GuestMemory,
) -> Option<[u64; 4]> {
    if controls.ept() {
        return Some(PDPTE_FIELDS.map(|field| vmcs.read(field)));
    }
    read_pdpt(mem, vmcs.read(guest::CR3))
}

/// The four PDPTEs of the table CR3 (PAE format) points at; `None` if it is not RAM.
pub(crate) fn read_pdpt(mem: &impl GuestMemory, cr3: u64) -> Option<[u64; 4]> {
    let mut bytes = [0u8; 32];
    mem.read(cr3 & 0xFFFF_FFE0, &mut bytes).ok()?;
    let mut pdptes = [0; 4];
    for (pdpte, chunk) in pdptes.iter_mut().zip(bytes.chunks_exact(8)) {
        *pdpte = u64::from_le_bytes(chunk.try_into().unwrap());
    }
    Some(pdptes)
}

/// Whether a PDPTE may be loaded: not present, or no reserved bit set (bits 2:1, 8:5 and those at
/// or above the physical-address width).
pub(crate) fn pdpte_valid(pdpte: u64, phys_addr_bits: u8) -> bool {
    pdpte & 1 == 0 || (pdpte & PDPTE_RESERVED == 0 && pdpte >> phys_addr_bits == 0)
}
