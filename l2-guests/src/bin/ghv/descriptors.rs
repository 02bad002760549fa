//! The GDT layout ghv uses for itself and gives L3: null, 64-bit code (0x08), data (0x10) and a
//! 64-bit TSS (0x18, two slots). ghv needs a TSS of its own because a VM exit loads TR and the
//! host TR selector must not be 0 (SDM 27.2.3); L3 needs one for its interrupt stack table.

use x86::bits64::segmentation::Descriptor64;
use x86::bits64::task::TaskStateSegment;
use x86::segmentation::{
    BuildDescriptor, CodeSegmentType, DataSegmentType, Descriptor, DescriptorBuilder,
    GateDescriptorBuilder, SegmentDescriptorBuilder, SegmentSelector,
};
use x86::Ring;

/// Code selector.
pub const CODE: SegmentSelector = SegmentSelector::new(1, Ring::Ring0);
/// Data selector (SS, DS, ES).
pub const DATA: SegmentSelector = SegmentSelector::new(2, Ring::Ring0);
/// TSS selector.
pub const TSS: SegmentSelector = SegmentSelector::new(3, Ring::Ring0);

/// A GDT and the TSS it describes, on one page.
#[repr(C, align(4096))]
pub struct DescriptorTables {
    gdt: [u64; 5],
    tss: TaskStateSegment,
}

impl DescriptorTables {
    /// Empty tables (for statics); [`DescriptorTables::build`] fills them.
    pub const fn new() -> Self {
        Self {
            gdt: [0; 5],
            tss: TaskStateSegment::new(),
        }
    }

    /// Writes the GDT and a TSS whose IST1 is `ist1` (0: no interrupt stack table).
    pub fn build(&mut self, ist1: u64) {
        let mut tss = TaskStateSegment::new();
        tss.ist[0] = ist1;
        self.tss = tss;
        let tss_limit = core::mem::size_of::<TaskStateSegment>() as u64 - 1;
        let tss_descriptor: Descriptor64 =
            <DescriptorBuilder as GateDescriptorBuilder<u64>>::tss_descriptor(
                self.tss_base(),
                tss_limit,
                true,
            )
            .present()
            .finish();
        // SAFETY: a 64-bit system descriptor is two GDT slots (SDM 8.2.3), same size and layout.
        let [tss_low, tss_high]: [u64; 2] = unsafe { core::mem::transmute(tss_descriptor) };
        let code: Descriptor =
            DescriptorBuilder::code_descriptor(0, 0xf_ffff, CodeSegmentType::ExecuteRead)
                .l()
                .present()
                .dpl(Ring::Ring0)
                .limit_granularity_4kb()
                .finish();
        let data: Descriptor =
            DescriptorBuilder::data_descriptor(0, 0xf_ffff, DataSegmentType::ReadWrite)
                .db()
                .present()
                .dpl(Ring::Ring0)
                .limit_granularity_4kb()
                .finish();
        self.gdt = [0, code.as_u64(), data.as_u64(), tss_low, tss_high];
    }

    /// The GDT's base address.
    pub fn gdt_base(&self) -> u64 {
        self.gdt.as_ptr() as u64
    }

    /// The GDT's limit (size - 1).
    pub fn gdt_limit(&self) -> u32 {
        core::mem::size_of_val(&self.gdt) as u32 - 1
    }

    /// The TSS's base address.
    pub fn tss_base(&self) -> u64 {
        &raw const self.tss as u64
    }

    /// Loads the GDT, reloads every segment register from it and loads TR (ghv itself).
    ///
    /// # Safety
    /// CPL 0 in 64-bit mode; `self` must stay in place and unchanged while it is the GDT.
    pub unsafe fn load(&'static self) {
        x86::dtables::lgdt(&x86::dtables::DescriptorTablePointer::new_from_slice(
            &self.gdt,
        ));
        x86::bits64::segmentation::load_cs(CODE);
        x86::segmentation::load_ss(DATA);
        x86::segmentation::load_ds(DATA);
        x86::segmentation::load_es(DATA);
        x86::task::load_tr(TSS);
    }
}
