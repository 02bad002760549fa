//! The nested engine's hardware ([`nvmx::nested::NestedHardware`]): vmcs01, vmcs02 and the
//! shadow VMCS of one guest hypervisor vCPU, each reached through its own handle type, switched
//! with VMPTRLD only when another one is current.

use crate::guest::vmcs_setup::write_host_state;
use core::marker::PhantomData;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::instructions::vmptrld;
use nvmx::nested::NestedHardware;
use shadow_vmcs::Vmcs;

/// Handle kind: vmcs01, which runs the guest hypervisor.
pub enum Vmcs01 {}
/// Handle kind: vmcs02, which runs L3.
pub enum Vmcs02 {}
/// Handle kind: the shadow VMCS linked from vmcs01.
pub enum Shadow {}

/// The current VMCS, known to be the one of kind `K`.
pub struct Loaded<K>(CurrentVmcs, PhantomData<K>);

impl<K> Vmcs for Loaded<K> {
    #[inline(always)]
    fn read(&self, field: u32) -> u64 {
        self.0.read(field)
    }

    #[inline(always)]
    fn write(&mut self, field: u32, value: u64) {
        self.0.write(field, value)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Vmcs01,
    Vmcs02,
    Shadow,
}

/// One vCPU's VMCSs by physical address, and which is current.
pub struct Hardware {
    current: Which,
    vmcs01: u64,
    vmcs02: Option<u64>,
    shadow: Option<u64>,
    /// vmcs02 needs l1-hv's host state before its first launch.
    vmcs02_fresh: bool,
    vmcs01_handle: Loaded<Vmcs01>,
    vmcs02_handle: Loaded<Vmcs02>,
    shadow_handle: Loaded<Shadow>,
}

impl Hardware {
    /// # Safety
    /// vmcs02 (`in_l3`) or else vmcs01 must be current; the addresses name VMCS regions l1-hv
    /// owns for this vCPU (`vmcs02_fresh`: vmcs02 has never been launched).
    pub unsafe fn new(
        in_l3: bool,
        vmcs01: u64,
        vmcs02: Option<u64>,
        vmcs02_fresh: bool,
        shadow: Option<u64>,
    ) -> Self {
        Hardware {
            current: if in_l3 { Which::Vmcs02 } else { Which::Vmcs01 },
            vmcs01,
            vmcs02,
            shadow,
            vmcs02_fresh,
            vmcs01_handle: Loaded(CurrentVmcs::assume_loaded(), PhantomData),
            vmcs02_handle: Loaded(CurrentVmcs::assume_loaded(), PhantomData),
            shadow_handle: Loaded(CurrentVmcs::assume_loaded(), PhantomData),
        }
    }

    fn make_current(&mut self, which: Which, phys: Option<u64>) {
        if self.current == which {
            return;
        }
        let Some(phys) = phys else {
            // The engine asks for vmcs02 only after an entry and for the shadow only with a
            // shadow policy, both of which the adapters create first.
            panic!("nested engine asked for a VMCS this vCPU does not have");
        };
        // SAFETY: a VMCS region of this vCPU (constructor contract); VMPTRLD of a shadow VMCS
        // is allowed with VMCS shadowing (SDM 31.3, VMPTRLD).
        let loaded = unsafe { vmptrld(phys) };
        debug_assert!(loaded.is_ok(), "VMPTRLD failed");
        self.current = which;
    }
}

impl NestedHardware for Hardware {
    type Vmcs01 = Loaded<Vmcs01>;
    type Vmcs02 = Loaded<Vmcs02>;
    type Shadow = Loaded<Shadow>;

    fn vmcs01(&mut self) -> &mut Loaded<Vmcs01> {
        self.make_current(Which::Vmcs01, Some(self.vmcs01));
        &mut self.vmcs01_handle
    }

    fn vmcs02(&mut self) -> &mut Loaded<Vmcs02> {
        self.make_current(Which::Vmcs02, self.vmcs02);
        if self.vmcs02_fresh {
            write_host_state(&mut self.vmcs02_handle);
            self.vmcs02_fresh = false;
        }
        &mut self.vmcs02_handle
    }

    fn shadow(&mut self) -> &mut Loaded<Shadow> {
        self.make_current(Which::Shadow, self.shadow);
        &mut self.shadow_handle
    }
}
