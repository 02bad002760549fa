//! Little-endian fields of untrusted images, read with bounds checks.

/// The `N` bytes at `offset`, if `image` holds them.
pub fn array<const N: usize>(image: &[u8], offset: usize) -> Option<[u8; N]> {
    image.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

pub fn u16_at(image: &[u8], offset: usize) -> Option<u16> {
    array(image, offset).map(u16::from_le_bytes)
}

pub fn u32_at(image: &[u8], offset: usize) -> Option<u32> {
    array(image, offset).map(u32::from_le_bytes)
}

pub fn u64_at(image: &[u8], offset: usize) -> Option<u64> {
    array(image, offset).map(u64::from_le_bytes)
}

/// Writes little-endian fields into a boot structure being assembled; offsets are the
/// structure's own constants, always in bounds (a slip is a bug, caught by the tests).
pub fn put(buf: &mut [u8], offset: usize, bytes: &[u8]) {
    buf[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// `value` rounded up to a multiple of `align` (a power of two), if that fits in a u64.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}
