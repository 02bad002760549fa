//! One test per rule of [`decide_l3_exit`]: l1-hv's exits first, whatever vmcs12 says; then
//! vmcs12's; then l1-hv's by kind.

use super::super::test_support::{good_vmcs12, Ram, IO_BITMAP_A, MSR_BITMAP};
use super::*;
use crate::event::{InterruptionInfo, InterruptionType};
use shadow_vmcs::SoftVmcs;
use x86::vmx::vmcs::control::{self, PinbasedControls, PrimaryControls, SecondaryControls};

fn facts(reason: u32) -> ExitFacts {
    ExitFacts {
        reason,
        qualification: 0,
        interruption_info: InterruptionInfo::INVALID,
        interruption_error_code: 0,
        instruction_info: 0,
        long_mode: true,
        gprs: [0; 16],
        timer12_expired: false,
    }
}

fn exception(kind: InterruptionType, vector: u8) -> ExitFacts {
    ExitFacts {
        interruption_info: InterruptionInfo::new(kind, vector, false),
        ..facts(reason::EXCEPTION_OR_NMI.into())
    }
}

fn decide(exit: &ExitFacts, vmcs12: &SoftVmcs) -> Decision {
    decide_l3_exit(exit, vmcs12, &Ram::new())
}

/// vmcs12 with every exiting control it could set for the events l1-hv keeps.
fn vmcs12_wanting_everything() -> SoftVmcs {
    let mut vmcs12 = good_vmcs12();
    let pin = control::PINBASED_EXEC_CONTROLS;
    let bits = PinbasedControls::EXTERNAL_INTERRUPT_EXITING | PinbasedControls::NMI_EXITING;
    vmcs12.write(pin, vmcs12.read(pin) | u64::from(bits.bits()));
    vmcs12.write(control::EXCEPTION_BITMAP, u64::from(u32::MAX));
    vmcs12
}

use Decision::{L1Handles, ReflectToL2};

#[test]
fn entry_failures_are_the_guest_hypervisors_but_machine_checks() {
    let vmcs12 = good_vmcs12();
    let failure = |basic: u16| facts(u32::from(basic) | reason::ENTRY_FAILURE);
    assert_eq!(
        decide(&failure(reason::ENTRY_FAILURE_GUEST_STATE), &vmcs12),
        ReflectToL2
    );
    assert_eq!(
        decide(&failure(reason::ENTRY_FAILURE_MSR_LOADING), &vmcs12),
        ReflectToL2
    );
    assert_eq!(
        decide(&failure(reason::ENTRY_FAILURE_MACHINE_CHECK), &vmcs12),
        L1Handles(L1Exit::Other)
    );
}

#[test]
fn the_machines_events_are_l1_hvs_even_when_vmcs12_intercepts_them() {
    let vmcs12 = vmcs12_wanting_everything();
    assert_eq!(
        decide(&facts(reason::EXTERNAL_INTERRUPT.into()), &vmcs12),
        L1Handles(L1Exit::ExternalInterrupt)
    );
    assert_eq!(
        decide(&exception(InterruptionType::Nmi, 2), &vmcs12),
        L1Handles(L1Exit::Exception)
    );
    assert_eq!(
        decide(&exception(InterruptionType::HardwareException, 18), &vmcs12),
        L1Handles(L1Exit::Exception),
        "#MC"
    );
    for r in [
        reason::INIT,
        reason::SIPI,
        reason::IO_SMI,
        reason::OTHER_SMI,
        reason::EPT_MISCONFIGURATION,
    ] {
        assert_eq!(
            decide(&facts(r.into()), &vmcs12),
            L1Handles(L1Exit::Other),
            "reason {r}"
        );
    }
}

#[test]
fn a_preemption_timer_exit_is_the_guest_hypervisors_only_on_its_count_alone() {
    let mut vmcs12 = good_vmcs12();
    let pin = vmcs12.read(control::PINBASED_EXEC_CONTROLS);
    vmcs12.write(
        control::PINBASED_EXEC_CONTROLS,
        pin | u64::from(PinbasedControls::VMX_PREEMPTION_TIMER.bits()),
    );
    let timer = facts(reason::PREEMPTION_TIMER.into());
    assert_eq!(decide(&timer, &vmcs12), L1Handles(L1Exit::PreemptionTimer));
    let theirs = ExitFacts {
        timer12_expired: true,
        ..timer
    };
    assert_eq!(decide(&theirs, &vmcs12), ReflectToL2);
}

#[test]
fn ept_violations_go_to_the_ept_l3_ran_on() {
    let mut vmcs12 = good_vmcs12();
    let violation = facts(reason::EPT_VIOLATION.into());
    assert_eq!(
        decide(&violation, &vmcs12),
        L1Handles(L1Exit::Ept02Violation)
    );
    let secondary = control::SECONDARY_PROCBASED_EXEC_CONTROLS;
    let ept = u64::from(SecondaryControls::ENABLE_EPT.bits());
    vmcs12.write(secondary, vmcs12.read(secondary) & !ept);
    assert_eq!(
        decide(&violation, &vmcs12),
        L1Handles(L1Exit::L2EptViolation)
    );
    // "Enable EPT" counts only with the secondary controls activated (SDM 25.6.2).
    vmcs12.write(secondary, vmcs12.read(secondary) | ept);
    let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
    let activate = u64::from(PrimaryControls::SECONDARY_CONTROLS.bits());
    vmcs12.write(primary, vmcs12.read(primary) & !activate);
    assert_eq!(
        decide(&violation, &vmcs12),
        L1Handles(L1Exit::L2EptViolation)
    );
}

#[test]
fn exceptions_go_by_vmcs12s_bitmap_after_the_machines() {
    let mut vmcs12 = good_vmcs12();
    vmcs12.write(control::EXCEPTION_BITMAP, 1 << 6);
    let hw = InterruptionType::HardwareException;
    assert_eq!(decide(&exception(hw, 6), &vmcs12), ReflectToL2);
    assert_eq!(
        decide(&exception(hw, 13), &vmcs12),
        L1Handles(L1Exit::Exception)
    );
}

#[test]
fn port_io_vmcs12_lets_through_is_l1_hvs() {
    let vmcs12 = good_vmcs12();
    let mut ram = Ram::new();
    ram.set_bit(IO_BITMAP_A, 0x60);
    let io = |port: u64| ExitFacts {
        qualification: port << 16,
        ..facts(reason::IO_INSTRUCTION.into())
    };
    assert_eq!(decide_l3_exit(&io(0x60), &vmcs12, &ram), ReflectToL2);
    assert_eq!(
        decide_l3_exit(&io(0x3F8), &vmcs12, &ram),
        L1Handles(L1Exit::PortIo)
    );
}

#[test]
fn msr_accesses_vmcs12_lets_through_are_l1_hvs() {
    let vmcs12 = good_vmcs12();
    let mut ram = Ram::new();
    ram.set_bit(MSR_BITMAP, 0x277); // read of IA32_PAT
    let msr = |reason: u16, ecx: u64| {
        let mut exit = facts(reason.into());
        exit.gprs[1] = ecx;
        exit
    };
    assert_eq!(
        decide_l3_exit(&msr(reason::RDMSR, 0x277), &vmcs12, &ram),
        ReflectToL2
    );
    assert_eq!(
        decide_l3_exit(&msr(reason::WRMSR, 0x277), &vmcs12, &ram),
        L1Handles(L1Exit::Msr)
    );
    assert_eq!(
        decide_l3_exit(&msr(reason::RDMSR, 0xC000_0100), &vmcs12, &ram),
        L1Handles(L1Exit::Msr)
    );
}

#[test]
fn other_exits_vmcs12_does_not_want_are_l1_hvs() {
    let mut vmcs12 = good_vmcs12();
    assert_eq!(decide(&facts(reason::CPUID.into()), &vmcs12), ReflectToL2);
    assert_eq!(decide(&facts(reason::HLT.into()), &vmcs12), ReflectToL2);
    let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
    let hlt = u64::from(PrimaryControls::HLT_EXITING.bits());
    vmcs12.write(primary, vmcs12.read(primary) & !hlt);
    assert_eq!(
        decide(&facts(reason::HLT.into()), &vmcs12),
        L1Handles(L1Exit::Other)
    );
}

#[test]
fn window_exits_vmcs12_does_not_ask_for_are_l1_hvs_own_windows() {
    let mut vmcs12 = good_vmcs12();
    let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
    let windows = PrimaryControls::INTERRUPT_WINDOW_EXITING | PrimaryControls::NMI_WINDOW_EXITING;
    vmcs12.write(primary, vmcs12.read(primary) & !u64::from(windows.bits()));
    for r in [reason::INTERRUPT_WINDOW, reason::NMI_WINDOW] {
        assert_eq!(decide(&facts(r.into()), &vmcs12), L1Handles(L1Exit::Window));
    }
    // The guest hypervisor's own windows are its exits, whether or not l1-hv armed one too.
    vmcs12.write(primary, vmcs12.read(primary) | u64::from(windows.bits()));
    for r in [reason::INTERRUPT_WINDOW, reason::NMI_WINDOW] {
        assert_eq!(decide(&facts(r.into()), &vmcs12), ReflectToL2);
    }
}
