//! The VMCS access trait: the one seam between VMX logic and the hardware.

/// Read and write VMCS fields by their SDM encoding (Intel SDM Vol. 3, Appendix B).
///
/// l1-hv implements it with VMREAD/VMWRITE on the current VMCS; host tests and vmcs12 use a
/// software VMCS. Accesses are infallible by design: reading or writing a supported field of the
/// current VMCS cannot fail, so a failure is a host bug (asserted by the hardware implementation),
/// not a condition for callers to branch on.
pub trait Vmcs {
    /// Reads the field with encoding `field`, zero-extended to 64 bits.
    fn read(&self, field: u32) -> u64;
    /// Writes `value` to the field with encoding `field`, truncated to the field's width.
    fn write(&mut self, field: u32, value: u64);
}
