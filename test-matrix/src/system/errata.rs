//! Where Bochs 2.7 (the bare reference) and the SDM differ. The SDM decides: such scenarios
//! are left out of the bare-vs-model comparison only (nested and transparent runs are still
//! compared with the model), and each is listed, with the SDM wording, in the summary and the
//! report.
//!
//! The two errata known on this platform (../shared/platform.md) are out of this matrix's
//! reach: it runs no real-mode guest (spurious error-code-valid bit on exception exits) and
//! raises no NMI (VM entry not clearing NMI blocking). The list is empty until a run shows one.

/// One known erratum: the scenario id and the SDM wording that decides.
pub struct Erratum {
    /// Scenario id (bare mode).
    pub id: &'static str,
    /// What the SDM says, quoted, with its section.
    pub sdm: &'static str,
}

/// Every known erratum of the bare reference.
pub const KNOWN_ERRATA: &[Erratum] = &[];

/// The SDM wording for `id`, if it is a known erratum.
pub fn erratum(id: &str) -> Option<&'static str> {
    KNOWN_ERRATA.iter().find(|e| e.id == id).map(|e| e.sdm)
}
