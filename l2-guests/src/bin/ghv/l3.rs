//! L3: the payload (l3.s) and the memory ghv gives it, rebuilt before every scenario so that no
//! scenario sees what an earlier one did.
//!
//! L3 runs identity-mapped (L3-virtual = L3-physical = ghv-physical) on its own page tables,
//! GDT, TSS and IDT, which ghv writes into [`L3Memory`]. Its page tables map the payload's code
//! pages (read-only), its descriptor tables and its stacks, and leave one page of L3 memory
//! deliberately unmapped for the page-fault scenarios.

use crate::descriptors::DescriptorTables;
use crate::paging::Hierarchy;
use core::ops::Range;
use x86::bits64::paging::{PML4Flags, PTFlags};
use x86::bits64::segmentation::Descriptor64;
use x86::segmentation::{BuildDescriptor, DescriptorBuilder, GateDescriptorBuilder};
use x86::Ring;

/// RAX of L3's final VMCALL ("l3 done").
pub const DONE: u64 = 0x6c33_d0e5;
/// RAX of the VMCALL the `VmcallOther` action makes: any value but [`DONE`].
pub const OTHER_VMCALL: u64 = 0x77;
/// RDI/RSI of the final VMCALL when L3's handler received no vector / no error code.
pub const NONE: u64 = u64::MAX;

core::arch::global_asm!(
    include_str!("l3.s"),
    DONE = const DONE,
    OTHER = const OTHER_VMCALL,
    NONE = const -1i64,
);

extern "C" {
    static l3_code_start: u8;
    static l3_code_end: u8;
    static l3_isr_table: [u64; 32];
    fn l3_ud2();
    fn l3_divide_by_zero();
    fn l3_int3();
    fn l3_into();
    fn l3_read_non_canonical();
    fn l3_read_unmapped();
    fn l3_ud2_on_unmapped_stack();
    fn l3_int3_on_unmapped_stack();
    fn l3_divide_by_zero_absent_gate();
    fn l3_cpuid();
    fn l3_hlt();
    fn l3_out();
    fn l3_vmcall_other();
}

/// What L3 does in a scenario (one entry point of l3.s each).
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// UD2: #UD.
    Ud2,
    /// DIV by zero: #DE.
    DivideByZero,
    /// INT3: #BP, a software exception (instruction length 1).
    Int3,
    /// INTO: #UD in 64-bit mode.
    Into,
    /// A read of a non-canonical address: #GP(0).
    ReadNonCanonical,
    /// A read of the unmapped page: #PF, error code 0 (read, not present, supervisor).
    ReadUnmapped,
    /// UD2 with RSP at the top of the unmapped page: #PF while delivering #UD.
    Ud2OnUnmappedStack,
    /// INT3 with RSP at the top of the unmapped page: #PF while delivering #BP.
    Int3OnUnmappedStack,
    /// DIV by zero after clearing IDT gate 0's P bit: #DE → #NP → #DF.
    DivideByZeroAbsentGate,
    /// CPUID leaf 0x4000_0000.
    Cpuid,
    /// HLT.
    Hlt,
    /// OUT 0x80, AL.
    Out,
    /// VMCALL with RAX = [`OTHER_VMCALL`].
    VmcallOther,
}

impl Action {
    /// The L3 RIP that performs the action.
    pub fn entry(self) -> u64 {
        let entry: unsafe extern "C" fn() = match self {
            Self::Ud2 => l3_ud2,
            Self::DivideByZero => l3_divide_by_zero,
            Self::Int3 => l3_int3,
            Self::Into => l3_into,
            Self::ReadNonCanonical => l3_read_non_canonical,
            Self::ReadUnmapped => l3_read_unmapped,
            Self::Ud2OnUnmappedStack => l3_ud2_on_unmapped_stack,
            Self::Int3OnUnmappedStack => l3_int3_on_unmapped_stack,
            Self::DivideByZeroAbsentGate => l3_divide_by_zero_absent_gate,
            Self::Cpuid => l3_cpuid,
            Self::Hlt => l3_hlt,
            Self::Out => l3_out,
            Self::VmcallOther => l3_vmcall_other,
        };
        entry as *const () as u64
    }
}

/// The payload's code pages.
pub fn code() -> Range<u64> {
    // Labels in l3.s; only their addresses are taken.
    &raw const l3_code_start as u64..&raw const l3_code_end as u64
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

#[repr(C, align(4096))]
struct Idt([Descriptor64; 256]);

/// Everything of ghv's memory that L3 owns (all of it mapped by ghv's EPT).
#[repr(C, align(4096))]
pub struct L3Memory {
    paging: Hierarchy,
    descriptors: DescriptorTables,
    idt: Idt,
    stack: [Page; 2],
    /// IST1: #PF and #DF are delivered here, so they reach their handler even when the
    /// faulting code's stack is the unmapped page.
    interrupt_stack: Page,
    unmapped: Page,
}

/// The vectors whose gates switch to IST1.
const IST_VECTORS: [usize; 2] = [8, 14];

impl L3Memory {
    /// Zeroed memory (for statics); [`L3Memory::reset`] prepares it.
    pub const fn new() -> Self {
        const ZERO: Page = Page([0; 4096]);
        Self {
            paging: Hierarchy::new(),
            descriptors: DescriptorTables::new(),
            idt: Idt([Descriptor64::NULL; 256]),
            stack: [ZERO; 2],
            interrupt_stack: ZERO,
            unmapped: ZERO,
        }
    }

    /// Rebuilds L3's page tables, GDT, TSS and IDT in their initial state.
    pub fn reset(&mut self) {
        let table = (PML4Flags::P | PML4Flags::RW).bits();
        self.paging.reset(table);
        let writable = (PTFlags::P | PTFlags::RW).bits();
        self.paging.map(code(), PTFlags::P.bits());
        self.paging.map(range_of(&self.descriptors), writable);
        self.paging.map(range_of(&self.idt), writable);
        self.paging.map(range_of(&self.stack), writable);
        self.paging.map(range_of(&self.interrupt_stack), writable);
        let ist_top = range_of(&self.interrupt_stack).end;
        self.descriptors.build(ist_top);
        // SAFETY: the table has one entry per vector 0..32, written by l3.s.
        let handlers = unsafe { &l3_isr_table };
        for (vector, (gate, handler)) in self.idt.0.iter_mut().zip(handlers).enumerate() {
            let ist = if IST_VECTORS.contains(&vector) { 1 } else { 0 };
            *gate = <DescriptorBuilder as GateDescriptorBuilder<u64>>::interrupt_descriptor(
                crate::descriptors::CODE,
                *handler,
            )
            .present()
            .dpl(Ring::Ring0)
            .ist(ist)
            .finish();
        }
    }

    /// All of L3's memory, for ghv's EPT.
    pub fn range(&self) -> Range<u64> {
        range_of(self)
    }

    /// L3's CR3.
    pub fn cr3(&self) -> u64 {
        self.paging.root()
    }

    /// L3's GDT base and limit.
    pub fn gdtr(&self) -> (u64, u32) {
        (self.descriptors.gdt_base(), self.descriptors.gdt_limit())
    }

    /// L3's TSS base.
    pub fn tss_base(&self) -> u64 {
        self.descriptors.tss_base()
    }

    /// L3's IDT base and limit.
    pub fn idtr(&self) -> (u64, u32) {
        (
            range_of(&self.idt).start,
            core::mem::size_of::<Idt>() as u32 - 1,
        )
    }

    /// L3's initial RSP.
    pub fn stack_top(&self) -> u64 {
        range_of(&self.stack).end
    }

    /// The page L3's tables leave unmapped.
    pub fn unmapped_page(&self) -> u64 {
        range_of(&self.unmapped).start
    }
}

fn range_of<T>(item: &T) -> Range<u64> {
    let start = item as *const T as u64;
    start..start + core::mem::size_of::<T>() as u64
}
