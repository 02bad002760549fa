//! Checks on the guest segment registers (SDM 27.3.1.2), for 64-bit, compatibility, protected,
//! real (with "unrestricted guest") and virtual-8086 mode.

use super::super::arch::{ar, canonical, SegmentFields, CS, DS, ES, FS, GS, LDTR, SS, TR};
use shadow_vmcs::Vmcs;

/// Selector bit 2: table indicator.
const TI: u64 = 1 << 2;
/// Selector bits 1:0: requested privilege level.
const RPL: u64 = 0b11;
/// Access rights every virtual-8086-mode segment must have: present, DPL 3, read/write accessed
/// data.
const AR_V8086: u32 = 0xF3;
/// Segment types.
const TYPE_DATA_RW_ACCESSED: u32 = 3;
const TYPE_DATA_RW_EXPAND_DOWN_ACCESSED: u32 = 7;
const TYPE_LDT: u32 = 2;
const TYPE_BUSY_TSS_16: u32 = 3;
const TYPE_BUSY_TSS_32_64: u32 = 11;
/// Type bits: accessed (0), readable for code (1), code (3), conforming for code (2).
const TYPE_ACCESSED: u32 = 1 << 0;
const TYPE_READABLE: u32 = 1 << 1;
const TYPE_CONFORMING: u32 = 1 << 2;
const TYPE_CODE: u32 = 1 << 3;

/// The guest mode the segment rules depend on.
#[derive(Clone, Copy, Debug)]
pub(super) struct SegmentMode {
    /// "IA-32e mode guest".
    pub(super) ia32e: bool,
    /// "Unrestricted guest".
    pub(super) unrestricted: bool,
    /// RFLAGS.VM.
    pub(super) v8086: bool,
    /// CR0.PE.
    pub(super) protected: bool,
}

/// One segment register's guest fields, read once.
#[derive(Clone, Copy, Debug)]
struct Segment {
    selector: u64,
    base: u64,
    limit: u32,
    ar: u32,
}

impl Segment {
    fn read(v: &impl Vmcs, fields: SegmentFields) -> Self {
        Segment {
            selector: v.read(fields.selector),
            base: v.read(fields.base),
            limit: v.read(fields.limit) as u32,
            ar: v.read(fields.access_rights) as u32,
        }
    }

    fn usable(&self) -> bool {
        self.ar & ar::UNUSABLE == 0
    }

    fn kind(&self) -> u32 {
        self.ar & ar::TYPE
    }

    fn dpl(&self) -> u32 {
        ar::dpl(self.ar)
    }

    fn rpl(&self) -> u32 {
        (self.selector & RPL) as u32
    }

    /// Granularity must match the limit: G = 0 if any of bits 11:0 is 0, G = 1 if any of bits
    /// 31:20 is 1.
    fn granularity_ok(&self) -> bool {
        let g = self.ar & ar::G != 0;
        (self.limit & 0xFFF == 0xFFF || !g) && (self.limit & 0xFFF0_0000 == 0 || g)
    }

    /// Present, reserved bits 11:8 and 31:17 clear, granularity consistent.
    fn common_ok(&self) -> bool {
        self.ar & ar::P != 0
            && self.ar & (ar::RESERVED_11_8 | ar::RESERVED_31_17) == 0
            && self.granularity_ok()
    }
}

pub(super) fn segments_valid(v: &impl Vmcs, mode: SegmentMode) -> bool {
    let [es, cs, ss, ds, fs, gs] = [ES, CS, SS, DS, FS, GS].map(|f| Segment::read(v, f));
    let tr = Segment::read(v, TR);
    let ldtr = Segment::read(v, LDTR);
    let data = [es, ds, fs, gs];

    let selectors_ok = tr.selector & TI == 0
        && (!ldtr.usable() || ldtr.selector & TI == 0)
        && (mode.v8086 || mode.unrestricted || ss.rpl() == cs.rpl());
    let bases_ok = canonical(tr.base)
        && canonical(fs.base)
        && canonical(gs.base)
        && (!ldtr.usable() || canonical(ldtr.base))
        && cs.base >> 32 == 0
        && [ss, ds, es]
            .iter()
            .all(|s| !s.usable() || s.base >> 32 == 0);
    let code_and_data_ok = if mode.v8086 {
        [cs, ss, ds, es, fs, gs]
            .iter()
            .all(|s| s.base == s.selector << 4 && s.limit == 0xFFFF && s.ar == AR_V8086)
    } else {
        code_ok(&cs, &ss, mode) && stack_ok(&ss, &cs, mode) && data.iter().all(|s| data_ok(s, mode))
    };
    selectors_ok && bases_ok && code_and_data_ok && tr_ok(&tr, mode) && ldtr_ok(&ldtr)
}

/// CS outside virtual-8086 mode.
fn code_ok(cs: &Segment, ss: &Segment, mode: SegmentMode) -> bool {
    let kind = cs.kind();
    let type_ok =
        matches!(kind, 9 | 11 | 13 | 15) || (mode.unrestricted && kind == TYPE_DATA_RW_ACCESSED);
    let dpl_ok = match kind {
        TYPE_DATA_RW_ACCESSED => cs.dpl() == 0,
        9 | 11 => cs.dpl() == ss.dpl(),
        _ => cs.dpl() <= ss.dpl(),
    };
    let long = cs.ar & ar::L != 0;
    // The one rule on L: in IA-32e mode a 64-bit code segment has D/B = 0. Outside IA-32e mode
    // VM entry does not check L (SDM 27.3.1.2) and the processor ignores it.
    let size_ok = !mode.ia32e || !long || cs.ar & ar::DB == 0;
    type_ok && cs.ar & ar::S != 0 && dpl_ok && size_ok && cs.usable() && cs.common_ok()
}

/// SS outside virtual-8086 mode: the DPL rules apply even when SS is unusable.
fn stack_ok(ss: &Segment, cs: &Segment, mode: SegmentMode) -> bool {
    let dpl_ok = (mode.unrestricted || ss.dpl() == ss.rpl())
        && ((cs.kind() != TYPE_DATA_RW_ACCESSED && mode.protected) || ss.dpl() == 0);
    let usable_ok = !ss.usable()
        || (matches!(
            ss.kind(),
            TYPE_DATA_RW_ACCESSED | TYPE_DATA_RW_EXPAND_DOWN_ACCESSED
        ) && ss.ar & ar::S != 0
            && ss.common_ok());
    dpl_ok && usable_ok
}

/// DS, ES, FS, GS outside virtual-8086 mode.
fn data_ok(s: &Segment, mode: SegmentMode) -> bool {
    if !s.usable() {
        return true;
    }
    let kind = s.kind();
    let readable_ok = kind & TYPE_CODE == 0 || kind & TYPE_READABLE != 0;
    // Data and non-conforming code: DPL >= RPL (the privilege check a load would make).
    let dpl_ok = mode.unrestricted
        || kind & (TYPE_CODE | TYPE_CONFORMING) == TYPE_CODE | TYPE_CONFORMING
        || s.dpl() >= s.rpl();
    kind & TYPE_ACCESSED != 0 && readable_ok && s.ar & ar::S != 0 && dpl_ok && s.common_ok()
}

/// TR: a busy TSS, usable, present (64-bit TSS in IA-32e mode).
fn tr_ok(tr: &Segment, mode: SegmentMode) -> bool {
    let type_ok = if mode.ia32e {
        tr.kind() == TYPE_BUSY_TSS_32_64
    } else {
        matches!(tr.kind(), TYPE_BUSY_TSS_16 | TYPE_BUSY_TSS_32_64)
    };
    type_ok && tr.ar & ar::S == 0 && tr.usable() && tr.common_ok()
}

/// LDTR, if usable: an LDT descriptor, present.
fn ldtr_ok(ldtr: &Segment) -> bool {
    !ldtr.usable() || (ldtr.kind() == TYPE_LDT && ldtr.ar & ar::S == 0 && ldtr.common_ok())
}
