//! A software VMCS for host tests: a fixed table of (encoding, value) pairs, unset fields read 0.

use shadow_vmcs::Vmcs;

/// Test double for [`Vmcs`]; holds up to 64 fields without allocating.
#[derive(Clone, Debug)]
pub(crate) struct FakeVmcs {
    fields: [(u32, u64); 64],
    len: usize,
}

impl FakeVmcs {
    pub(crate) fn new() -> Self {
        Self {
            fields: [(0, 0); 64],
            len: 0,
        }
    }

    /// Whether `field` was ever written.
    pub(crate) fn written(&self, field: u32) -> bool {
        self.fields[..self.len].iter().any(|&(f, _)| f == field)
    }
}

impl Vmcs for FakeVmcs {
    fn read(&self, field: u32) -> u64 {
        self.fields[..self.len]
            .iter()
            .find(|&&(f, _)| f == field)
            .map_or(0, |&(_, v)| v)
    }

    fn write(&mut self, field: u32, value: u64) {
        if let Some(slot) = self.fields[..self.len]
            .iter_mut()
            .find(|(f, _)| *f == field)
        {
            slot.1 = value;
        } else {
            self.fields[self.len] = (field, value);
            self.len += 1;
        }
    }
}
