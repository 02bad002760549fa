use super::*;
use crate::event::CONTROL_PROTECTION_VECTOR;
use crate::nested::test_support::AnyVmcs;
use x86::vmx::vmcs::ro;

/// Records what the routine asked of l1-hv.
#[derive(Default)]
pub(crate) struct Host {
    cr2: Option<u64>,
    dr6: u64,
    debugger: bool,
    paused: bool,
    cet: bool,
    trace: [Option<TraceRecord>; 8],
    traced: usize,
}

impl TraceSink for Host {
    fn record(&mut self, record: TraceRecord) {
        self.trace[self.traced] = Some(record);
        self.traced += 1;
    }
}

impl InjectHost for Host {
    fn set_cr2(&mut self, cr2: u64) {
        self.cr2 = Some(cr2);
    }
    fn merge_dr6(&mut self, bits: u64) {
        self.dr6 |= bits;
    }
    fn debugger_attached(&self) -> bool {
        self.debugger
    }
    fn pause_for_debugger(&mut self) {
        self.paused = true;
    }
    fn cet_supported(&self) -> bool {
        self.cet
    }
}

impl Host {
    fn traced(&self) -> &[Option<TraceRecord>] {
        &self.trace[..self.traced]
    }
}

/// A protected-mode guest VMCS.
fn vmcs() -> AnyVmcs {
    let mut vmcs = AnyVmcs::new();
    vmcs.write(guest::CR0, 0x8000_0031);
    vmcs
}

fn entry(vmcs: &AnyVmcs) -> (u64, u64, u64) {
    (
        vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
        vmcs.read(control::VMENTRY_EXCEPTION_ERR_CODE),
        vmcs.read(control::VMENTRY_INSTRUCTION_LEN),
    )
}

fn intercepting(vectors: &[u8]) -> InterceptControls {
    InterceptControls {
        exception_bitmap: vectors.iter().fold(0, |bits, v| bits | 1 << v),
        ..InterceptControls::default()
    }
}

fn reflected(outcome: InjectOutcome) -> ExitInfo {
    match outcome {
        InjectOutcome::Reflected(info) => info,
        other => panic!("expected a reflected exit, got {other:?}"),
    }
}

#[test]
fn page_fault_into_l2_sets_entry_fields_cr2_and_trace() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::page_fault(0x6, 0xcafe_0000),
        None,
    );
    assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
    assert_eq!(entry(&vmcs), (0x8000_0b0e, 6, 0));
    assert_eq!(host.cr2, Some(0xcafe_0000));
    assert_eq!(
        host.traced(),
        [Some(TraceRecord::PfInject {
            error_code: 6,
            cr2: 0xcafe_0000
        })]
    );
}

#[test]
fn kernel_reinjects_from_exit_fields() {
    // The kernel's path: an L2 #PF it intercepted, rebuilt from the exit, injected back.
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0b0e);
    vmcs.write(ro::VMEXIT_INTERRUPTION_ERR_CODE, 0x15);
    vmcs.write(ro::EXIT_QUALIFICATION, 0x4242_0000);
    let event = Event::from_exit(&vmcs).unwrap();
    let during = Event::from_idt_vectoring(&vmcs);
    assert_eq!(
        inject_event(&mut vmcs, &mut host, Running::L2, event, during),
        InjectOutcome::Injected { requeue: None }
    );
    assert_eq!(entry(&vmcs), (0x8000_0b0e, 0x15, 0));
    assert_eq!(host.cr2, Some(0x4242_0000));
}

#[test]
fn real_mode_injection_pushes_no_error_code() {
    let (mut vmcs, mut host) = (AnyVmcs::new(), Host::default());
    inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::hardware_exception(13, 0x10),
        None,
    );
    assert_eq!(entry(&vmcs).0, 0x8000_030d);
    assert!(!vmcs.written(control::VMENTRY_EXCEPTION_ERR_CODE));
}

#[test]
fn software_events_carry_instruction_length() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::software(InterruptionType::SoftwareInterrupt, 0x80, 2),
        None,
    );
    assert_eq!(entry(&vmcs), (0x8000_0480, 0, 2));
    inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::software(InterruptionType::SoftwareException, 3, 1),
        None,
    );
    assert_eq!(entry(&vmcs), (0x8000_0603, 0, 1));
}

#[test]
fn pending_contributory_and_new_contributory_become_double_fault() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0b0d);
    vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, 0x30);
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::hardware_exception(11, 0x18),
        None,
    );
    assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
    assert_eq!(entry(&vmcs), (0x8000_0b08, 0, 0));
    assert_eq!(
        host.traced(),
        [
            Some(TraceRecord::DoubleFault {
                first: 13,
                second: 11
            }),
            Some(TraceRecord::InjExc {
                vector: 8,
                error_code: 0
            })
        ]
    );
}

#[test]
fn fault_during_double_fault_is_triple_fault_in_l2() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::page_fault(0, 0x10),
        Some(Event::double_fault()),
    );
    assert_eq!(outcome, InjectOutcome::TripleFault);
    assert_eq!(host.cr2, None);
    assert_eq!(
        host.traced(),
        [Some(TraceRecord::TripleFault {
            first: 8,
            second: 14
        })]
    );
    assert_eq!(entry(&vmcs).0, 0);
}

#[test]
fn triple_fault_in_l3_is_a_triple_fault_exit_for_the_guest_hypervisor() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let controls = InterceptControls::default();
    let info = reflected(inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::hardware_exception(13, 0),
        Some(Event::double_fault()),
    ));
    assert_eq!(info.reason, ExitReason::TripleFault);
}

#[test]
fn pending_interrupt_displaced_by_exception_is_handed_back() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0030);
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::hardware_exception(6, 0),
        None,
    );
    assert_eq!(
        outcome,
        InjectOutcome::Injected {
            requeue: Some(Event::external_interrupt(0x30))
        }
    );
    assert_eq!(entry(&vmcs).0, 0x8000_0306);
    assert_eq!(
        host.traced()[1],
        Some(TraceRecord::Requeue { vector: 0x30 })
    );
}

#[test]
fn l3_page_fault_not_intercepted_is_delivered_with_cr2() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let controls = intercepting(&[13]);
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::page_fault(2, 0x5000),
        None,
    );
    assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
    assert_eq!(host.cr2, Some(0x5000));
}

#[test]
fn regression_cr2_unchanged_on_intercepted_pf() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let controls = intercepting(&[14]);
    let info = reflected(inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::page_fault(2, 0x5000),
        None,
    ));
    assert_eq!(
        host.cr2, None,
        "CR2 is written only when the #PF is delivered"
    );
    assert_eq!(info.qualification, 0x5000);
    assert!(!vmcs.written(control::VMENTRY_INTERRUPTION_INFO_FIELD) || entry(&vmcs).0 == 0);
    assert_eq!(
        host.traced(),
        [Some(TraceRecord::Reflect {
            exit_reason: 0,
            vector: 14
        })]
    );
}

/// Xen's `nvmx_enqueue_n2_exceptions` dropped a second event while one was queued ("Double Event
/// at exit"). Here the pending event travels in the exit's IDT-vectoring fields instead, and is
/// removed from the VM-entry field so it is not delivered twice either.
#[test]
fn regression_second_queued_event_not_silently_dropped() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0b0d);
    vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, 0x30);
    let controls = intercepting(&[14]);
    let info = reflected(inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::page_fault(0, 0x7000),
        None,
    ));
    assert_eq!(
        (
            info.idt_vectoring_info.bits(),
            info.idt_vectoring_error_code
        ),
        (0x8000_0b0d, Some(0x30))
    );
    assert_eq!(entry(&vmcs).0, 0, "VM-entry field cleared");
}

#[test]
fn regression_intercepted_gp_during_pf_is_reflected_not_promoted() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let controls = intercepting(&[13]);
    let info = reflected(inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::hardware_exception(13, 0),
        Some(Event::page_fault(0, 0x1000)),
    ));
    assert_eq!(
        (
            info.interruption_info.vector(),
            info.idt_vectoring_info.vector()
        ),
        (13, 14)
    );
    assert!(!host.traced().contains(&Some(TraceRecord::DoubleFault {
        first: 14,
        second: 13
    })));
}

#[test]
fn regression_error_code_bits_31_16_dropped_before_vm_entry() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let event = Event::from_info(InterruptionInfo(0x8000_0b0d), 0xdead_0010, 0, 0).unwrap();
    inject_event(&mut vmcs, &mut host, Running::L2, event, None);
    assert_eq!(entry(&vmcs).1, 0x10);
}

#[test]
fn debug_exception_delivery_applies_dr6_and_clears_gd_and_lbr() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(guest::RFLAGS, 0x102);
    vmcs.write(guest::DR7, 0x2400);
    vmcs.write(guest::IA32_DEBUGCTL_FULL, 0x3);
    inject_event(&mut vmcs, &mut host, Running::L2, Event::debug(0x1), None);
    assert_eq!(
        host.dr6, 0x4001,
        "B0 from the payload, BS because TF is set"
    );
    assert_eq!(vmcs.read(guest::DR7), 0x0400);
    assert_eq!(vmcs.read(guest::IA32_DEBUGCTL_FULL), 0x2);
    assert_eq!(entry(&vmcs).0, 0x8000_0301);
}

#[test]
fn debug_exception_intercepted_by_guest_hypervisor_keeps_dr7_debugctl_dr6() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(guest::RFLAGS, 0x102);
    vmcs.write(guest::DR7, 0x2400);
    vmcs.write(guest::IA32_DEBUGCTL_FULL, 0x1);
    let controls = intercepting(&[1]);
    let info = reflected(inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::debug(0),
        None,
    ));
    assert_eq!(
        info.qualification, 0x4000,
        "BS travels in the exit qualification"
    );
    assert_eq!(
        (
            host.dr6,
            vmcs.read(guest::DR7),
            vmcs.read(guest::IA32_DEBUGCTL_FULL)
        ),
        (0, 0x2400, 0x1)
    );
}

#[test]
fn int3_with_debugger_attached_pauses_instead_of_injecting() {
    let (mut vmcs, mut host) = (
        vmcs(),
        Host {
            debugger: true,
            ..Host::default()
        },
    );
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::software(InterruptionType::SoftwareException, 3, 1),
        None,
    );
    assert_eq!(outcome, InjectOutcome::PausedForDebugger);
    assert!(host.paused);
    assert!(!vmcs.written(control::VMENTRY_INTERRUPTION_INFO_FIELD));
}

#[test]
fn int_3_instruction_is_not_a_breakpoint_for_the_debugger() {
    let (mut vmcs, mut host) = (
        vmcs(),
        Host {
            debugger: true,
            ..Host::default()
        },
    );
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::software(InterruptionType::SoftwareInterrupt, 3, 2),
        None,
    );
    assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
    assert!(!host.paused);
}

#[test]
fn external_interrupt_on_vector_3_is_not_a_breakpoint_for_the_debugger() {
    let (mut vmcs, mut host) = (
        vmcs(),
        Host {
            debugger: true,
            ..Host::default()
        },
    );
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::external_interrupt(3),
        None,
    );
    assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
    assert!(!host.paused);
    assert_eq!(
        vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
        0x8000_0003
    );
}

#[test]
fn l3_external_interrupt_with_exiting_is_reflected() {
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    let controls = InterceptControls {
        external_interrupt_exiting: true,
        ack_interrupt_on_exit: true,
        ..InterceptControls::default()
    };
    let info = reflected(inject_event(
        &mut vmcs,
        &mut host,
        Running::L3(&controls),
        Event::external_interrupt(0x41),
        None,
    ));
    assert_eq!(
        (info.reason, info.interruption_info.bits()),
        (ExitReason::ExternalInterrupt, 0x8000_0041)
    );
}

#[test]
fn redelivery_rearms_the_interrupted_event_without_touching_its_payload() {
    // An EPT violation while a #PF (error code 2) was being delivered: l1-hv fixes its EPT and
    // must deliver the same #PF again; CR2 already holds the address.
    let mut vmcs = AnyVmcs::new();
    vmcs.write(guest::CR0, 1);
    vmcs.write(ro::IDT_VECTORING_INFO, 0x8000_0b0e);
    vmcs.write(ro::IDT_VECTORING_ERR_CODE, 2);
    let event = Event::from_idt_vectoring(&vmcs).expect("valid IDT-vectoring information");
    redeliver(&mut vmcs, &event);
    assert_eq!(
        vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
        0x8000_0b0e
    );
    assert_eq!(vmcs.read(control::VMENTRY_EXCEPTION_ERR_CODE), 2);

    // A software exception (INT3) keeps its instruction length.
    let mut vmcs = AnyVmcs::new();
    vmcs.write(guest::CR0, 1);
    vmcs.write(ro::IDT_VECTORING_INFO, 0x8000_0603);
    vmcs.write(ro::VMEXIT_INSTRUCTION_LEN, 1);
    let event = Event::from_idt_vectoring(&vmcs).expect("valid");
    redeliver(&mut vmcs, &event);
    assert_eq!(
        vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
        0x8000_0603
    );
    assert_eq!(vmcs.read(control::VMENTRY_INSTRUCTION_LEN), 1);
}

/// Regression (found by the `route` fuzzer): #CP pushes an error code only on a CET processor;
/// elsewhere VM entry rejects an injection with bit 11 set for vector 21 (SDM 27.2.1.3).
#[test]
fn cp_delivers_an_error_code_only_where_cet_exists() {
    for cet in [false, true] {
        let mut vmcs = AnyVmcs::new();
        vmcs.write(guest::CR0, 1);
        let mut host = Host {
            cet,
            ..Host::default()
        };
        let event = Event::hardware_exception(CONTROL_PROTECTION_VECTOR, 3);
        inject_event(&mut vmcs, &mut host, Running::L2, event, None);
        let expected = if cet { 0x8000_0b15 } else { 0x8000_0315 };
        assert_eq!(
            vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD),
            expected,
            "CET {cet}"
        );
    }
}

#[test]
fn a_fault_for_an_emulated_instruction_is_pushed_with_rf() {
    // An instruction exit saved RF = 0; the #GP l1-hv raises for it must push RF = 1 as every
    // fault does (SDM 18.3.1.1), which injection does not do by itself (SDM 27.6.1.1).
    let (mut vmcs, mut host) = (vmcs(), Host::default());
    vmcs.write(guest::RFLAGS, 0x2);
    let gp = Event::hardware_exception(x86::irq::GENERAL_PROTECTION_FAULT_VECTOR, 0);
    inject_event(&mut vmcs, &mut host, Running::L2, gp, None);
    let rf = RFlags::FLAGS_RF.bits();
    assert_eq!(vmcs.read(guest::RFLAGS), 0x2 | rf);
}

#[test]
fn traps_aborts_and_interrupts_keep_rf() {
    // #DB (trap or fault by cause), #BP/#OF (traps), #DF (abort), NMI and interrupts: RF is
    // pushed as the guest state holds it.
    let events = [
        Event::debug(Dr6::BS.bits() as u64),
        Event::software(InterruptionType::SoftwareException, BREAKPOINT_VECTOR, 1),
        Event::double_fault(),
        Event::nmi(),
        Event::external_interrupt(0x40),
    ];
    for event in events {
        let (mut vmcs, mut host) = (vmcs(), Host::default());
        vmcs.write(guest::RFLAGS, 0x2);
        inject_event(&mut vmcs, &mut host, Running::L2, event, None);
        assert_eq!(vmcs.read(guest::RFLAGS), 0x2, "{event:?}");
    }
}

/// An exception exit as the processor reports it: `vector` with the error code it pushes in the
/// guest's mode, RF saved as delivery would push it (1 for faults), nothing being delivered.
fn exception_exit(vector: u8, protected_mode: bool) -> AnyVmcs {
    let mut v = vmcs();
    if !protected_mode {
        v.write(guest::CR0, 0x10);
    }
    let with_ec = protected_mode && crate::event::vector_has_error_code(vector);
    let info = InterruptionInfo::new(InterruptionType::HardwareException, vector, with_ec);
    v.write(ro::VMEXIT_INTERRUPTION_INFO, info.bits().into());
    // #DF and #AC push 0 (SDM 6.15); the others here a selector-format code.
    let error_code = match vector {
        8 | 17 => 0,
        _ if with_ec => 0x1a,
        _ => 0,
    };
    v.write(ro::VMEXIT_INTERRUPTION_ERR_CODE, error_code);
    v.write(ro::EXIT_QUALIFICATION, 0xdead_b000);
    let rf = if vector_is_fault(vector) { 1 << 16 } else { 0 };
    v.write(guest::RFLAGS, 0x2 | rf);
    v
}

#[test]
fn reinjecting_an_intercepted_exception_equals_the_general_routine() {
    for vector in 0..32u8 {
        for protected_mode in [true, false] {
            let exit = exception_exit(vector, protected_mode);
            let (mut short, mut short_host) = (exit.clone(), Host::default());
            if !reinject_intercepted(&mut short, &mut short_host) {
                assert!(matches!(vector, 1 | 3 | 21), "{vector}");
                assert!(short.same_as(&exit) && short_host.traced().is_empty());
                continue;
            }
            let (mut general, mut general_host) = (exit.clone(), Host::default());
            let event = Event::from_exit(&general).unwrap();
            let during = Event::from_idt_vectoring(&general);
            let outcome = inject_event(&mut general, &mut general_host, Running::L2, event, during);
            assert_eq!(outcome, InjectOutcome::Injected { requeue: None });
            assert!(
                short.same_as(&general),
                "vector {vector} pm {protected_mode}"
            );
            assert_eq!(short_host.cr2, general_host.cr2);
            assert_eq!(short_host.traced(), general_host.traced());
        }
    }
}

#[test]
fn reinjecting_declines_what_needs_the_general_routine() {
    let mut during = exception_exit(14, true);
    during.write(ro::IDT_VECTORING_INFO, 0x8000_0b0d);
    let mut nmi = exception_exit(2, true);
    nmi.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0202);
    let mut unblocking = exception_exit(13, true);
    unblocking.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_1b0d);
    let db = exception_exit(1, true);
    for exit in [during, nmi, unblocking, db, vmcs()] {
        let (mut v, mut host) = (exit.clone(), Host::default());
        assert!(!reinject_intercepted(&mut v, &mut host));
        assert!(v.same_as(&exit) && host.traced().is_empty() && host.cr2.is_none());
    }
}
