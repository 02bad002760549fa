//! Which VMCS fields l1-hv's vmcs12 has.
//!
//! The list names fields by the `x86` crate's constants; everything else about a field comes from
//! its encoding ([`Field`]). Left out are the fields of features nvmx never advertises to a guest
//! hypervisor (posted interrupts, virtual-interrupt delivery, PML, VM functions and #VE, SMM
//! dual-monitor treatment, SGX, sub-page permissions, TSC scaling, XSAVES exiting, pause-loop
//! exiting, MPX, Intel PT, perf-global-ctrl loading): a VMREAD or VMWRITE of one fails with
//! "unsupported VMCS component", as on a processor without the feature. The VMX-preemption
//! timer value is one: nvmx emulates the timer where the processor has it.

use crate::field::Field;
use x86::vmx::vmcs::{control, guest, host, ro};

/// FULL encodings of the supported fields, in ascending order (the vmcs12 slot order).
pub const SUPPORTED: [u32; 132] = [
    // 16-bit.
    control::VPID,
    guest::ES_SELECTOR,
    guest::CS_SELECTOR,
    guest::SS_SELECTOR,
    guest::DS_SELECTOR,
    guest::FS_SELECTOR,
    guest::GS_SELECTOR,
    guest::LDTR_SELECTOR,
    guest::TR_SELECTOR,
    host::ES_SELECTOR,
    host::CS_SELECTOR,
    host::SS_SELECTOR,
    host::DS_SELECTOR,
    host::FS_SELECTOR,
    host::GS_SELECTOR,
    host::TR_SELECTOR,
    // 64-bit.
    control::IO_BITMAP_A_ADDR_FULL,
    control::IO_BITMAP_B_ADDR_FULL,
    control::MSR_BITMAPS_ADDR_FULL,
    control::VMEXIT_MSR_STORE_ADDR_FULL,
    control::VMEXIT_MSR_LOAD_ADDR_FULL,
    control::VMENTRY_MSR_LOAD_ADDR_FULL,
    control::TSC_OFFSET_FULL,
    control::VIRT_APIC_ADDR_FULL,
    control::APIC_ACCESS_ADDR_FULL,
    control::EPTP_FULL,
    control::VMREAD_BITMAP_ADDR_FULL,
    control::VMWRITE_BITMAP_ADDR_FULL,
    ro::GUEST_PHYSICAL_ADDR_FULL,
    guest::LINK_PTR_FULL,
    guest::IA32_DEBUGCTL_FULL,
    guest::IA32_PAT_FULL,
    guest::IA32_EFER_FULL,
    guest::PDPTE0_FULL,
    guest::PDPTE1_FULL,
    guest::PDPTE2_FULL,
    guest::PDPTE3_FULL,
    host::IA32_PAT_FULL,
    host::IA32_EFER_FULL,
    // 32-bit.
    control::PINBASED_EXEC_CONTROLS,
    control::PRIMARY_PROCBASED_EXEC_CONTROLS,
    control::EXCEPTION_BITMAP,
    control::PAGE_FAULT_ERR_CODE_MASK,
    control::PAGE_FAULT_ERR_CODE_MATCH,
    control::CR3_TARGET_COUNT,
    control::VMEXIT_CONTROLS,
    control::VMEXIT_MSR_STORE_COUNT,
    control::VMEXIT_MSR_LOAD_COUNT,
    control::VMENTRY_CONTROLS,
    control::VMENTRY_MSR_LOAD_COUNT,
    control::VMENTRY_INTERRUPTION_INFO_FIELD,
    control::VMENTRY_EXCEPTION_ERR_CODE,
    control::VMENTRY_INSTRUCTION_LEN,
    control::TPR_THRESHOLD,
    control::SECONDARY_PROCBASED_EXEC_CONTROLS,
    ro::VM_INSTRUCTION_ERROR,
    ro::EXIT_REASON,
    ro::VMEXIT_INTERRUPTION_INFO,
    ro::VMEXIT_INTERRUPTION_ERR_CODE,
    ro::IDT_VECTORING_INFO,
    ro::IDT_VECTORING_ERR_CODE,
    ro::VMEXIT_INSTRUCTION_LEN,
    ro::VMEXIT_INSTRUCTION_INFO,
    guest::ES_LIMIT,
    guest::CS_LIMIT,
    guest::SS_LIMIT,
    guest::DS_LIMIT,
    guest::FS_LIMIT,
    guest::GS_LIMIT,
    guest::LDTR_LIMIT,
    guest::TR_LIMIT,
    guest::GDTR_LIMIT,
    guest::IDTR_LIMIT,
    guest::ES_ACCESS_RIGHTS,
    guest::CS_ACCESS_RIGHTS,
    guest::SS_ACCESS_RIGHTS,
    guest::DS_ACCESS_RIGHTS,
    guest::FS_ACCESS_RIGHTS,
    guest::GS_ACCESS_RIGHTS,
    guest::LDTR_ACCESS_RIGHTS,
    guest::TR_ACCESS_RIGHTS,
    guest::INTERRUPTIBILITY_STATE,
    guest::ACTIVITY_STATE,
    guest::IA32_SYSENTER_CS,
    guest::VMX_PREEMPTION_TIMER_VALUE,
    host::IA32_SYSENTER_CS,
    // Natural width.
    control::CR0_GUEST_HOST_MASK,
    control::CR4_GUEST_HOST_MASK,
    control::CR0_READ_SHADOW,
    control::CR4_READ_SHADOW,
    control::CR3_TARGET_VALUE0,
    control::CR3_TARGET_VALUE1,
    control::CR3_TARGET_VALUE2,
    control::CR3_TARGET_VALUE3,
    ro::EXIT_QUALIFICATION,
    ro::IO_RCX,
    ro::IO_RSI,
    ro::IO_RDI,
    ro::IO_RIP,
    ro::GUEST_LINEAR_ADDR,
    guest::CR0,
    guest::CR3,
    guest::CR4,
    guest::ES_BASE,
    guest::CS_BASE,
    guest::SS_BASE,
    guest::DS_BASE,
    guest::FS_BASE,
    guest::GS_BASE,
    guest::LDTR_BASE,
    guest::TR_BASE,
    guest::GDTR_BASE,
    guest::IDTR_BASE,
    guest::DR7,
    guest::RSP,
    guest::RIP,
    guest::RFLAGS,
    guest::PENDING_DBG_EXCEPTIONS,
    guest::IA32_SYSENTER_ESP,
    guest::IA32_SYSENTER_EIP,
    host::CR0,
    host::CR3,
    host::CR4,
    host::FS_BASE,
    host::GS_BASE,
    host::TR_BASE,
    host::GDTR_BASE,
    host::IDTR_BASE,
    host::IA32_SYSENTER_ESP,
    host::IA32_SYSENTER_EIP,
    host::RSP,
    host::RIP,
];

// The vmcs12 layout follows this order, so the list must be strictly ascending FULL encodings.
const _: () = {
    let mut i = 0;
    while i < SUPPORTED.len() {
        assert!(SUPPORTED[i] & 1 == 0, "SUPPORTED lists FULL encodings only");
        assert!(
            i == 0 || SUPPORTED[i - 1] < SUPPORTED[i],
            "SUPPORTED must be sorted"
        );
        i += 1;
    }
};

/// Index bits (9:1) a supported field may have: every supported index is below this.
const INDEX_LIMIT: usize = 32;
/// "No slot" in [`SLOT_OF`].
const NO_SLOT: u8 = u8::MAX;

/// Where in [`SLOT_OF`] a field's (width, type, index) lives: the encoding's bits 14:13, 11:10
/// and 9:1, packed. A constant-time lookup: every vmcs12 access on the nested path goes
/// through it.
#[inline]
const fn slot_key(field: Field) -> usize {
    let encoding = field.encoding() as usize;
    ((encoding >> 13 & 3) * 4 + (encoding >> 10 & 3)) * INDEX_LIMIT + field.index() as usize
}

/// The vmcs12 slot of each (width, type, index), built at compile time from [`SUPPORTED`].
const SLOT_OF: [u8; 16 * INDEX_LIMIT] = {
    let mut table = [NO_SLOT; 16 * INDEX_LIMIT];
    let mut i = 0;
    while i < SUPPORTED.len() {
        let Some(field) = Field::new(SUPPORTED[i] as u64) else {
            panic!("SUPPORTED holds valid encodings")
        };
        assert!((field.index() as usize) < INDEX_LIMIT && i < NO_SLOT as usize);
        table[slot_key(field)] = i as u8;
        i += 1;
    }
    table
};

/// The vmcs12 slot holding `field` (FULL or HIGH access), `None` if vmcs12 lacks the field.
#[inline]
pub const fn slot(field: Field) -> Option<usize> {
    if field.index() as usize >= INDEX_LIMIT {
        return None;
    }
    match SLOT_OF[slot_key(field.full())] {
        NO_SLOT => None,
        slot => Some(slot as usize),
    }
}

/// Whether `encoding` names a field of vmcs12 (both access types of a 64-bit field count).
pub const fn is_supported(encoding: u64) -> bool {
    match Field::new(encoding) {
        Some(field) => slot(field).is_some(),
        None => false,
    }
}

/// The highest field index (encoding bits 9:1) among the supported fields: the value of
/// IA32_VMX_VMCS_ENUM bits 9:1 reported to a guest hypervisor (SDM Appendix A.9).
pub const fn highest_index() -> u16 {
    let mut max = 0;
    let mut i = 0;
    while i < SUPPORTED.len() {
        if let Some(field) = Field::new(SUPPORTED[i] as u64) {
            if field.index() > max {
                max = field.index();
            }
        }
        i += 1;
    }
    max
}

/// The supported fields as [`Field`]s, FULL encodings only.
pub fn supported_fields() -> impl Iterator<Item = Field> {
    SUPPORTED.iter().filter_map(|&e| Field::new(e as u64))
}

// Every listed encoding must be a valid one; a typo'd constant would otherwise vanish silently.
const _: () = {
    let mut i = 0;
    while i < SUPPORTED.len() {
        assert!(Field::new(SUPPORTED[i] as u64).is_some());
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_access_types_of_a_supported_64_bit_field_are_supported() {
        assert!(is_supported(control::EPTP_FULL as u64));
        assert!(is_supported(control::EPTP_HIGH as u64));
        assert_eq!(
            slot(Field::new(control::EPTP_HIGH as u64).unwrap()),
            slot(Field::new(control::EPTP_FULL as u64).unwrap())
        );
    }

    #[test]
    fn unadvertised_features_fields_are_unsupported() {
        assert!(!is_supported(control::PML_ADDR_FULL as u64));
        assert!(!is_supported(
            control::POSTED_INTERRUPT_NOTIFICATION_VECTOR as u64
        ));
        assert!(!is_supported(0x7FFF));
    }

    #[test]
    fn every_supported_field_has_its_own_slot() {
        for (i, field) in supported_fields().enumerate() {
            assert_eq!(slot(field), Some(i));
        }
        assert_eq!(supported_fields().count(), SUPPORTED.len());
    }

    #[test]
    fn highest_index_is_the_preemption_timer_value() {
        // VMX_PREEMPTION_TIMER_VALUE (0x482E) has index 0x17, the largest in the list.
        assert_eq!(highest_index(), 0x17);
    }
}
