//! A VMCS that holds any field: vmcs01 and vmcs02 are real VMCSs with fields vmcs12 lacks, so
//! `SoftVmcs` (which panics on them) cannot stand in for them.

use shadow_vmcs::Vmcs;

/// Every field ever written, by encoding; unwritten fields read 0 (a freshly cleared VMCS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnyVmcs {
    fields: Vec<(u32, u64)>,
}

impl AnyVmcs {
    /// Whether both hold the same value in every field either has written (order aside).
    pub fn same_as(&self, other: &AnyVmcs) -> bool {
        self.fields
            .iter()
            .chain(&other.fields)
            .all(|&(f, _)| self.read(f) == other.read(f))
    }
}

impl Vmcs for AnyVmcs {
    fn read(&self, field: u32) -> u64 {
        self.fields
            .iter()
            .find(|&&(f, _)| f == field)
            .map_or(0, |&(_, v)| v)
    }

    fn write(&mut self, field: u32, value: u64) {
        match self.fields.iter_mut().find(|(f, _)| *f == field) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((field, value)),
        }
    }
}
