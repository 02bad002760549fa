//! The host GDT and TSS. VMX needs a non-null host TR (SDM 26.2.3), and NMI, #DF and #MC get
//! their own IST stacks so that a report can still be printed from a corrupted stack.

use core::mem::size_of;
use x86::bits64::segmentation::Descriptor64;
use x86::bits64::task::TaskStateSegment;
use x86::dtables::{lgdt, DescriptorTablePointer};
use x86::segmentation::{
    BuildDescriptor, CodeSegmentType, DataSegmentType, Descriptor, DescriptorBuilder,
    GateDescriptorBuilder, SegmentDescriptorBuilder, SegmentSelector,
};
use x86::Ring;

/// Host code segment selector.
pub const CODE: SegmentSelector = SegmentSelector::new(1, Ring::Ring0);
/// Host data/stack segment selector.
pub const DATA: SegmentSelector = SegmentSelector::new(2, Ring::Ring0);
/// Host task register selector (a 64-bit TSS takes two GDT slots: 3 and 4).
pub const TSS: SegmentSelector = SegmentSelector::new(3, Ring::Ring0);

/// IST slots (1-based, as the IDT gate's IST field counts them).
pub const IST_NMI: u8 = 1;
/// IST slot for #DF.
pub const IST_DOUBLE_FAULT: u8 = 2;
/// IST slot for #MC.
pub const IST_MACHINE_CHECK: u8 = 3;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

static mut IST_STACKS: [Stack; 3] = [const { Stack([0; IST_STACK_SIZE]) }; 3];
static mut TSS_SEGMENT: TaskStateSegment = TaskStateSegment::new();
static mut GDT: [u64; 5] = [0; 5];

/// Builds and loads the GDT, reloads the segment registers and loads TR.
pub fn init() {
    // SAFETY: runs once on the boot CPU before anything else uses these statics.
    unsafe {
        let tss = &raw mut TSS_SEGMENT;
        for (slot, ist) in [IST_NMI, IST_DOUBLE_FAULT, IST_MACHINE_CHECK]
            .iter()
            .enumerate()
        {
            let stack = &raw const IST_STACKS[slot];
            (*tss).set_ist(usize::from(*ist - 1), stack as u64 + IST_STACK_SIZE as u64);
        }
        let code: Descriptor =
            DescriptorBuilder::code_descriptor(0, 0xf_ffff, CodeSegmentType::ExecuteRead)
                .present()
                .l()
                .limit_granularity_4kb()
                .finish();
        let data: Descriptor =
            DescriptorBuilder::data_descriptor(0, 0xf_ffff, DataSegmentType::ReadWrite)
                .present()
                .db()
                .limit_granularity_4kb()
                .finish();
        let tss_desc: Descriptor64 =
            <DescriptorBuilder as GateDescriptorBuilder<u64>>::tss_descriptor(
                tss as u64,
                size_of::<TaskStateSegment>() as u64 - 1,
                true,
            )
            .present()
            .finish();
        let [tss_low, tss_high]: [u64; 2] = core::mem::transmute(tss_desc);
        let gdt = &raw mut GDT;
        *gdt = [0, code.as_u64(), data.as_u64(), tss_low, tss_high];
        lgdt(&DescriptorTablePointer::new_from_slice(&*gdt));
        x86::bits64::segmentation::load_cs(CODE);
        x86::segmentation::load_ss(DATA);
        x86::segmentation::load_ds(DATA);
        x86::segmentation::load_es(DATA);
        x86::task::load_tr(TSS);
    }
}

/// Base address of the TSS (the VMCS host-state TR base).
pub fn tss_base() -> u64 {
    &raw const TSS_SEGMENT as u64
}

/// Base address of the GDT (the VMCS host-state GDTR base).
pub fn gdt_base() -> u64 {
    &raw const GDT as u64
}
