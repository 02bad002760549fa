//! Hardware VMCS shadowing for a guest hypervisor (SDM 25.10, 26.3): vmcs01 links a shadow
//! VMCS that mirrors the shadowed part of the current vmcs12, so the guest hypervisor's
//! VMREAD/VMWRITE of those fields complete without a VM exit. The nested engine
//! (`nvmx::nested::NestedVcpu`) decides when the shadow and vmcs12 are copied; this is the
//! shadow's memory and its link from vmcs01.

use crate::memory::PhysPages;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::instructions::vmclear;
use shadow_vmcs::{ShadowPolicy, Vmcs, SHADOW_INDICATOR};
use x86::vmx::vmcs::control::{self, SecondaryControls};
use x86::vmx::vmcs::guest;

/// One guest hypervisor's shadow VMCS and its VMREAD/VMWRITE bitmaps.
pub struct ShadowVmcs {
    region: PhysPages,
    read_bitmap: PhysPages,
    write_bitmap: PhysPages,
    policy: ShadowPolicy,
}

impl ShadowVmcs {
    /// A clear shadow VMCS for `revision_id`, with bitmaps passing exactly the fields `policy`
    /// shadows; `None` without memory or if VMCLEAR refuses it.
    pub fn new(revision_id: u32, policy: ShadowPolicy) -> Option<Self> {
        let mut region = PhysPages::page()?;
        region.bytes_mut()[..4].copy_from_slice(&(revision_id | SHADOW_INDICATOR).to_le_bytes());
        let mut read_bitmap = PhysPages::page()?;
        read_bitmap
            .bytes_mut()
            .copy_from_slice(policy.vmread_bitmap().as_bytes());
        let mut write_bitmap = PhysPages::page()?;
        write_bitmap
            .bytes_mut()
            .copy_from_slice(policy.vmwrite_bitmap().as_bytes());
        // SAFETY: a fresh, revision-stamped region (SDM 25.11.3).
        unsafe { vmclear(region.phys()) }.ok()?;
        Some(Self {
            region,
            read_bitmap,
            write_bitmap,
            policy,
        })
    }

    /// Links the shadow into vmcs01 (current) so the guest's VMREAD/VMWRITE use it, or unlinks it
    /// (`linked` false: no current vmcs12; the guest's VMREAD/VMWRITE then VMfailInvalid).
    pub fn link(&self, vmcs01: &mut CurrentVmcs, linked: bool) {
        let secondary = vmcs01.read(control::SECONDARY_PROCBASED_EXEC_CONTROLS);
        let shadowing = u64::from(SecondaryControls::VMCS_SHADOWING.bits());
        vmcs01.write(
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            secondary | shadowing,
        );
        vmcs01.write(control::VMREAD_BITMAP_ADDR_FULL, self.read_bitmap.phys());
        vmcs01.write(control::VMWRITE_BITMAP_ADDR_FULL, self.write_bitmap.phys());
        vmcs01.write(
            guest::LINK_PTR_FULL,
            if linked { self.region.phys() } else { u64::MAX },
        );
    }

    /// Which fields the shadow mirrors.
    pub fn policy(&self) -> ShadowPolicy {
        self.policy
    }

    /// The shadow VMCS region's physical address.
    pub fn phys(&self) -> u64 {
        self.region.phys()
    }
}

impl Drop for ShadowVmcs {
    fn drop(&mut self) {
        // SAFETY: flushes the shadow VMCS to memory before its page returns to the heap.
        let _ = unsafe { vmclear(self.region.phys()) };
    }
}
