use super::*;

#[test]
fn exit_info_page_fault_with_error_code() {
    assert_eq!(
        interruption_info(InfoFormat::Exit, 0x8000_0b0e),
        "valid · hardware exception · #PF (vector 14) · error code valid"
    );
}

#[test]
fn entry_info_reserved_bits_and_missing_error_code_are_flagged() {
    let text = interruption_info(InfoFormat::Entry, 0x8000_130d);
    assert!(
        text.starts_with("valid · hardware exception · #GP (vector 13)\n"),
        "{text}"
    );
    assert!(
        text.contains("error: reserved bits 30:12 set (0x1000)"),
        "{text}"
    );
    assert!(
        text.contains("bit 11 clear for a vector that pushes an error code"),
        "{text}"
    );
}

#[test]
fn nmi_unblocking_is_decoded_for_exits_and_undefined_for_idt_vectoring() {
    let exit = interruption_info(InfoFormat::Exit, 0x8000_1202);
    assert_eq!(
        exit,
        "valid · NMI · vector 2 (0x02) · NMI unblocking due to IRET"
    );
    let idt = interruption_info(InfoFormat::IdtVectoring, 0x8000_1202);
    assert!(idt.contains("note: bit 12 is undefined"), "{idt}");
}

#[test]
fn type_rules_differ_per_format() {
    // INT 0x80: injectable and interruptible, never the cause of an exit.
    let int80 = 0x8000_0480;
    assert!(!interruption_info(InfoFormat::Entry, int80).contains("error:"));
    assert!(!interruption_info(InfoFormat::IdtVectoring, int80).contains("error:"));
    assert!(interruption_info(InfoFormat::Exit, int80).contains("error: type 4 is never reported"));
    assert!(interruption_info(InfoFormat::Entry, 0x8000_0100).contains("error: type 1 is reserved"));
}

#[test]
fn vector_pairings_are_checked() {
    assert!(
        interruption_info(InfoFormat::Entry, 0x8000_0203).contains("error: an NMI has vector 2")
    );
    assert!(interruption_info(InfoFormat::Entry, 0x8000_0320)
        .contains("error: a hardware exception has a vector of at most 31"));
    assert!(interruption_info(InfoFormat::Entry, 0x8000_0705)
        .contains("error: other event has vector 0"));
    assert!(
        interruption_info(InfoFormat::Exit, 0x8000_0605).contains("error: INT3 raises vector 3")
    );
    assert!(
        interruption_info(InfoFormat::Entry, 0x8000_0605).contains("note: INT3 raises vector 3")
    );
    assert!(interruption_info(InfoFormat::Exit, 0x8000_0302).contains("error: vector 2 is the NMI"));
}

#[test]
fn error_code_bit_on_a_vector_without_error_code_is_an_error() {
    let text = interruption_info(InfoFormat::Entry, 0x8000_0b06);
    assert!(
        text.contains("error: bit 11 set for a vector that pushes no error code"),
        "{text}"
    );
    let text = interruption_info(InfoFormat::Exit, 0x8000_0c80);
    assert!(
        text.contains("error: bit 11 set for an event that pushes no error code"),
        "{text}"
    );
}

#[test]
fn invalid_info_says_so() {
    assert_eq!(
        interruption_info(InfoFormat::Exit, 0),
        "not valid (bit 31 clear): no event"
    );
    assert!(interruption_info(InfoFormat::Exit, 0x30e).contains("bits 30:0 = 0x30e are ignored"));
}

#[test]
fn exception_names_come_from_the_crate_and_cover_cp_and_reserved_vectors() {
    assert_eq!(exception_name(14), "#PF (vector 14)");
    assert_eq!(exception_name(21), "#CP (vector 21)");
    assert_eq!(exception_name(22), "vector 22 (reserved)");
    assert_eq!(exception_name(15), "vector 15 (reserved)");
}

#[test]
fn exit_reason_names_and_flags() {
    assert_eq!(exit_reason(48), "EPT violation (basic reason 48)");
    assert_eq!(
        exit_reason(0x8000_0021),
        "VM-entry failure due to invalid guest state (basic reason 33) · VM-entry failure (bit 31)"
    );
    assert!(exit_reason(33).contains("error: this reason is a VM-entry failure"));
    assert!(exit_reason(0x1000_0000).contains("pending MTF VM exit (bit 28)"));
    assert!(exit_reason(35).contains("not defined in SDM Appendix C"));
    assert!(exit_reason(0x1_0000).contains("error: bit 16 set"));
    assert_eq!(basic_reason_name(30), Some("I/O instruction"));
    assert_eq!(basic_reason_name(200), None);
}

#[test]
fn pfec_bits() {
    assert_eq!(pfec(0), "not-present page · read · supervisor mode");
    assert_eq!(
        pfec(7),
        "protection violation (P) · write (W/R) · user mode (U/S)"
    );
    assert_eq!(
        pfec(0x11),
        "protection violation (P) · supervisor mode · instruction fetch (I/D)"
    );
    assert!(pfec(0x8000).contains("SGX access-control violation"));
    assert!(pfec(0x100).contains("error: reserved bits set (0x100)"));
}

#[test]
fn selector_error_codes() {
    assert_eq!(
        selector_error_code(0),
        "0: not related to a particular segment selector"
    );
    assert_eq!(selector_error_code(0x18), "GDT index 3 (selector 0x0018)");
    assert_eq!(selector_error_code(0x1c), "LDT index 3 (selector 0x001c)");
    assert_eq!(
        selector_error_code(0x6b),
        "IDT vector 13 (0x0d) = #GP (vector 13) · external event (EXT)"
    );
    assert!(selector_error_code(0x1_0000).contains("error: bits 31:16 set"));
}

#[test]
fn qualifications() {
    assert_eq!(
        qualification(0, Some(14), 0xdead_b000),
        "#PF linear address 0xdeadb000 (guest CR2 is not written by the VM exit)"
    );
    assert_eq!(
        qualification(0, Some(1), 0x4001),
        "#DB: B0: breakpoint 0 met · BS: single step"
    );
    assert!(qualification(0, Some(1), 0x10).contains("error: reserved bits set (0x10)"));
    assert!(qualification(0, None, 0x4001).contains("note: #DB: B0: breakpoint 0 met"));
    assert_eq!(qualification(28, None, 0x0300), "MOV to CR0 from RBX");
    assert_eq!(qualification(28, None, 0x0314), "MOV from CR4 to RBX");
    assert_eq!(
        qualification(28, None, 0x0001_0030),
        "LMSW with source data 0x0001 (register operand)"
    );
    assert_eq!(
        qualification(30, None, 0x03f8_0008),
        "IN · port 0x03f8 · 1 byte · port in DX"
    );
    assert_eq!(
        qualification(30, None, 0x0080_0071),
        "OUT · port 0x0080 · 2 bytes · immediate operand · string instruction · REP prefix"
    );
    assert_eq!(
        qualification(48, None, 0x182),
        "EPT violation on write · EPT permits --- · guest linear address valid: translation of it · supervisor-mode address · read-only page · executable page"
    );
    assert!(qualification(12, None, 5)
        .starts_with("no exit qualification decoded for basic reason 12 (HLT)"));
}
