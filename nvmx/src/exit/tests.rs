//! The decoders against the SDM's bit layouts (Tables 28-3, 28-4, 28-5, 28-7).

use super::*;
use crate::ept::{Access, Permissions};
use crate::insn::Gpr;
use crate::nested::test_support::AnyVmcs;

#[test]
fn cr_access_follows_table_28_3() {
    // MOV to CR4 from R9: CR 4, type 0, GPR 9.
    assert_eq!(
        CrAccess::from_qualification(9 << 8 | 4),
        CrAccess::MovTo {
            cr: 4,
            gpr: Gpr::R9
        }
    );
    // MOV from CR3 to RSP: type 1.
    assert_eq!(
        CrAccess::from_qualification(4 << 8 | 1 << 4 | 3),
        CrAccess::MovFrom {
            cr: 3,
            gpr: Gpr::Rsp
        }
    );
    assert_eq!(CrAccess::from_qualification(2 << 4), CrAccess::Clts);
    // LMSW from memory with source data 000BH: type 3, bit 6, bits 31:16.
    assert_eq!(
        CrAccess::from_qualification(0xB << 16 | 1 << 6 | 3 << 4),
        CrAccess::Lmsw {
            source: 0xB,
            operand: LmswOperand::Memory
        }
    );
    assert_eq!(
        CrAccess::from_qualification(0xFFFF << 16 | 3 << 4),
        CrAccess::Lmsw {
            source: 0xFFFF,
            operand: LmswOperand::Register
        }
    );
    // Reserved bits 7, 15:12 and 63:32 do not change the decoding.
    assert_eq!(
        CrAccess::from_qualification(0xFFFF_FFFF_0000_F080 | 8),
        CrAccess::MovTo {
            cr: 8,
            gpr: Gpr::Rax
        }
    );
    assert_eq!(CrAccess::DEFINED, 0xFFFF_0F7F);
}

#[test]
fn mov_dr_follows_table_28_4() {
    assert_eq!(
        MovDr::from_qualification(15 << 8 | 1 << 4 | 7),
        MovDr {
            dr: 7,
            direction: DrDirection::FromDr,
            gpr: Gpr::R15
        }
    );
    assert_eq!(
        MovDr::from_qualification(2 << 8 | 1 << 3 | 6),
        MovDr {
            dr: 6,
            direction: DrDirection::ToDr,
            gpr: Gpr::Rdx
        },
        "bit 3 is reserved, not part of the DR number"
    );
}

#[test]
fn io_follows_table_28_5() {
    // OUT DX, AL to port 3F8H.
    assert_eq!(
        IoInstruction::from_qualification(0x3F8 << 16),
        Some(IoInstruction {
            port: 0x3F8,
            size: IoSize::Byte,
            direction: IoDirection::Out,
            string: false,
            rep: false,
            operand: IoOperand::Dx,
        })
    );
    // REP INSD from port 60H named by an immediate (operand encoding is only DX for INS,
    // but each bit decodes independently).
    let q = 0x60 << 16 | 1 << 6 | 1 << 5 | 1 << 4 | 1 << 3 | 3;
    assert_eq!(
        IoInstruction::from_qualification(q),
        Some(IoInstruction {
            port: 0x60,
            size: IoSize::Dword,
            direction: IoDirection::In,
            string: true,
            rep: true,
            operand: IoOperand::Immediate,
        })
    );
    assert_eq!(
        IoInstruction::from_qualification(1).map(|io| io.size),
        Some(IoSize::Word)
    );
    for unused in [2, 4, 5, 6, 7] {
        assert_eq!(
            IoInstruction::from_qualification(unused),
            None,
            "size {unused}"
        );
    }
    let wrap = IoInstruction::from_qualification(0xFFFF << 16 | 1).unwrap();
    assert_eq!(wrap.ports(), 0xFFFF..0x1_0001);
}

#[test]
fn ept_violation_follows_table_28_7() {
    // A write to a read-only page through the translation of a user-mode linear address,
    // after an IRET that unblocked NMIs.
    let q = 1 << 1 | 1 << 3 | 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 12;
    let v = EptViolation::from_qualification(q);
    assert_eq!(
        v.access,
        Access {
            read: false,
            write: true,
            execute: false
        }
    );
    assert_eq!(v.permitted, Permissions::READ | Permissions::EXECUTE);
    assert_eq!(
        v.linear,
        LinearAddress::Translation {
            user: true,
            writable: false,
            execute_disable: false
        }
    );
    assert!(v.nmi_unblocking && !v.user_execute && !v.asynchronous);
    assert_eq!(
        EptViolation::from_qualification(1 << 7 | 1 << 2).linear,
        LinearAddress::PagingStructure
    );
    // Bits 9–11 mean nothing without a valid translation.
    assert_eq!(
        EptViolation::from_qualification(1 << 8 | 0xE00).linear,
        LinearAddress::Invalid
    );
    let flags = EptViolation::from_qualification(0x1_E040);
    assert!(
        flags.user_execute
            && flags.shadow_stack
            && flags.supervisor_shadow_stack
            && flags.guest_paging_verification
            && flags.asynchronous
    );
    assert_eq!(EptViolation::DEFINED, 0x1_FFFF);
}

#[test]
fn decoders_read_the_exit_qualification_of_any_vmcs() {
    let mut vmcs = AnyVmcs::new();
    vmcs.write(x86::vmx::vmcs::ro::EXIT_QUALIFICATION, 3 << 8 | 1 << 4 | 3);
    assert_eq!(
        CrAccess::read(&vmcs),
        CrAccess::MovFrom {
            cr: 3,
            gpr: Gpr::Rbx
        }
    );
    assert_eq!(
        MovDr::read(&vmcs),
        MovDr {
            dr: 3,
            direction: DrDirection::FromDr,
            gpr: Gpr::Rbx
        }
    );
    assert_eq!(IoInstruction::read(&vmcs).map(|io| io.port), Some(0));
    assert_eq!(
        EptViolation::read(&vmcs).permitted,
        Permissions::WRITE,
        "bit 4"
    );
}

#[test]
fn qualifications_decode_by_reason() {
    use crate::exit_reason as reason;
    assert_eq!(
        Qualification::decode(reason::CR_ACCESS, 2 << 4),
        Qualification::CrAccess(CrAccess::Clts)
    );
    assert_eq!(
        Qualification::decode(reason::IO_INSTRUCTION, 7),
        Qualification::Io(None)
    );
    assert!(matches!(
        Qualification::decode(reason::EPT_VIOLATION, 1),
        Qualification::EptViolation(_)
    ));
    assert!(matches!(
        Qualification::decode(reason::MOV_DR, 0),
        Qualification::MovDr(_)
    ));
    assert_eq!(
        Qualification::decode(reason::EXCEPTION_OR_NMI, 0x1234),
        Qualification::Raw(0x1234)
    );
}
