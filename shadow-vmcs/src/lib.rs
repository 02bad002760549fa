//! What a VMCS *is*, independent of any CPU: the access trait every VMCS user goes through, the
//! catalogue of fields l1-hv's vmcs12 has, the software VMCS (vmcs12), VMREAD/VMWRITE bitmaps and
//! the shadow-VMCS sync.
//!
//! Field encodings come from `x86::vmx::vmcs`; nothing here needs VMX hardware, so the crate is
//! `no_std` and unit-tested on the host. See docs/vmcs12.md for the layout and the sync moments.
#![no_std]

mod access;
mod bitmap;
mod catalogue;
mod field;
mod shadow;
mod soft;

pub use access::Vmcs;
pub use bitmap::VmxBitmap;
pub use catalogue::{highest_index, is_supported, supported_fields, SUPPORTED};
pub use field::{Field, FieldType, Width};
pub use shadow::{sync_from_shadow, sync_to_shadow, ShadowPolicy, SHADOWED};
pub use soft::{
    LaunchState, Resolved, SoftVmcs, UnsupportedField, SHADOW_INDICATOR, VMCS12_REVISION_ID,
    VMCS_REGION_SIZE,
};
