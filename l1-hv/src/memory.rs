//! Physical memory: one heap over the largest free stretch of RAM. l1-hv identity-maps the low
//! 4 GiB, so a heap pointer is also a physical address — page-aligned allocations from this
//! heap back VMXON/VMCS regions, EPT tables and guest RAM, and are returned when a guest ends.

use crate::boot::BootInfo;
use core::alloc::Layout;
use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Puts the largest free RAM stretch under the heap; returns its size in bytes. Guest RAM comes
/// from it, so it is all of that stretch.
pub fn init(info: &BootInfo) -> Option<u64> {
    let range = info.largest_free_range()?;
    let size = range.end - range.start;
    // SAFETY: the range is usable RAM that overlaps neither the image, the boot information
    // nor any module, and is identity-mapped.
    unsafe { HEAP.lock().init(range.start as *mut u8, size as usize) };
    Some(size)
}

/// Zeroed, page-aligned physical memory of `size` bytes (a multiple of 4 KiB), owned by the
/// caller until dropped.
pub struct PhysPages {
    ptr: *mut u8,
    layout: Layout,
}

impl PhysPages {
    /// Allocates `size` bytes aligned to `align` (a power of two, at least 4 KiB), or `None` when
    /// memory is exhausted.
    pub fn new(size: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(size, align).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(Self { ptr, layout })
    }

    /// One zeroed 4 KiB page.
    pub fn page() -> Option<Self> {
        Self::new(4096, 4096)
    }

    /// Bytes allocated.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// The physical (= virtual) address of the first byte.
    pub fn phys(&self) -> u64 {
        self.ptr as u64
    }

    /// The memory as bytes, read-only.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the allocation is `layout.size()` bytes and ours.
        unsafe { core::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }

    /// The memory as bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `layout.size()` bytes and exclusively ours.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    /// The memory as 64-bit words (page tables), read-only.
    pub fn words(&self) -> &[u64] {
        // SAFETY: page-aligned and a multiple of 8 bytes long.
        unsafe { core::slice::from_raw_parts(self.ptr.cast(), self.layout.size() / 8) }
    }

    /// The memory as 64-bit words (page tables).
    pub fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: page-aligned and a multiple of 8 bytes long.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.cast(), self.layout.size() / 8) }
    }
}

impl Drop for PhysPages {
    fn drop(&mut self) {
        // SAFETY: allocated by `new` with this layout.
        unsafe { alloc::alloc::dealloc(self.ptr, self.layout) };
    }
}
