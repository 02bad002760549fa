//! VMX instructions with their outcome read in the same `asm!` block (SDM 31.2 conventions:
//! CF=1 VMfailInvalid, ZF=1 VMfailValid). The `x86` crate's wrappers read RFLAGS in a separate
//! block, where the compiler may already have clobbered it.

use core::arch::asm;

/// A VMX instruction failed (SDM 31.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// No current VMCS (or the operand itself is invalid).
    Invalid,
    /// Failed with a current VMCS: the VM-instruction error field says why.
    Valid,
}

fn status(cf: u8, zf: u8) -> Result<(), VmFail> {
    match (cf, zf) {
        (0, 0) => Ok(()),
        (_, 0) => Err(VmFail::Invalid),
        _ => Err(VmFail::Valid),
    }
}

macro_rules! vmx_op_with_address {
    ($(#[$doc:meta])* $name:ident, $insn:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// CPL 0 in VMX operation (except VMXON); `phys` names a region prepared per the SDM.
        pub unsafe fn $name(phys: u64) -> Result<(), VmFail> {
            let (cf, zf): (u8, u8);
            asm!(concat!($insn, " qword ptr [{0}]"), "setc {1}", "setz {2}",
                 in(reg) &phys, out(reg_byte) cf, out(reg_byte) zf, options(nostack));
            status(cf, zf)
        }
    };
}

vmx_op_with_address!(
    /// VMXON: enter VMX root operation with the VMXON region at `phys`.
    vmxon, "vmxon");
vmx_op_with_address!(
    /// VMCLEAR: flush the VMCS at `phys` to memory and mark it clear.
    vmclear, "vmclear");
vmx_op_with_address!(
    /// VMPTRLD: make the VMCS at `phys` current.
    vmptrld, "vmptrld");

/// VMREAD of `field` from the current VMCS.
///
/// # Safety
/// CPL 0 in VMX root operation.
#[inline(always)]
pub unsafe fn vmread(field: u32) -> Result<u64, VmFail> {
    let value: u64;
    let (cf, zf): (u8, u8);
    asm!("vmread {0}, {1}", "setc {2}", "setz {3}",
         out(reg) value, in(reg) u64::from(field), out(reg_byte) cf, out(reg_byte) zf,
         options(nostack));
    status(cf, zf).map(|()| value)
}

/// VMREAD of `field` without reading the outcome: for accessors that cannot fail (a supported
/// field of the current VMCS), where checking would only lengthen the exit path.
///
/// # Safety
/// CPL 0 in VMX root operation with a current VMCS that has `field`.
#[inline(always)]
pub unsafe fn vmread_unchecked(field: u32) -> u64 {
    let value: u64;
    asm!("vmread {0}, {1}", out(reg) value, in(reg) u64::from(field), options(nostack, nomem));
    value
}

/// VMWRITE without reading the outcome (see [`vmread_unchecked`]).
///
/// # Safety
/// CPL 0 in VMX root operation with a current VMCS that has `field`; `value` must keep the VMCS
/// consistent for the next entry.
#[inline(always)]
pub unsafe fn vmwrite_unchecked(field: u32, value: u64) {
    asm!("vmwrite {0}, {1}", in(reg) u64::from(field), in(reg) value, options(nostack, nomem));
}

/// VMWRITE of `value` to `field` of the current VMCS.
///
/// # Safety
/// CPL 0 in VMX root operation; the value must keep the VMCS consistent for the next entry.
#[inline(always)]
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    asm!("vmwrite {0}, {1}", "setc {2}", "setz {3}",
         in(reg) u64::from(field), in(reg) value, out(reg_byte) cf, out(reg_byte) zf,
         options(nostack));
    status(cf, zf)
}

/// INVEPT type 2 (all contexts): drop every EPT-derived translation (SDM 30.3, INVEPT).
///
/// # Safety
/// CPL 0 in VMX root operation, with INVEPT supported.
pub unsafe fn invept_all_contexts() -> Result<(), VmFail> {
    let descriptor = [0u64; 2];
    let (cf, zf): (u8, u8);
    asm!("invept {0}, [{1}]", "setc {2}", "setz {3}",
         in(reg) 2u64, in(reg) &descriptor, out(reg_byte) cf, out(reg_byte) zf,
         options(nostack));
    status(cf, zf)
}
