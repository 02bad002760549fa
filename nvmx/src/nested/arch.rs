//! Architectural constants and predicates the nested phases share: bits the `x86` crate does not
//! name (EFER, CR4.CET, access rights; also for l1-hv and its guests) and the guest segment-register field groups. The
//! interruptibility and activity states are [`crate::intr`]'s.

use shadow_vmcs::Vmcs;
use x86::controlregs::{Cr0, Cr4};
use x86::vmx::vmcs::guest;

/// IA32_EFER.SCE (SYSCALL enable).
pub const EFER_SCE: u64 = 1 << 0;
/// IA32_EFER.LME (long mode enable).
pub const EFER_LME: u64 = 1 << 8;
/// IA32_EFER.LMA (long mode active).
pub const EFER_LMA: u64 = 1 << 10;
/// IA32_EFER.NXE (execute-disable enable; else bit 63 of paging entries is reserved).
pub const EFER_NXE: u64 = 1 << 11;
/// The EFER bits Intel defines (SDM 2.2.1); VM entry and exit reject the others (SDM 27.2.2,
/// 27.3.1.1) and WRMSR raises #GP for them.
pub const EFER_DEFINED: u64 = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
/// CR4.CET (bit 23), which the `x86` crate does not name; CR4.CET = 1 requires CR0.WP = 1.
pub(crate) const CR4_CET: u64 = 1 << 23;
/// IA32_DEBUGCTL.BTF (single-step on branches).
pub(crate) const DEBUGCTL_BTF: u64 = 1 << 1;
/// IA32_DEBUGCTL bits l1-hv lets a guest state have: LBR (0) and BTF (1), for a vmcs12 to load
/// and for L3's WRMSR. Other bits depend on processor features l1-hv does not vouch for, so they
/// are refused.
pub(crate) const DEBUGCTL_ALLOWED: u64 = 0b11;

/// IA32_EFER after WRMSR of `value` over `old` with CR0 = `cr0`, or `None` where the processor
/// raises #GP(0): a bit Intel does not define (SDM 2.2.1), or a change of LME while paging is
/// on (SDM 10.8.5). LMA is the processor's (read-only, SDM Vol. 4 Table 2-2: set and cleared by
/// CR0.PG with LME), so the written bit is ignored.
pub const fn efer_after_wrmsr(old: u64, value: u64, cr0: u64) -> Option<u64> {
    if value & !EFER_DEFINED != 0 || (cr0 & CR0_PG != 0 && (old ^ value) & EFER_LME != 0) {
        return None;
    }
    Some(value & !EFER_LMA | old & EFER_LMA)
}

pub(crate) const CR0_PE: u64 = Cr0::CR0_PROTECTED_MODE.bits() as u64;
pub(crate) const CR0_PG: u64 = Cr0::CR0_ENABLE_PAGING.bits() as u64;
pub(crate) const CR0_WP: u64 = Cr0::CR0_WRITE_PROTECT.bits() as u64;
pub(crate) const CR0_TS: u64 = Cr0::CR0_TASK_SWITCHED.bits() as u64;
pub(crate) const CR4_PAE: u64 = Cr4::CR4_ENABLE_PAE.bits() as u64;
pub(crate) const CR4_PCIDE: u64 = Cr4::CR4_ENABLE_PCID.bits() as u64;

/// Access-rights field layout (SDM 25.4.1, Table 25-2).
pub mod ar {
    /// Bits 3:0, segment type.
    pub const TYPE: u32 = 0xF;
    /// Bit 4, descriptor type: 1 = code or data.
    pub const S: u32 = 1 << 4;
    /// Bits 6:5, descriptor privilege level.
    pub const DPL_SHIFT: u32 = 5;
    /// Bit 7, present.
    pub const P: u32 = 1 << 7;
    /// Bits 11:8, reserved.
    pub const RESERVED_11_8: u32 = 0xF00;
    /// Bit 13, 64-bit code segment.
    pub const L: u32 = 1 << 13;
    /// Bit 14, default operation size.
    pub const DB: u32 = 1 << 14;
    /// Bit 15, granularity.
    pub const G: u32 = 1 << 15;
    /// Bit 16, segment unusable.
    pub const UNUSABLE: u32 = 1 << 16;
    /// Bits 31:17, reserved.
    pub const RESERVED_31_17: u32 = !0x1_FFFF;

    /// The DPL of an access-rights value.
    pub const fn dpl(ar: u32) -> u32 {
        (ar >> DPL_SHIFT) & 3
    }
}

/// The four guest-state fields of one segment register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentFields {
    pub(crate) selector: u32,
    pub(crate) base: u32,
    pub(crate) limit: u32,
    pub(crate) access_rights: u32,
}

const fn segment(selector: u32, base: u32, limit: u32, access_rights: u32) -> SegmentFields {
    SegmentFields {
        selector,
        base,
        limit,
        access_rights,
    }
}

pub(crate) const ES: SegmentFields = segment(
    guest::ES_SELECTOR,
    guest::ES_BASE,
    guest::ES_LIMIT,
    guest::ES_ACCESS_RIGHTS,
);
pub(crate) const CS: SegmentFields = segment(
    guest::CS_SELECTOR,
    guest::CS_BASE,
    guest::CS_LIMIT,
    guest::CS_ACCESS_RIGHTS,
);
pub(crate) const SS: SegmentFields = segment(
    guest::SS_SELECTOR,
    guest::SS_BASE,
    guest::SS_LIMIT,
    guest::SS_ACCESS_RIGHTS,
);
pub(crate) const DS: SegmentFields = segment(
    guest::DS_SELECTOR,
    guest::DS_BASE,
    guest::DS_LIMIT,
    guest::DS_ACCESS_RIGHTS,
);
pub(crate) const FS: SegmentFields = segment(
    guest::FS_SELECTOR,
    guest::FS_BASE,
    guest::FS_LIMIT,
    guest::FS_ACCESS_RIGHTS,
);
pub(crate) const GS: SegmentFields = segment(
    guest::GS_SELECTOR,
    guest::GS_BASE,
    guest::GS_LIMIT,
    guest::GS_ACCESS_RIGHTS,
);
pub(crate) const LDTR: SegmentFields = segment(
    guest::LDTR_SELECTOR,
    guest::LDTR_BASE,
    guest::LDTR_LIMIT,
    guest::LDTR_ACCESS_RIGHTS,
);
pub(crate) const TR: SegmentFields = segment(
    guest::TR_SELECTOR,
    guest::TR_BASE,
    guest::TR_LIMIT,
    guest::TR_ACCESS_RIGHTS,
);

/// Guest-state fields a nested entry copies vmcs12 → vmcs02 and a nested exit copies back
/// unchanged: segment registers, descriptor tables, control registers, RIP/RSP/RFLAGS, SYSENTER
/// MSRs and the non-register state. DR7, IA32_DEBUGCTL, IA32_PAT, IA32_EFER and the PDPTEs
/// depend on controls and are handled by each phase.
pub(crate) const PLAIN_GUEST_FIELDS: [u32; 47] = [
    guest::ES_SELECTOR,
    guest::CS_SELECTOR,
    guest::SS_SELECTOR,
    guest::DS_SELECTOR,
    guest::FS_SELECTOR,
    guest::GS_SELECTOR,
    guest::LDTR_SELECTOR,
    guest::TR_SELECTOR,
    guest::ES_BASE,
    guest::CS_BASE,
    guest::SS_BASE,
    guest::DS_BASE,
    guest::FS_BASE,
    guest::GS_BASE,
    guest::LDTR_BASE,
    guest::TR_BASE,
    guest::ES_LIMIT,
    guest::CS_LIMIT,
    guest::SS_LIMIT,
    guest::DS_LIMIT,
    guest::FS_LIMIT,
    guest::GS_LIMIT,
    guest::LDTR_LIMIT,
    guest::TR_LIMIT,
    guest::ES_ACCESS_RIGHTS,
    guest::CS_ACCESS_RIGHTS,
    guest::SS_ACCESS_RIGHTS,
    guest::DS_ACCESS_RIGHTS,
    guest::FS_ACCESS_RIGHTS,
    guest::GS_ACCESS_RIGHTS,
    guest::LDTR_ACCESS_RIGHTS,
    guest::TR_ACCESS_RIGHTS,
    guest::GDTR_BASE,
    guest::GDTR_LIMIT,
    guest::IDTR_BASE,
    guest::IDTR_LIMIT,
    guest::CR0,
    guest::CR3,
    guest::CR4,
    guest::RSP,
    guest::RIP,
    guest::RFLAGS,
    guest::IA32_SYSENTER_CS,
    guest::IA32_SYSENTER_ESP,
    guest::IA32_SYSENTER_EIP,
    guest::INTERRUPTIBILITY_STATE,
    guest::ACTIVITY_STATE,
];

/// The guest-state fields a guest hypervisor reads and writes on its common exit path: those
/// l1-hv shadows ([`shadow_vmcs::SHADOWED`]). A nested exit saves them into vmcs12 at once.
pub(crate) const FREQUENT_GUEST_FIELDS: [u32; 7] = [
    guest::RIP,
    guest::RSP,
    guest::RFLAGS,
    guest::CR0,
    guest::CR3,
    guest::CR4,
    guest::INTERRUPTIBILITY_STATE,
];

/// The other guest-state fields a nested exit saves unconditionally: [`PLAIN_GUEST_FIELDS`]
/// without [`FREQUENT_GUEST_FIELDS`], and the pending debug exceptions.
pub(crate) const RARE_GUEST_FIELDS: [u32; 41] = {
    let mut fields = [guest::PENDING_DBG_EXCEPTIONS; 41];
    let mut n = 0;
    let mut i = 0;
    while i < PLAIN_GUEST_FIELDS.len() {
        let field = PLAIN_GUEST_FIELDS[i];
        let mut frequent = false;
        let mut j = 0;
        while j < FREQUENT_GUEST_FIELDS.len() {
            frequent |= FREQUENT_GUEST_FIELDS[j] == field;
            j += 1;
        }
        if !frequent {
            fields[n] = field;
            n += 1;
        }
        i += 1;
    }
    // The last slot keeps PENDING_DBG_EXCEPTIONS.
    assert!(n == fields.len() - 1);
    fields
};

const _: () = {
    let mut i = 0;
    while i < FREQUENT_GUEST_FIELDS.len() {
        let mut j = 0;
        let mut shadowed = false;
        while j < shadow_vmcs::SHADOWED.len() {
            shadowed |= shadow_vmcs::SHADOWED[j] == FREQUENT_GUEST_FIELDS[i];
            j += 1;
        }
        assert!(shadowed, "frequent guest fields are the shadowed ones");
        i += 1;
    }
};

/// The guest PDPTE fields, PDPTE0 first.
pub(crate) const PDPTE_FIELDS: [u32; 4] = [
    guest::PDPTE0_FULL,
    guest::PDPTE1_FULL,
    guest::PDPTE2_FULL,
    guest::PDPTE3_FULL,
];

/// Whether `addr` is canonical for 48-bit linear addresses. Stricter than a 5-level-paging CPU,
/// which is the safe side: a value accepted here is accepted by every processor.
pub(crate) const fn canonical(addr: u64) -> bool {
    ((addr as i64) << 16 >> 16) as u64 == addr
}

/// Whether `addr` has no bit set at or above the physical-address width.
pub(crate) const fn within_width(addr: u64, phys_addr_bits: u8) -> bool {
    addr >> phys_addr_bits == 0
}

/// Whether `addr` is a 4 KiB-aligned physical address within the width (SDM 27.2.1.1 wording).
pub(crate) const fn page_address_valid(addr: u64, phys_addr_bits: u8) -> bool {
    addr & 0xFFF == 0 && within_width(addr, phys_addr_bits)
}

/// Whether every byte of an IA32_PAT value is a valid memory type: 0 (UC), 1 (WC), 4 (WT),
/// 5 (WP), 6 (WB) or 7 (UC-) (SDM 27.2.2, 27.3.1.1).
pub(crate) const fn pat_valid(pat: u64) -> bool {
    let mut i = 0;
    while i < 8 {
        if matches!((pat >> (i * 8)) & 0xFF, 2 | 3 | 8..) {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `value` has every bit `fixed0` sets and no bit `fixed1` clears (SDM A.7, A.8).
pub(crate) const fn fixed_bits_ok(value: u64, fixed0: u64, fixed1: u64) -> bool {
    value & fixed0 == fixed0 && value & !fixed1 == 0
}

/// The CPL of the guest whose state `vmcs` holds: the DPL of SS (SDM 25.4.1, "the value of
/// the DPL field for SS is always equal to the logical processor's current privilege level").
pub fn guest_cpl(vmcs: &impl Vmcs) -> u8 {
    ar::dpl(vmcs.read(guest::SS_ACCESS_RIGHTS) as u32) as u8
}
