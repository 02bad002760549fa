//! Guest-hypervisor memory for the harnesses: RAM from guest-physical 0, nothing above it, and
//! an undo log so that a property can ask "did this instruction change memory?" without
//! copying the whole RAM before every step.

use nvmx::insn::{GuestMemory, NotRam};

/// `size` bytes of RAM at guest-physical 0; every write records the bytes it replaced.
#[derive(Clone, Debug)]
pub struct Ram {
    bytes: Vec<u8>,
    undo: Vec<(usize, Vec<u8>)>,
}

impl Ram {
    /// Zeroed RAM of `size` bytes.
    pub fn new(size: usize) -> Self {
        Ram {
            bytes: vec![0; size],
            undo: Vec::new(),
        }
    }

    /// Stores `data` at `gpa` without logging (setting up the guest, not a guest action).
    /// Panics outside RAM: the harness, not the fuzzer, picks these addresses.
    pub fn put(&mut self, gpa: u64, data: &[u8]) {
        let at = gpa as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }

    /// The 8 bytes at `gpa` (which must be RAM).
    pub fn u64_at(&self, gpa: u64) -> u64 {
        let at = gpa as usize;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The 4 bytes at `gpa` (which must be RAM).
    pub fn u32_at(&self, gpa: u64) -> u32 {
        let at = gpa as usize;
        u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    /// All of RAM.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Forgets the undo log: what happens from now on is what [`Ram::changed`] reports.
    pub fn start_logging(&mut self) {
        self.undo.clear();
    }

    /// Whether any logged write since [`Ram::start_logging`] left a byte different from before.
    pub fn changed(&self) -> bool {
        if self.undo.is_empty() {
            return false;
        }
        let mut now = self.bytes.clone();
        // Undo newest first, so that the oldest saved bytes (the original ones) win.
        for (at, old) in self.undo.iter().rev() {
            now[*at..*at + old.len()].copy_from_slice(old);
        }
        now != self.bytes
    }

    fn range(&self, gpa: u64, len: usize) -> Option<usize> {
        let end = gpa.checked_add(len as u64)?;
        (end <= self.bytes.len() as u64).then_some(gpa as usize)
    }
}

impl GuestMemory for Ram {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= self.bytes.len() as u64)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        let at = self.range(gpa, buf.len()).ok_or(NotRam)?;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam> {
        let at = self.range(gpa, data.len()).ok_or(NotRam)?;
        self.undo
            .push((at, self.bytes[at..at + data.len()].to_vec()));
        self.bytes[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
}
