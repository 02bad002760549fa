//! VMCS shadowing for a guest hypervisor (SDM 24.10): which vmcs12 fields live in a hardware
//! shadow VMCS so the guest's VMREAD/VMWRITE of them need no VM exit, the VMREAD/VMWRITE bitmaps
//! that say so, and the copies between the shadow VMCS and vmcs12.
//!
//! A shadowed field's authoritative copy is the shadow VMCS while the guest hypervisor runs, and
//! vmcs12 while l1-hv works on it; the two sync functions move it across at the moments stated on
//! them. Every other field only ever changes through an emulated VMWRITE, straight in vmcs12.

use crate::access::Vmcs;
use crate::bitmap::VmxBitmap;
use crate::catalogue::is_supported;
use crate::field::Field;
use x86::vmx::vmcs::{control, guest, ro};

/// The shadowed fields (FULL encodings). Each one costs a VMREAD and a VMWRITE per sync, so only
/// fields a guest hypervisor touches on its common exit and re-entry path are here.
pub const SHADOWED: [u32; 28] = [
    // Exit information: read by the guest hypervisor's exit handler on every nested exit.
    ro::EXIT_REASON,
    ro::EXIT_QUALIFICATION,
    ro::VMEXIT_INTERRUPTION_INFO,
    ro::VMEXIT_INTERRUPTION_ERR_CODE,
    ro::IDT_VECTORING_INFO,
    ro::IDT_VECTORING_ERR_CODE,
    ro::VMEXIT_INSTRUCTION_LEN,
    ro::VMEXIT_INSTRUCTION_INFO,
    // Guest state an exit handler reads and updates: RIP advanced past an emulated instruction,
    // RSP/RFLAGS/control registers inspected, interruptibility checked before an injection.
    guest::RIP,
    guest::RSP,
    guest::RFLAGS,
    guest::CR0,
    guest::CR3,
    guest::CR4,
    guest::INTERRUPTIBILITY_STATE,
    // Event injection: written before most re-entries that reflect an exception or inject an
    // interrupt.
    control::VMENTRY_INTERRUPTION_INFO_FIELD,
    control::VMENTRY_EXCEPTION_ERR_CODE,
    control::VMENTRY_INSTRUCTION_LEN,
    // Execution controls toggled at run time (interrupt/NMI-window exiting, exception
    // intercepts, #PF filtering, CR read shadows). vmcs02 is rebuilt from vmcs12 at each nested
    // entry, after `sync_from_shadow`, so changes made in the shadow are never missed.
    control::PINBASED_EXEC_CONTROLS,
    control::PRIMARY_PROCBASED_EXEC_CONTROLS,
    control::SECONDARY_PROCBASED_EXEC_CONTROLS,
    control::EXCEPTION_BITMAP,
    control::PAGE_FAULT_ERR_CODE_MASK,
    control::PAGE_FAULT_ERR_CODE_MATCH,
    control::CR0_GUEST_HOST_MASK,
    control::CR4_GUEST_HOST_MASK,
    control::CR0_READ_SHADOW,
    control::CR4_READ_SHADOW,
];
// Not shadowed on purpose: the VM-instruction error field, which nvmx writes on VMfailValid
// straight into vmcs12 (a shadowed copy would need a sync after every failing instruction).

const _: () = {
    let mut i = 0;
    while i < SHADOWED.len() {
        assert!(
            is_supported(SHADOWED[i] as u64),
            "shadowed fields must be vmcs12 fields"
        );
        i += 1;
    }
};

/// IA32_VMX_MISC bit 29: VMWRITE may write VM-exit information fields.
const MISC_VMWRITE_ANY_FIELD: u64 = 1 << 29;

/// Which shadowed fields the guest reaches without an exit, given what VMWRITE may do.
///
/// Read-only (exit-information) fields are shadowed for VMREAD only if l1-hv itself can fill
/// them, i.e. the real IA32_VMX_MISC bit 29 is set: l1-hv writes the shadow VMCS with VMWRITE,
/// which otherwise fails on them. They are shadowed for VMWRITE only if, in addition, the guest
/// was told it may write them (its IA32_VMX_MISC bit 29); otherwise its VMWRITE exits and nvmx
/// fails it with error 13, as the guest's capabilities promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowPolicy {
    read_only_readable: bool,
    read_only_writable: bool,
}

impl ShadowPolicy {
    /// The policy for l1-hv's real IA32_VMX_MISC and the IA32_VMX_MISC reported to the guest.
    pub const fn new(host_misc: u64, guest_misc: u64) -> Self {
        let host = host_misc & MISC_VMWRITE_ANY_FIELD != 0;
        let guest = guest_misc & MISC_VMWRITE_ANY_FIELD != 0;
        ShadowPolicy {
            read_only_readable: host,
            read_only_writable: host && guest,
        }
    }

    /// Whether the guest's VMREAD of `field` is served from the shadow VMCS.
    pub fn shadows_read(&self, field: Field) -> bool {
        is_shadowed(field) && (!field.is_read_only() || self.read_only_readable)
    }

    /// Whether the guest's VMWRITE of `field` goes to the shadow VMCS.
    pub fn shadows_write(&self, field: Field) -> bool {
        is_shadowed(field) && (!field.is_read_only() || self.read_only_writable)
    }

    /// Whether the shadow holds the exit-information fields for the guest to read (l1-hv
    /// copies them in after a nested exit).
    pub const fn exit_information_readable(&self) -> bool {
        self.read_only_readable
    }

    /// Whether the guest may write the exit-information fields in the shadow (l1-hv copies
    /// them back before reading vmcs12 as a whole).
    pub const fn exit_information_writable(&self) -> bool {
        self.read_only_writable
    }

    /// The VMREAD bitmap: clear exactly for the fields [`Self::shadows_read`] accepts.
    pub fn vmread_bitmap(&self) -> VmxBitmap {
        bitmap(|f| self.shadows_read(f))
    }

    /// The VMWRITE bitmap: clear exactly for the fields [`Self::shadows_write`] accepts.
    pub fn vmwrite_bitmap(&self) -> VmxBitmap {
        bitmap(|f| self.shadows_write(f))
    }
}

fn is_shadowed(field: Field) -> bool {
    SHADOWED.contains(&field.full().encoding())
}

fn shadowed_fields() -> impl Iterator<Item = Field> {
    SHADOWED.iter().filter_map(|&e| Field::new(u64::from(e)))
}

fn bitmap(pass: impl Fn(Field) -> bool) -> VmxBitmap {
    let mut bitmap = VmxBitmap::all_exiting();
    shadowed_fields()
        .filter(|&f| pass(f))
        .for_each(|f| bitmap.pass_through(f));
    bitmap
}

/// Copies vmcs12 into the shadow VMCS: every field the guest may VMREAD from the shadow.
///
/// Call it whenever l1-hv has changed vmcs12 and the guest hypervisor is about to run again:
/// after an emulated VMPTRLD made a vmcs12 current, and after a nested VM exit wrote exit
/// information and L3 guest state into vmcs12. `shadow` must be the shadow VMCS made current.
pub fn sync_to_shadow<S: Vmcs + ?Sized, D: Vmcs + ?Sized>(
    policy: &ShadowPolicy,
    vmcs12: &S,
    shadow: &mut D,
) {
    // Every field here is shadowed: only the read-only rule of `shadows_read` is left to check.
    for field in shadowed_fields().filter(|f| !f.is_read_only() || policy.read_only_readable) {
        shadow.write(field.encoding(), vmcs12.read(field.encoding()));
    }
}

/// Copies the shadow VMCS into vmcs12: every field the guest may have VMWRITten to the shadow.
///
/// Call it before l1-hv reads vmcs12 as a whole: at an emulated VMLAUNCH/VMRESUME (vmcs02 is
/// built from vmcs12), and before VMCLEAR, VMPTRLD of another VMCS or VMXOFF write the current
/// vmcs12 back to guest memory.
pub fn sync_from_shadow<S: Vmcs + ?Sized, D: Vmcs + ?Sized>(
    policy: &ShadowPolicy,
    shadow: &S,
    vmcs12: &mut D,
) {
    for field in shadowed_fields().filter(|f| !f.is_read_only() || policy.read_only_writable) {
        vmcs12.write(field.encoding(), shadow.read(field.encoding()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soft::SoftVmcs;

    const HOST_ANY: u64 = MISC_VMWRITE_ANY_FIELD;

    fn f(encoding: u32) -> Field {
        Field::new(u64::from(encoding)).unwrap()
    }

    #[test]
    fn exception_path_fields_are_shadowed() {
        let policy = ShadowPolicy::new(HOST_ANY, 0);
        for e in [
            ro::EXIT_REASON,
            ro::IDT_VECTORING_INFO,
            guest::RIP,
            control::EXCEPTION_BITMAP,
        ] {
            assert!(policy.shadows_read(f(e)), "{e:#x}");
        }
        assert!(!policy.shadows_read(f(ro::VM_INSTRUCTION_ERROR)));
        assert!(!policy.shadows_read(f(control::EPTP_FULL)));
    }

    #[test]
    fn read_only_fields_need_host_vmwrite_any_field_to_be_shadowed() {
        let without = ShadowPolicy::new(0, 0);
        assert!(!without.shadows_read(f(ro::EXIT_QUALIFICATION)));
        assert!(without.shadows_read(f(guest::RIP)));
        assert!(without
            .vmread_bitmap()
            .exits(u64::from(ro::EXIT_QUALIFICATION)));
        // The guest being told it may write them does not help if the hardware cannot.
        assert!(!ShadowPolicy::new(0, HOST_ANY).shadows_write(f(ro::EXIT_REASON)));
    }

    #[test]
    fn guest_writes_to_read_only_fields_exit_unless_advertised() {
        let policy = ShadowPolicy::new(HOST_ANY, 0);
        assert!(!policy.vmread_bitmap().exits(u64::from(ro::EXIT_REASON)));
        assert!(policy.vmwrite_bitmap().exits(u64::from(ro::EXIT_REASON)));
        assert!(!policy.vmwrite_bitmap().exits(u64::from(guest::RIP)));
        let permissive = ShadowPolicy::new(HOST_ANY, HOST_ANY);
        assert!(!permissive
            .vmwrite_bitmap()
            .exits(u64::from(ro::EXIT_REASON)));
    }

    #[test]
    fn sync_to_shadow_copies_readable_fields_only() {
        let policy = ShadowPolicy::new(HOST_ANY, 0);
        let mut vmcs12 = SoftVmcs::new();
        vmcs12.write(ro::EXIT_REASON, 48);
        vmcs12.write(guest::RIP, 0x1000);
        vmcs12.write(control::EPTP_FULL, 0x5000_001E);
        let mut shadow = SoftVmcs::new();
        sync_to_shadow(&policy, &vmcs12, &mut shadow);
        assert_eq!(shadow.read(ro::EXIT_REASON), 48);
        assert_eq!(shadow.read(guest::RIP), 0x1000);
        assert_eq!(shadow.read(control::EPTP_FULL), 0);
    }

    #[test]
    fn sync_from_shadow_never_lets_the_guest_overwrite_exit_information() {
        let policy = ShadowPolicy::new(HOST_ANY, 0);
        let mut shadow = SoftVmcs::new();
        shadow.write(guest::RIP, 0x2002);
        shadow.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0B0E);
        shadow.write(ro::EXIT_REASON, 99);
        let mut vmcs12 = SoftVmcs::new();
        vmcs12.write(ro::EXIT_REASON, 48);
        sync_from_shadow(&policy, &shadow, &mut vmcs12);
        assert_eq!(vmcs12.read(guest::RIP), 0x2002);
        assert_eq!(
            vmcs12.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            0x8000_0B0E
        );
        assert_eq!(vmcs12.read(ro::EXIT_REASON), 48);
    }
}
