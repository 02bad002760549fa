//! ghv-hostile's own descriptor tables and the probes that run one instruction at CPL 0 or 3.
//!
//! Unlike ghv (which must never fault), ghv-hostile provokes exceptions in itself, so it has an
//! IDT: every gate uses IST1, and the handler (trap.s) turns the exception into the result of
//! the probe that raised it. The GDT adds user code and data for the ring-3 excursions; the
//! page tables (l3.rs `Tables`) are user-accessible, shared by ghv-hostile and its L3.

use x86::bits64::segmentation::Descriptor64;
use x86::bits64::task::TaskStateSegment;
use x86::segmentation::{
    BuildDescriptor, CodeSegmentType, DataSegmentType, Descriptor, DescriptorBuilder,
    GateDescriptorBuilder, SegmentDescriptorBuilder, SegmentSelector,
};
use x86::Ring;

core::arch::global_asm!(include_str!("trap.s"));

/// Kernel code, data and TSS selectors (as ghv's), then user data and code (trap.s IRETQs to
/// 0x33/0x2b).
pub const CODE: SegmentSelector = SegmentSelector::new(1, Ring::Ring0);
pub const DATA: SegmentSelector = SegmentSelector::new(2, Ring::Ring0);
pub const TSS: SegmentSelector = SegmentSelector::new(3, Ring::Ring0);
pub const USER_DATA: SegmentSelector = SegmentSelector::new(5, Ring::Ring3);
pub const USER_CODE: SegmentSelector = SegmentSelector::new(6, Ring::Ring3);
/// The gate that ends a probe: DPL 3, so user code reaches it with INT 0x80.
const PROBE_DONE_VECTOR: usize = 0x80;
/// What the gate stubs push when the vector has no error code.
const NO_ERROR_CODE: u64 = u64::MAX;

extern "C" {
    static hostile_isr_table: [u64; 32];
    static hostile_isr_return: u64;
    static hostile_trap_stack_top: u8;
    static hostile_trap: [u64; 3];
    fn hostile_probe(op: u64, user: u64, operand: u64, field: u64, value: u64) -> u64;
}

/// ghv-hostile's GDT, TSS and IDT.
#[repr(C, align(4096))]
pub struct HostTables {
    gdt: [u64; 7],
    tss: TaskStateSegment,
    idt: [Descriptor64; 256],
}

impl HostTables {
    /// Empty tables (for statics).
    pub const fn new() -> Self {
        Self {
            gdt: [0; 7],
            tss: TaskStateSegment::new(),
            idt: [Descriptor64::NULL; 256],
        }
    }

    /// Builds and loads the GDT (reloading every segment register), TR and the IDT.
    ///
    /// # Safety
    /// CPL 0 in 64-bit mode; `self` stays in place and unchanged while loaded.
    pub unsafe fn load(&'static mut self) -> &'static Self {
        self.tss.ist[0] = &raw const hostile_trap_stack_top as u64;
        let tss_limit = core::mem::size_of::<TaskStateSegment>() as u64 - 1;
        let tss: Descriptor64 = <DescriptorBuilder as GateDescriptorBuilder<u64>>::tss_descriptor(
            &raw const self.tss as u64,
            tss_limit,
            true,
        )
        .present()
        .finish();
        // SAFETY: a 64-bit system descriptor is two GDT slots (SDM 8.2.3).
        let [tss_low, tss_high]: [u64; 2] = core::mem::transmute(tss);
        self.gdt = [
            0,
            segment(true, Ring::Ring0),
            segment(false, Ring::Ring0),
            tss_low,
            tss_high,
            segment(false, Ring::Ring3),
            segment(true, Ring::Ring3),
        ];
        for (gate, handler) in self.idt.iter_mut().zip(&hostile_isr_table) {
            *gate = gate_to(*handler, Ring::Ring0);
        }
        self.idt[PROBE_DONE_VECTOR] = gate_to(hostile_isr_return, Ring::Ring3);
        let tables: &'static Self = self;
        x86::dtables::lgdt(&x86::dtables::DescriptorTablePointer::new_from_slice(
            &tables.gdt,
        ));
        x86::bits64::segmentation::load_cs(CODE);
        x86::segmentation::load_ss(DATA);
        x86::segmentation::load_ds(DATA);
        x86::segmentation::load_es(DATA);
        x86::task::load_tr(TSS);
        x86::dtables::lidt(&x86::dtables::DescriptorTablePointer::new_from_slice(
            &tables.idt,
        ));
        tables
    }

    pub fn gdt_base(&self) -> u64 {
        self.gdt.as_ptr() as u64
    }

    pub fn gdt_limit(&self) -> u32 {
        core::mem::size_of_val(&self.gdt) as u32 - 1
    }

    pub fn tss_base(&self) -> u64 {
        &raw const self.tss as u64
    }

    pub fn idt_base(&self) -> u64 {
        self.idt.as_ptr() as u64
    }
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

fn gate_to(handler: u64, dpl: Ring) -> Descriptor64 {
    <DescriptorBuilder as GateDescriptorBuilder<u64>>::interrupt_descriptor(CODE, handler)
        .present()
        .dpl(dpl)
        .ist(1)
        .finish()
}

/// One instruction of trap.s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Vmptrld,
    Vmclear,
    Vmptrst,
    Vmxon,
    Vmxoff,
    Vmread,
    Vmwrite,
    Vmlaunch,
    /// VMLAUNCH right after MOV SS.
    VmlaunchAfterMovSs,
    Vmresume,
    Invept,
    Invvpid,
}

extern "C" {
    fn hostile_op_vmptrld();
    fn hostile_op_vmclear();
    fn hostile_op_vmptrst();
    fn hostile_op_vmxon();
    fn hostile_op_vmxoff();
    fn hostile_op_vmread();
    fn hostile_op_vmwrite();
    fn hostile_op_vmlaunch();
    fn hostile_op_vmlaunch_after_mov_ss();
    fn hostile_op_vmresume();
    fn hostile_op_invept();
    fn hostile_op_invvpid();
}

impl Op {
    fn entry(self) -> u64 {
        let entry: unsafe extern "C" fn() = match self {
            Self::Vmptrld => hostile_op_vmptrld,
            Self::Vmclear => hostile_op_vmclear,
            Self::Vmptrst => hostile_op_vmptrst,
            Self::Vmxon => hostile_op_vmxon,
            Self::Vmxoff => hostile_op_vmxoff,
            Self::Vmread => hostile_op_vmread,
            Self::Vmwrite => hostile_op_vmwrite,
            Self::Vmlaunch => hostile_op_vmlaunch,
            Self::VmlaunchAfterMovSs => hostile_op_vmlaunch_after_mov_ss,
            Self::Vmresume => hostile_op_vmresume,
            Self::Invept => hostile_op_invept,
            Self::Invvpid => hostile_op_invvpid,
        };
        entry as *const () as u64
    }
}

/// How a probed instruction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probed {
    /// It completed with these RFLAGS.
    Completed(u64),
    /// It raised this exception (vector, error code if the vector pushes one).
    Exception(u8, Option<u32>),
}

/// Runs `op` once (at CPL 3 if `user`) with its memory operand at `operand`, `field` (VMCS
/// encoding or INVEPT/INVVPID type) and `value`.
///
/// # Safety
/// The tables must be loaded. At CPL 0 an op that succeeds changes VMX state as the instruction
/// does (the caller chose it to fail, or wants that change); a successful VMLAUNCH/VMRESUME
/// would not come back here, so only use those where they must fail or fault.
pub unsafe fn probe(op: Op, user: bool, operand: u64, field: u64, value: u64) -> Probed {
    let vector = hostile_probe(op.entry(), u64::from(user), operand, field, value);
    // SAFETY: written by the handler before hostile_probe returned.
    let [_, error, rflags] = core::ptr::read_volatile(&raw const hostile_trap);
    if vector == PROBE_DONE_VECTOR as u64 {
        return Probed::Completed(rflags);
    }
    Probed::Exception(
        vector as u8,
        (error != NO_ERROR_CODE).then_some(error as u32),
    )
}

/// A fault outside any probe: a bug in ghv-hostile, reported through the panic handler.
#[no_mangle]
extern "C" fn hostile_unexpected_trap(vector: u64, error: u64, rip: u64) -> ! {
    panic!("exception {vector} (error code {error:#x}) at {rip:#x} outside a probe");
}
