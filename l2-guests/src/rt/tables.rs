//! The guest's own GDT (kernel and user segments, a TSS for CPL 3 → 0 stack switches) and IDT.

use x86::bits64::segmentation::Descriptor64;
use x86::bits64::task::TaskStateSegment;
use x86::dtables::{lgdt, lidt, DescriptorTablePointer};
use x86::segmentation::{
    BuildDescriptor, CodeSegmentType, DataSegmentType, Descriptor, DescriptorBuilder,
    GateDescriptorBuilder, SegmentDescriptorBuilder, SegmentSelector,
};
use x86::Ring;

/// Kernel code selector (equal to l1-hv's boot selector, so no reload surprises).
pub const KERNEL_CODE: SegmentSelector = SegmentSelector::new(1, Ring::Ring0);
/// Kernel data selector.
pub const KERNEL_DATA: SegmentSelector = SegmentSelector::new(2, Ring::Ring0);
/// The vector whose DPL 3 gate returns from user mode (see `run_user`).
pub const RETURN_TO_KERNEL_VECTOR: usize = 0x80;
const TSS: SegmentSelector = SegmentSelector::new(5, Ring::Ring0);

#[repr(C, align(16))]
struct InterruptStack([u8; 16 * 1024]);

static mut INTERRUPT_STACK: InterruptStack = InterruptStack([0; 16 * 1024]);
static mut TSS_SEGMENT: TaskStateSegment = TaskStateSegment::new();
static mut GDT: [u64; 7] = [0; 7];
static mut IDT: [Descriptor64; 256] = [Descriptor64::NULL; 256];

extern "C" {
    static guest_isr_table: [u64; 32];
    fn guest_isr_return_to_kernel();
}

fn segment(code: bool, ring: Ring) -> u64 {
    let builder = if code {
        DescriptorBuilder::code_descriptor(0, 0xf_ffff, CodeSegmentType::ExecuteRead).l()
    } else {
        DescriptorBuilder::data_descriptor(0, 0xf_ffff, DataSegmentType::ReadWrite).db()
    };
    let descriptor: Descriptor = builder.present().dpl(ring).limit_granularity_4kb().finish();
    descriptor.as_u64()
}

fn gate(handler: u64, dpl: Ring) -> Descriptor64 {
    <DescriptorBuilder as GateDescriptorBuilder<u64>>::interrupt_descriptor(KERNEL_CODE, handler)
        .present()
        .dpl(dpl)
        .finish()
}

/// Loads the GDT, TSS and IDT.
pub fn init() {
    // SAFETY: single-threaded guest start-up; the statics are only touched here.
    unsafe {
        let tss = &raw mut TSS_SEGMENT;
        let stack = &raw const INTERRUPT_STACK;
        (*tss).rsp[0] = stack as u64 + core::mem::size_of::<InterruptStack>() as u64;
        let tss_desc: Descriptor64 =
            <DescriptorBuilder as GateDescriptorBuilder<u64>>::tss_descriptor(
                tss as u64,
                core::mem::size_of::<TaskStateSegment>() as u64 - 1,
                true,
            )
            .present()
            .finish();
        let [tss_low, tss_high]: [u64; 2] = core::mem::transmute(tss_desc);
        let gdt = &raw mut GDT;
        *gdt = [
            0,
            segment(true, Ring::Ring0),
            segment(false, Ring::Ring0),
            segment(false, Ring::Ring3), // 0x18 | 3: user data
            segment(true, Ring::Ring3),  // 0x20 | 3: user code
            tss_low,
            tss_high,
        ];
        lgdt(&DescriptorTablePointer::new_from_slice(&*gdt));
        x86::segmentation::load_ss(KERNEL_DATA);
        x86::segmentation::load_ds(KERNEL_DATA);
        x86::segmentation::load_es(KERNEL_DATA);
        x86::task::load_tr(TSS);

        let idt = &raw mut IDT;
        for (vector, handler) in guest_isr_table.iter().enumerate() {
            (*idt)[vector] = gate(*handler, Ring::Ring0);
        }
        (*idt)[RETURN_TO_KERNEL_VECTOR] =
            gate(guest_isr_return_to_kernel as *const () as u64, Ring::Ring3);
        lidt(&DescriptorTablePointer::new_from_slice(&*idt));
    }
}

/// Loads an empty IDT: the next exception cannot be delivered (#GP, then #DF, then a triple
/// fault, SDM 6.15 "Interrupt 8").
pub fn load_empty_idt() {
    let empty: DescriptorTablePointer<Descriptor64> = DescriptorTablePointer {
        limit: 0,
        base: core::ptr::null(),
    };
    // SAFETY: deliberately breaks exception delivery; callers want the triple fault.
    unsafe { lidt(&empty) };
}
