use super::*;
use crate::nested::test_support::AnyVmcs;
use shadow_vmcs::Vmcs;

const ERROR_CODE_VECTORS: [u8; 8] = [8, 10, 11, 12, 13, 14, 17, 21];

#[test]
fn exception_classes_follow_table_6_4() {
    for vector in 0..32u8 {
        let expected = match vector {
            0 | 10 | 11 | 12 | 13 | 21 => ExceptionClass::Contributory,
            14 | 20 => ExceptionClass::PageFault,
            8 => ExceptionClass::DoubleFault,
            _ => ExceptionClass::Benign,
        };
        assert_eq!(
            Event::hardware_exception(vector, 0).class(),
            expected,
            "vector {vector}"
        );
    }
}

#[test]
fn non_hardware_events_are_benign_whatever_the_vector() {
    for vector in [0u8, 8, 13, 14, 20] {
        assert_eq!(
            Event::software(InterruptionType::SoftwareInterrupt, vector, 2).class(),
            ExceptionClass::Benign
        );
        assert_eq!(
            Event::external_interrupt(vector).class(),
            ExceptionClass::Benign
        );
    }
    assert_eq!(Event::nmi().class(), ExceptionClass::Benign);
    assert_eq!(
        Event::software(InterruptionType::SoftwareException, 3, 1).class(),
        ExceptionClass::Benign
    );
}

#[test]
fn error_code_presence_by_vector_and_mode() {
    for vector in 0..32u8 {
        let event = Event::hardware_exception(vector, 0x1234);
        let has = ERROR_CODE_VECTORS.contains(&vector);
        assert_eq!(
            event.pushes_error_code(true),
            has,
            "vector {vector} protected mode"
        );
        assert!(!event.pushes_error_code(false), "vector {vector} real mode");
        assert_eq!(event.info(true).deliver_error_code(), has);
    }
    // INT 13 is not #GP: software interrupts never push an error code.
    assert!(!Event::software(InterruptionType::SoftwareInterrupt, 13, 2).pushes_error_code(true));
    assert_eq!(
        Event::hardware_exception(13, 0x18).pushed_error_code(true),
        Some(0x18)
    );
    assert_eq!(
        Event::hardware_exception(13, 0x18).pushed_error_code(false),
        None
    );
}

#[test]
fn double_fault_and_alignment_check_push_zero() {
    assert_eq!(Event::hardware_exception(8, 0x55).error_code, 0);
    assert_eq!(Event::hardware_exception(17, 0x55).error_code, 0);
    assert_eq!(Event::hardware_exception(13, 0x55).error_code, 0x55);
}

#[test]
fn error_code_bits_31_16_are_dropped_on_construction() {
    let event = Event::hardware_exception(13, 0xdead_0010);
    assert_eq!(event.error_code, 0x0010);
    let from_field = Event::from_info(
        InterruptionInfo::new(InterruptionType::HardwareException, 14, true),
        0xffff_0007,
        0,
        0x1000,
    );
    assert_eq!(from_field.map(|e| e.error_code), Some(7));
}

#[test]
fn interruption_info_encodes_and_decodes() {
    let info = InterruptionInfo::new(InterruptionType::HardwareException, 14, true);
    assert_eq!(info.bits(), 0x8000_0b0e);
    assert_eq!(info.vector(), 14);
    assert_eq!(
        info.interruption_type(),
        Some(InterruptionType::HardwareException)
    );
    assert!(info.deliver_error_code() && info.valid());
    let int3 = InterruptionInfo::new(InterruptionType::SoftwareException, 3, false);
    assert_eq!(int3.bits(), 0x8000_0603);
    assert!(!InterruptionInfo::INVALID.valid());
    assert_eq!(
        InterruptionInfo(0x8000_0100).interruption_type(),
        None,
        "type 1 is reserved"
    );
}

#[test]
fn from_info_rejects_invalid_and_reserved() {
    assert_eq!(
        Event::from_info(InterruptionInfo(0x0000_030d), 0, 0, 0),
        None
    );
    assert_eq!(
        Event::from_info(InterruptionInfo(0x8000_0100), 0, 0, 0),
        None
    );
}

#[test]
fn from_info_keeps_payload_only_where_it_applies() {
    let pf = Event::from_info(InterruptionInfo(0x8000_0b0e), 2, 0, 0xdead_b000).unwrap();
    assert_eq!(pf.payload, 0xdead_b000);
    let gp = Event::from_info(InterruptionInfo(0x8000_0b0d), 0, 0, 0xdead_b000).unwrap();
    assert_eq!(gp.payload, 0);
    let db = Event::from_info(InterruptionInfo(0x8000_0301), 0, 0, 0xffff_4ff1).unwrap();
    assert_eq!(db.payload, 0x4001, "only B0-B3, BD, BS survive");
    let int3 = Event::from_info(InterruptionInfo(0x8000_0603), 0, 1, 0x1234).unwrap();
    assert_eq!(
        (int3.kind, int3.insn_len, int3.payload),
        (InterruptionType::SoftwareException, 1, 0)
    );
}

#[test]
fn events_are_read_from_exit_idt_vectoring_and_entry_fields() {
    let mut vmcs = AnyVmcs::new();
    vmcs.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b0e);
    vmcs.write(ro::VMEXIT_INTERRUPTION_ERR_CODE, 6);
    vmcs.write(ro::EXIT_QUALIFICATION, 0x7000);
    vmcs.write(ro::IDT_VECTORING_INFO, 0x8000_0421);
    vmcs.write(ro::VMEXIT_INSTRUCTION_LEN, 2);
    assert_eq!(Event::from_exit(&vmcs), Some(Event::page_fault(6, 0x7000)));
    assert_eq!(
        Event::from_idt_vectoring(&vmcs),
        Some(Event::software(
            InterruptionType::SoftwareInterrupt,
            0x21,
            2
        ))
    );
    assert_eq!(Event::from_entry(&vmcs), None);
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0b0d);
    vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, 0x10);
    assert_eq!(
        Event::from_entry(&vmcs),
        Some(Event::hardware_exception(13, 0x10))
    );
}

#[test]
fn software_types_are_the_three_instruction_types() {
    let software: [u8; 3] = [4, 5, 6];
    for bits in 0..8u8 {
        if let Some(kind) = InterruptionType::from_bits(bits) {
            assert_eq!(kind.is_software(), software.contains(&bits));
            assert_eq!(kind as u8, bits);
        }
    }
}

#[test]
fn fault_class_vectors() {
    // SDM Table 6-1: faults, except #DB (fault or trap by cause); traps and aborts are not.
    for vector in [0, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 20, 21] {
        assert!(vector_is_fault(vector), "{vector}");
    }
    for vector in [1, 2, 3, 4, 8, 9, 15, 18, 22, 31] {
        assert!(!vector_is_fault(vector), "{vector}");
    }
}

#[test]
fn debug_delivery_replaces_breakpoint_matches_and_keeps_the_rest() {
    // A stale B1 from an earlier #DB goes; BS and B2 of this one are set; BD accumulates.
    let (bd, bs) = (Dr6::BD.bits() as u64, Dr6::BS.bits() as u64);
    let before = 0xffff_0ff0 | 0b0010 | bd;
    assert_eq!(
        dr6_after_delivery(before, bs | 0b0100),
        0xffff_0ff0 | bd | bs | 0b0100
    );
}
