//! 4 KiB identity paging of the guest's RAM, so single pages can be made not-present,
//! read-only or supervisor-only for the fault generators.

use l2_abi::RAM_SIZE;
use x86::bits64::paging::{
    PAddr, PDEntry, PDFlags, PDPTEntry, PDPTFlags, PML4Entry, PML4Flags, PTEntry, PTFlags,
    BASE_PAGE_SIZE, PAGE_SIZE_ENTRIES,
};

const PAGES: usize = (RAM_SIZE as usize) / BASE_PAGE_SIZE;
const PAGE_TABLES: usize = PAGES / PAGE_SIZE_ENTRIES;

#[repr(C, align(4096))]
struct Table([u64; PAGE_SIZE_ENTRIES]);

const EMPTY: Table = Table([0; PAGE_SIZE_ENTRIES]);

/// The whole hierarchy: one PML4, PDPT and PD, and the page tables for guest RAM.
#[repr(C)]
struct Tables {
    pml4: Table,
    pdpt: Table,
    pd: Table,
    pt: [Table; PAGE_TABLES],
}

static mut TABLES: Tables = Tables {
    pml4: EMPTY,
    pdpt: EMPTY,
    pd: EMPTY,
    pt: [EMPTY; PAGE_TABLES],
};

/// The tables. The guest is single-threaded and takes no interrupts while it edits them.
fn tables() -> &'static mut Tables {
    // SAFETY: see above; every caller's borrow ends before the next call.
    unsafe { &mut *core::ptr::addr_of_mut!(TABLES) }
}

/// Page permissions the fault generators toggle.
pub use x86::bits64::paging::PTFlags as PageFlags;

/// Builds the tables (every page present, writable, user-accessible) and loads CR3.
pub fn init() {
    let t = tables();
    let all = PTFlags::P | PTFlags::RW | PTFlags::US;
    for (page, entry) in
        t.pt.iter_mut()
            .flat_map(|table| table.0.iter_mut())
            .enumerate()
    {
        *entry = PTEntry::new(PAddr::from(page * BASE_PAGE_SIZE), all).0;
    }
    for (index, table) in t.pt.iter().enumerate() {
        let address = PAddr::from(table as *const Table as u64);
        t.pd.0[index] = PDEntry::new(address, PDFlags::P | PDFlags::RW | PDFlags::US).0;
    }
    let pd = PAddr::from(&t.pd as *const Table as u64);
    t.pdpt.0[0] = PDPTEntry::new(pd, PDPTFlags::P | PDPTFlags::RW | PDPTFlags::US).0;
    let pdpt = PAddr::from(&t.pdpt as *const Table as u64);
    t.pml4.0[0] = PML4Entry::new(pdpt, PML4Flags::P | PML4Flags::RW | PML4Flags::US).0;
    // SAFETY: the tables identity-map all of guest RAM, including this code and its stack.
    unsafe { x86::controlregs::cr3_write(&t.pml4 as *const Table as u64) };
}

/// Sets the flags of the page holding `address` and flushes its TLB entry.
pub fn set_page_flags(address: u64, flags: PageFlags) {
    let page = address as usize / BASE_PAGE_SIZE;
    assert!(page < PAGES, "address {address:#x} outside guest RAM");
    tables().pt[page / PAGE_SIZE_ENTRIES].0[page % PAGE_SIZE_ENTRIES] =
        PTEntry::new(PAddr::from(page * BASE_PAGE_SIZE), flags).0;
    // SAFETY: INVLPG only drops a cached translation.
    unsafe { x86::tlb::flush(address as usize) };
}

/// The flags of the page holding `address`.
pub fn page_flags(address: u64) -> PageFlags {
    let page = address as usize / BASE_PAGE_SIZE;
    PTEntry(tables().pt[page / PAGE_SIZE_ENTRIES].0[page % PAGE_SIZE_ENTRIES]).flags()
}
