//! 4 KiB identity paging of the guest's RAM, so single pages can be made not-present,
//! read-only or supervisor-only for the fault generators.

use l2_abi::RAM_SIZE;
use x86::bits64::paging::{PAddr, PDEntry, PDFlags, PDPTEntry, PDPTFlags, PML4Entry, PML4Flags,
                          PTEntry, PTFlags, BASE_PAGE_SIZE, PAGE_SIZE_ENTRIES};

const PAGES: usize = (RAM_SIZE as usize) / BASE_PAGE_SIZE;
const PAGE_TABLES: usize = PAGES / PAGE_SIZE_ENTRIES;

#[repr(C, align(4096))]
struct Table([u64; PAGE_SIZE_ENTRIES]);

static mut PML4: Table = Table([0; PAGE_SIZE_ENTRIES]);
static mut PDPT: Table = Table([0; PAGE_SIZE_ENTRIES]);
static mut PD: Table = Table([0; PAGE_SIZE_ENTRIES]);
static mut PT: [Table; PAGE_TABLES] = [const { Table([0; PAGE_SIZE_ENTRIES]) }; PAGE_TABLES];

/// Page permissions the fault generators toggle.
pub use x86::bits64::paging::PTFlags as PageFlags;

/// Builds the tables (every page present, writable, user-accessible) and loads CR3.
pub fn init() {
    // SAFETY: single-threaded start-up; RAM is identity-mapped by l1-hv's boot tables.
    unsafe {
        let all = PTFlags::P | PTFlags::RW | PTFlags::US;
        for (page, entry) in (*(&raw mut PT)).iter_mut().flat_map(|t| t.0.iter_mut()).enumerate() {
            *entry = PTEntry::new(PAddr::from(page * BASE_PAGE_SIZE), all).0;
        }
        for (index, table) in (*(&raw const PT)).iter().enumerate() {
            (*(&raw mut PD)).0[index] = PDEntry::new(
                PAddr::from(table as *const Table as u64),
                PDFlags::P | PDFlags::RW | PDFlags::US,
            )
            .0;
        }
        (*(&raw mut PDPT)).0[0] =
            PDPTEntry::new(PAddr::from(&raw const PD as u64), PDPTFlags::P | PDPTFlags::RW | PDPTFlags::US).0;
        (*(&raw mut PML4)).0[0] =
            PML4Entry::new(PAddr::from(&raw const PDPT as u64), PML4Flags::P | PML4Flags::RW | PML4Flags::US).0;
        x86::controlregs::cr3_write(&raw const PML4 as u64);
    }
}

/// Sets the flags of the page holding `address` and flushes its TLB entry.
pub fn set_page_flags(address: u64, flags: PageFlags) {
    let page = address as usize / BASE_PAGE_SIZE;
    assert!(page < PAGES, "address {address:#x} outside guest RAM");
    // SAFETY: the entry maps the page to itself; only the permission bits change.
    unsafe {
        let table = &raw mut PT[page / PAGE_SIZE_ENTRIES];
        (*table).0[page % PAGE_SIZE_ENTRIES] =
            PTEntry::new(PAddr::from(page * BASE_PAGE_SIZE), flags).0;
        x86::tlb::flush(address as usize);
    }
}

/// The flags of the page holding `address`.
pub fn page_flags(address: u64) -> PageFlags {
    let page = address as usize / BASE_PAGE_SIZE;
    // SAFETY: read of an entry this module owns.
    let entry = unsafe { PTEntry((*(&raw const PT[page / PAGE_SIZE_ENTRIES])).0[page % PAGE_SIZE_ENTRIES]) };
    entry.flags()
}
