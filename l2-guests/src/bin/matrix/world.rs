//! The payload's world, rebuilt before every scenario from the scenario's [`Env`]: its page
//! tables (identity for its code and this memory, plus matrix-scenarios' fault window), GDT,
//! TSS and IDT. Shared by matrix-ghv (L3, entered through the VMCS) and matrix-l2 (entered by
//! loading the same registers itself), so both run the same payload in the same world.

use core::ops::Range;
use matrix_scenarios::{
    selectors, Action, Env, COMPLETED_VECTOR, DF_IST, PF_IST, UNMAPPED_STACK_TOP, WINDOW,
};
use x86::bits64::segmentation::Descriptor64;
use x86::bits64::task::TaskStateSegment;
use x86::segmentation::{
    BuildDescriptor, CodeSegmentType, DataSegmentType, Descriptor, DescriptorBuilder,
    GateDescriptorBuilder, SegmentDescriptorBuilder, SegmentSelector,
};
use x86::Ring;

/// Paging-entry bits (SDM 4.5): present, writable, user, execute-disable; bit 51 is reserved
/// below MAXPHYADDR 52 (Bochs' models have 40 or less).
const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const RESERVED_51: u64 = 1 << 51;
const XD: u64 = 1 << 63;
const PAGE: u64 = 4096;
/// Identity-mapped page tables: one per 2 MiB of the low 8 MiB (where every image lives).
const IDENTITY_TABLES: usize = 4;

/// CR0 of the payload: protected mode, paging, MP/ET/NE (x87 errors as #MF), WP (read-only
/// pages are read-only at CPL 0 too), AM (for #AC).
pub const CR0: u64 = 1 | 1 << 1 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 18 | 1 << 31;
/// CR4 of the payload: PAE (IA-32e paging); the `xm` action sets OSFXSR/OSXMMEXCPT itself.
pub const CR4: u64 = 1 << 5;
/// RFLAGS with only the reserved bit 1: interrupts disabled.
pub const RFLAGS: u64 = 0x2;

// `report_asm!()` (the including image's) defines MX_REPORT, how a finished run reports.
core::arch::global_asm!(
    concat!(report_asm!(), include_str!("payload.s")),
    NONE = const -1i64,
    COMPLETED = const COMPLETED_VECTOR,
    USER_CODE = const selectors::USER_CODE,
    USER_DATA = const selectors::USER_DATA,
    BEYOND_GDT = const selectors::BEYOND_GDT,
    NOT_PRESENT_DATA = const selectors::NOT_PRESENT_DATA,
    NOT_PRESENT = const matrix_scenarios::NOT_PRESENT,
    READ_ONLY = const matrix_scenarios::READ_ONLY,
    SUPERVISOR = const matrix_scenarios::SUPERVISOR,
    RESERVED = const matrix_scenarios::RESERVED,
    NO_EXECUTE = const matrix_scenarios::NO_EXECUTE,
);

macro_rules! entries {
    ($($variant:ident => $symbol:ident,)*) => {
        extern "C" {
            $(fn $symbol();)*
            static mx_code_start: u8;
            static mx_code_end: u8;
            static mx_isr_table: [u64; 35];
            static mx_isr_completed_entry: u64;
        }

        /// The payload's entry point for `action`.
        pub fn entry(action: Action) -> u64 {
            let entry: unsafe extern "C" fn() = match action { $(Action::$variant => $symbol,)* };
            entry as *const () as u64
        }
    };
}

entries! {
    DivideByZero => mx_de, SingleStep => mx_db_tf, Int1 => mx_int1, Int3 => mx_int3,
    IntN0 => mx_int_0x0, IntN1 => mx_int_0x1, IntN3 => mx_int_0x3, IntN4 => mx_int_0x4,
    IntN5 => mx_int_0x5, IntN6 => mx_int_0x6, IntN7 => mx_int_0x7, IntN16 => mx_int_0x10,
    IntN32 => mx_int_0x20, IntN128 => mx_int_0x80, IntN255 => mx_int_0xff, Into => mx_into,
    Ud2 => mx_ud2, FnopTs => mx_nm_fnop, FwaitTs => mx_nm_fwait,
    ReadNonCanonical => mx_gp_noncanonical, LoadBeyondGdt => mx_gp_selector,
    StackNonCanonical => mx_ss_noncanonical, LoadNotPresent => mx_np_selector,
    X87DivideByZero => mx_mf, SseDivideByZero => mx_xm,
    ReadNotPresent => mx_pf_r_np, WriteNotPresent => mx_pf_w_np, FetchNotPresent => mx_pf_x_np,
    WriteReadOnly => mx_pf_w_ro, ReadReserved => mx_pf_r_rsvd, WriteReserved => mx_pf_w_rsvd,
    FetchNoExecute => mx_pf_x_nx,
    UserReadNotPresent => mx_u_pf_r_np, UserWriteNotPresent => mx_u_pf_w_np,
    UserReadSupervisor => mx_u_pf_r_sup, UserWriteSupervisor => mx_u_pf_w_sup,
    UserReadReserved => mx_u_pf_r_rsvd, UserFetchNoExecute => mx_u_pf_x_nx,
    UserFetchSupervisor => mx_u_pf_x_sup, UserIntN32 => mx_u_int_0x20, UserInt3 => mx_u_int3,
    UserCli => mx_u_cli, UserMisaligned => mx_u_ac, UserUd2 => mx_u_ud2,
    UserDivideByZero => mx_u_de,
}

/// The vectors of `mx_isr_table`'s entries.
const ISR_VECTORS: [u8; 35] = {
    let mut v = [0u8; 35];
    let mut i = 0;
    while i < 32 {
        v[i] = i as u8;
        i += 1;
    }
    v[32] = 0x20;
    v[33] = 0x80;
    v[34] = 0xff;
    v
};

/// The payload's code pages.
pub fn code() -> Range<u64> {
    // Labels in payload.s; only their addresses are taken.
    &raw const mx_code_start as u64..&raw const mx_code_end as u64
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// GDT and TSS on one page (selectors as in `matrix_scenarios::selectors`).
#[repr(C, align(4096))]
struct Descriptors {
    gdt: [u64; 8],
    tss: TaskStateSegment,
}

/// All of the payload's memory.
#[repr(C, align(4096))]
pub struct World {
    pml4: Table,
    pdpt: Table,
    pd: Table,
    pt: [Table; IDENTITY_TABLES],
    window_pd: Table,
    window_pt: Table,
    descriptors: Descriptors,
    idt: [Descriptor64; 256],
    stack: [Page; 2],
    user_stack: Page,
    df_stack: Page,
    pf_stack: Page,
    /// What the window's present pages map to.
    scratch: Page,
}

impl World {
    /// Zeroed memory (for statics); [`World::build`] prepares it.
    pub const fn new() -> Self {
        const T: Table = Table([0; 512]);
        const Z: Page = Page([0; 4096]);
        Self {
            pml4: T,
            pdpt: T,
            pd: T,
            pt: [T, T, T, T],
            window_pd: T,
            window_pt: T,
            descriptors: Descriptors {
                gdt: [0; 8],
                tss: TaskStateSegment::new(),
            },
            idt: [Descriptor64::NULL; 256],
            stack: [Z, Z],
            user_stack: Z,
            df_stack: Z,
            pf_stack: Z,
            scratch: Z,
        }
    }

    /// Rebuilds everything for `env`.
    pub fn build(&mut self, env: Env) {
        self.build_paging();
        let top = |page: &Page, unmapped: bool| {
            if unmapped {
                UNMAPPED_STACK_TOP
            } else {
                range_of(page).end
            }
        };
        let mut tss = TaskStateSegment::new();
        tss.rsp[0] = if env.rsp0_unmapped {
            UNMAPPED_STACK_TOP
        } else {
            range_of(&self.stack).end
        };
        tss.ist[usize::from(DF_IST) - 1] = top(&self.df_stack, env.df_ist_unmapped);
        tss.ist[usize::from(PF_IST) - 1] = top(&self.pf_stack, env.pf_ist_unmapped);
        self.descriptors.tss = tss;
        let tss_base = self.tss_base();
        self.descriptors.gdt = gdt(tss_base);
        // SAFETY: the tables have one entry per vector of ISR_VECTORS, written by payload.s.
        let (handlers, completed) = unsafe { (&mx_isr_table, mx_isr_completed_entry) };
        self.idt = [Descriptor64::NULL; 256];
        for (&vector, &handler) in ISR_VECTORS.iter().zip(handlers) {
            let ist = match vector {
                8 => DF_IST,
                14 => PF_IST,
                _ => 0,
            };
            self.idt[usize::from(vector)] =
                gate(handler, Ring::Ring0, ist, env.gate_present(vector));
        }
        self.idt[usize::from(COMPLETED_VECTOR)] = gate(completed, Ring::Ring3, 0, true);
    }

    fn build_paging(&mut self) {
        let table = P | RW | US;
        for t in [
            &mut self.pml4,
            &mut self.pdpt,
            &mut self.pd,
            &mut self.window_pd,
            &mut self.window_pt,
        ]
        .into_iter()
        .chain(self.pt.iter_mut())
        {
            t.0.fill(0);
        }
        self.pml4.0[0] = address(&self.pdpt) | table;
        self.pdpt.0[0] = address(&self.pd) | table;
        self.pdpt.0[(WINDOW >> 30) as usize] = address(&self.window_pd) | table;
        self.window_pd.0[0] = address(&self.window_pt) | table;
        for (entry, pt) in self.pd.0.iter_mut().zip(&self.pt) {
            *entry = address(pt) | table;
        }
        self.map(code(), P | US);
        self.map(self.range(), P | RW | US);
        let scratch = range_of(&self.scratch).start;
        // Window pages 0..5 (matrix_scenarios' constants): not present, read-only supervisor,
        // writable supervisor, reserved bit, execute-disable.
        self.window_pt.0[..5].copy_from_slice(&[
            0,
            scratch | P,
            scratch | P | RW,
            scratch | P | RW | US | RESERVED_51,
            scratch | P | RW | US | XD,
        ]);
    }

    /// Maps every page of `range` to itself.
    fn map(&mut self, range: Range<u64>, bits: u64) {
        for page in (range.start..range.end).step_by(PAGE as usize) {
            let index = (page / PAGE) as usize;
            self.pt[index / 512].0[index % 512] = page | bits;
        }
    }

    /// All of the world's memory.
    pub fn range(&self) -> Range<u64> {
        range_of(self)
    }

    /// CR3.
    pub fn cr3(&self) -> u64 {
        address(&self.pml4)
    }

    /// GDT base and limit.
    pub fn gdtr(&self) -> (u64, u32) {
        (
            self.descriptors.gdt.as_ptr() as u64,
            core::mem::size_of_val(&self.descriptors.gdt) as u32 - 1,
        )
    }

    /// IDT base and limit.
    pub fn idtr(&self) -> (u64, u32) {
        (
            self.idt.as_ptr() as u64,
            core::mem::size_of_val(&self.idt) as u32 - 1,
        )
    }

    /// TSS base.
    pub fn tss_base(&self) -> u64 {
        &raw const self.descriptors.tss as u64
    }

    /// The initial RSP for `env`.
    pub fn rsp(&self, env: Env) -> u64 {
        if env.stack_unmapped {
            UNMAPPED_STACK_TOP
        } else {
            range_of(&self.stack).end
        }
    }

    /// The user stack's top (RDI at entry).
    pub fn user_stack_top(&self) -> u64 {
        range_of(&self.user_stack).end
    }
}

fn gdt(tss_base: u64) -> [u64; 8] {
    let tss_limit = core::mem::size_of::<TaskStateSegment>() as u64 - 1;
    let tss: Descriptor64 = <DescriptorBuilder as GateDescriptorBuilder<u64>>::tss_descriptor(
        tss_base, tss_limit, true,
    )
    .present()
    .finish();
    // SAFETY: a 64-bit system descriptor is two GDT slots (SDM 8.2.3), same size and layout.
    let [tss_low, tss_high]: [u64; 2] = unsafe { core::mem::transmute(tss) };
    let code = |ring| {
        let d: Descriptor =
            DescriptorBuilder::code_descriptor(0, 0xf_ffff, CodeSegmentType::ExecuteRead)
                .l()
                .present()
                .dpl(ring)
                .limit_granularity_4kb()
                .finish();
        d.as_u64()
    };
    let data = |ring, present: bool| {
        let builder = DescriptorBuilder::data_descriptor(0, 0xf_ffff, DataSegmentType::ReadWrite)
            .db()
            .dpl(ring);
        let d: Descriptor = if present { builder.present() } else { builder }
            .limit_granularity_4kb()
            .finish();
        d.as_u64()
    };
    [
        0,
        code(Ring::Ring0),
        data(Ring::Ring0, true),
        tss_low,
        tss_high,
        code(Ring::Ring3),
        data(Ring::Ring3, true),
        data(Ring::Ring0, false),
    ]
}

fn gate(handler: u64, dpl: Ring, ist: u8, present: bool) -> Descriptor64 {
    let selector = SegmentSelector::from_raw(selectors::CODE);
    let builder =
        <DescriptorBuilder as GateDescriptorBuilder<u64>>::interrupt_descriptor(selector, handler)
            .dpl(dpl)
            .ist(ist);
    if present { builder.present() } else { builder }.finish()
}

fn address<T>(item: &T) -> u64 {
    item as *const T as u64
}

fn range_of<T>(item: &T) -> Range<u64> {
    let start = item as *const T as u64;
    start..start + core::mem::size_of::<T>() as u64
}
