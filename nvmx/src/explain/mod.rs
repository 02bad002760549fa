//! VMCS fields and error codes decoded in words: one summary line with the facts separated by
//! [`SEP`], then `error:` lines for what VM entry rejects or a processor never produces and
//! `note:` lines for what is legal but worth knowing (SDM 25.8.3, 25.9, 28.2.1, 6.13, 4.7).
//! One wording for every printer: `test-matrix explain`, the matrix report and l1-hv's trace.

mod error_code;
mod exit_reason;
mod interruption;
mod qualification;
#[cfg(test)]
mod tests;

pub use error_code::{pfec, selector_error_code, PFEC_BITS};
pub use exit_reason::{basic_reason_name, exit_reason};
pub use interruption::{exception_name, interruption_info, type_name, InfoFormat};
pub use qualification::qualification;

use alloc::format;
use alloc::string::String;

/// Separator between the facts of a summary line.
pub const SEP: &str = " · ";

/// A detail line for something VM entry rejects or a processor never produces.
fn error(what: &str) -> String {
    format!("\n  error: {what}")
}

/// A detail line for something legal but worth knowing.
fn note(what: &str) -> String {
    format!("\n  note: {what}")
}
