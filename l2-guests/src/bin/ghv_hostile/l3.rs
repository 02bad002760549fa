//! ghv-hostile's L3: payloads (l3.s) that each do one thing a guest hypervisor must see as a VM
//! exit, the page tables L3 and ghv-hostile share, and the EPT whose second GiB ghv-hostile
//! makes hostile per scenario.
//!
//! Paging (both levels) identity-maps the first 8 MiB with 2 MiB pages, user-accessible, so
//! L3 runs at CPL 3 and ghv-hostile can make ring-3 excursions. Linear 1 GiB (one 2 MiB page)
//! maps guest-physical 1 GiB: the window through which L3 reaches EPT's hostile slot
//! (`EPT PDPT[1]`, guest-physical 1 GiB to 2 GiB). All of this lies in ghv-hostile's image.

/// RAX of L3's reporting VMCALL.
pub const DONE: u64 = 0x6c33_d0e5;
/// RDI of that VMCALL when L3 read nothing.
pub const NONE: u64 = u64::MAX;
/// Guest-physical (and L3-linear) start of EPT's hostile slot.
const HOSTILE_WINDOW: u64 = 1 << 30;

core::arch::global_asm!(include_str!("l3.s"), DONE = const DONE, NONE = const -1i64);

extern "C" {
    fn hostile_l3_vmcall();
    fn hostile_l3_vmclear();
    fn hostile_l3_vmlaunch();
    fn hostile_l3_vmptrld();
    fn hostile_l3_vmptrst();
    fn hostile_l3_vmread();
    fn hostile_l3_vmresume();
    fn hostile_l3_vmwrite();
    fn hostile_l3_vmxoff();
    fn hostile_l3_vmxon();
    fn hostile_l3_invept();
    fn hostile_l3_invvpid();
    fn hostile_l3_ud2();
    fn hostile_l3_read();
}

/// What L3 does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    Vmcall,
    Vmclear,
    Vmlaunch,
    Vmptrld,
    Vmptrst,
    Vmread,
    Vmresume,
    Vmwrite,
    Vmxoff,
    Vmxon,
    Invept,
    Invvpid,
    /// UD2 (with L3's empty IDT: a triple fault).
    Ud2,
    /// Reads 8 bytes at RSI + 8 and reports them.
    Read,
}

impl Payload {
    /// L3's RIP for the payload.
    pub fn entry(self) -> u64 {
        let entry: unsafe extern "C" fn() = match self {
            Self::Vmcall => hostile_l3_vmcall,
            Self::Vmclear => hostile_l3_vmclear,
            Self::Vmlaunch => hostile_l3_vmlaunch,
            Self::Vmptrld => hostile_l3_vmptrld,
            Self::Vmptrst => hostile_l3_vmptrst,
            Self::Vmread => hostile_l3_vmread,
            Self::Vmresume => hostile_l3_vmresume,
            Self::Vmwrite => hostile_l3_vmwrite,
            Self::Vmxoff => hostile_l3_vmxoff,
            Self::Vmxon => hostile_l3_vmxon,
            Self::Invept => hostile_l3_invept,
            Self::Invvpid => hostile_l3_invvpid,
            Self::Ud2 => hostile_l3_ud2,
            Self::Read => hostile_l3_read,
        };
        entry as *const () as u64
    }
}

const ENTRIES: usize = 512;
const MIB2: u64 = 2 << 20;
/// 2 MiB pages covering ghv-hostile's RAM (8 MiB, the l2-abi guest RAM size).
const LOW_PAGES: usize = 4;

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

const EMPTY: Table = Table([0; ENTRIES]);

/// IA-32e page tables (SDM 4.5): present, writable, user (bits 0-2); PS (bit 7).
const PAGE_TABLE: u64 = 0b111;
const PAGE_2M: u64 = PAGE_TABLE | 1 << 7;

/// The page tables ghv-hostile and L3 share.
#[repr(C, align(4096))]
pub struct Tables {
    pml4: Table,
    pdpt: Table,
    low: Table,
    window: Table,
}

impl Tables {
    pub const fn new() -> Self {
        Self {
            pml4: EMPTY,
            pdpt: EMPTY,
            low: EMPTY,
            window: EMPTY,
        }
    }

    /// Fills the tables; returns the CR3 value.
    pub fn build(&mut self) -> u64 {
        self.pml4.0[0] = address(&self.pdpt) | PAGE_TABLE;
        self.pdpt.0[0] = address(&self.low) | PAGE_TABLE;
        self.pdpt.0[1] = address(&self.window) | PAGE_TABLE;
        for (index, entry) in self.low.0.iter_mut().take(LOW_PAGES).enumerate() {
            *entry = (index as u64 * MIB2) | PAGE_2M;
        }
        self.window.0[0] = HOSTILE_WINDOW | PAGE_2M;
        address(&self.pml4)
    }
}

/// EPT entries (SDM 29.3.2): read, write, execute; leaves write-back (6 << 3), 2 MiB (bit 7).
pub const EPT_RWX: u64 = 0b111;
const EPT_LEAF_2M_WB: u64 = EPT_RWX | 6 << 3 | 1 << 7;

/// ghv-hostile's EPT: guest-physical = ghv-physical for the first 8 MiB; PDPT[1] (1–2 GiB) is
/// what a scenario makes it.
#[repr(C, align(4096))]
pub struct Ept {
    pml4: Table,
    pdpt: Table,
    pd: Table,
}

impl Ept {
    pub const fn new() -> Self {
        Self {
            pml4: EMPTY,
            pdpt: EMPTY,
            pd: EMPTY,
        }
    }

    /// The identity part; the hostile slot empty (not present).
    pub fn build(&mut self) {
        self.pml4.0[0] = address(&self.pdpt) | EPT_RWX;
        self.pdpt.0[0] = address(&self.pd) | EPT_RWX;
        self.pdpt.0[1] = 0;
        for (index, entry) in self.pd.0.iter_mut().take(LOW_PAGES).enumerate() {
            *entry = (index as u64 * MIB2) | EPT_LEAF_2M_WB;
        }
    }

    /// Sets the hostile slot: the PDPT entry for guest-physical 1–2 GiB.
    pub fn set_window(&mut self, entry: u64) {
        self.pdpt.0[1] = entry;
    }

    /// The PML4's address (for the EPTP, and for an entry that loops back to it).
    pub fn root(&self) -> u64 {
        address(&self.pml4)
    }
}

fn address<T>(item: &T) -> u64 {
    item as *const T as u64
}
