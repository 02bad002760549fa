//! What kind of kernel a file is, by its headers: how GRUB must load it bare.

/// A bootable kernel's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// A Linux bzImage: "HdrS" at 0x202 (the x86 boot protocol's setup header).
    BzImage,
    /// Multiboot 1: magic 0x1BADB002 (4-byte aligned, first 8 KiB, with its checksum).
    Multiboot1,
    /// Multiboot 2: magic 0xE85250D6 (8-byte aligned, first 32 KiB, with its checksum).
    Multiboot2,
}

impl KernelKind {
    /// The kind of `image`, or `None` when it is none of them. A multiboot2 header wins over a
    /// multiboot1 one (an image with both is loaded the newer way), and a bzImage's setup header
    /// over both.
    pub fn detect(image: &[u8]) -> Option<Self> {
        if image.get(0x202..0x206) == Some(b"HdrS") {
            return Some(Self::BzImage);
        }
        if header_at(image, 32 << 10, 8, |w| {
            w[0] == 0xE852_50D6 && sum(&w[..4]) == 0
        }) {
            return Some(Self::Multiboot2);
        }
        if header_at(image, 8 << 10, 4, |w| {
            w[0] == 0x1BAD_B002 && sum(&w[..3]) == 0
        }) {
            return Some(Self::Multiboot1);
        }
        None
    }

    /// GRUB's commands to load this kind bare: (kernel, module) and the GRUB module they need.
    pub fn grub_commands(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::BzImage => ("linux", "initrd", "linux"),
            Self::Multiboot1 => ("multiboot", "module", "multiboot"),
            Self::Multiboot2 => ("multiboot2", "module2", "multiboot2"),
        }
    }
}

fn sum(words: &[u32]) -> u32 {
    words.iter().fold(0u32, |a, w| a.wrapping_add(*w))
}

/// Whether `is_header` holds for the little-endian words at some `align`ed offset below `limit`.
fn header_at(
    image: &[u8],
    limit: usize,
    align: usize,
    is_header: impl Fn(&[u32; 4]) -> bool,
) -> bool {
    let end = image.len().min(limit);
    (0..end).step_by(align).any(|at| {
        let Some(bytes) = image.get(at..at + 16) else {
            return false;
        };
        let mut words = [0u32; 4];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        }
        is_header(&words)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_words(at: usize, words: &[u32]) -> Vec<u8> {
        let mut image = vec![0u8; 40 << 10];
        for (i, w) in words.iter().enumerate() {
            image[at + 4 * i..at + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        image
    }

    #[test]
    fn kinds_are_told_by_their_headers() {
        let mut bz = vec![0u8; 1024];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(KernelKind::detect(&bz), Some(KernelKind::BzImage));

        let mb1 = [0x1BAD_B002, 3, 0u32.wrapping_sub(0x1BAD_B002 + 3)];
        assert_eq!(
            KernelKind::detect(&with_words(0x1000, &mb1)),
            Some(KernelKind::Multiboot1)
        );
        // Past the first 8 KiB it does not count.
        assert_eq!(KernelKind::detect(&with_words(0x2000, &mb1)), None);
        // A bad checksum does not count either.
        assert_eq!(
            KernelKind::detect(&with_words(0x1000, &[0x1BAD_B002, 3, 0])),
            None
        );

        let mb2 = [0xE852_50D6, 0, 24, 0u32.wrapping_sub(0xE852_50D6 + 24)];
        assert_eq!(
            KernelKind::detect(&with_words(0x7ff0, &mb2)),
            Some(KernelKind::Multiboot2)
        );
        // Only at 8-byte alignment.
        assert_eq!(KernelKind::detect(&with_words(0x7ff4, &mb2)), None);

        assert_eq!(
            KernelKind::detect(b"This is a text file, not a kernel.\n"),
            None
        );
    }
}
