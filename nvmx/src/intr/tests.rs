use super::*;
use crate::inject::tests::Host;
use crate::nested::test_support::AnyVmcs;
use crate::route::ExitReason;
use shadow_vmcs::SoftVmcs;
use x86::bits64::rflags::RFlags;
use x86::irq::PAGE_FAULT_VECTOR;
use x86::vmx::vmcs::control::ExitControls;
use x86::vmx::vmcs::ro;

const IW: u64 = PrimaryControls::INTERRUPT_WINDOW_EXITING.bits() as u64;
const NW: u64 = PrimaryControls::NMI_WINDOW_EXITING.bits() as u64;
/// Default1 bits of the primary processor-based controls, which the assist must leave alone.
const PRIMARY_DEFAULT1: u64 = 0x0401_E172;

/// A protected-mode guest VMCS with RFLAGS.IF = `interrupts_enabled`, no blocking, active.
fn vmcs(interrupts_enabled: bool) -> AnyVmcs {
    let mut vmcs = AnyVmcs::new();
    vmcs.write(guest::CR0, 0x8000_0031);
    set_if(&mut vmcs, interrupts_enabled);
    vmcs.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, PRIMARY_DEFAULT1);
    vmcs
}

fn set_if(vmcs: &mut AnyVmcs, interrupts_enabled: bool) {
    let mut rflags = RFlags::FLAGS_A1;
    rflags.set(RFlags::FLAGS_IF, interrupts_enabled);
    vmcs.write(guest::RFLAGS, rflags.bits());
}

fn with_virtual_nmis(mut vmcs: AnyVmcs) -> AnyVmcs {
    let pin = PinbasedControls::NMI_EXITING | PinbasedControls::VIRTUAL_NMIS;
    vmcs.write(control::PINBASED_EXEC_CONTROLS, pin.bits().into());
    vmcs
}

fn block(vmcs: &mut AnyVmcs, blocking: Interruptibility) {
    blocking.write(vmcs);
}

fn entry(vmcs: &impl Vmcs) -> InterruptionInfo {
    InterruptionInfo(vmcs.read(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32)
}

fn windows_armed(vmcs: &impl Vmcs) -> Windows {
    let primary = vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS);
    Windows {
        interrupt: primary & IW != 0,
        nmi: primary & NW != 0,
    }
}

const NO_WINDOW: Windows = Windows {
    interrupt: false,
    nmi: false,
};
const INTERRUPT_WINDOW: Windows = Windows {
    interrupt: true,
    nmi: false,
};
const NMI_WINDOW: Windows = Windows {
    interrupt: false,
    nmi: true,
};

fn run(vmcs: &mut AnyVmcs, events: &mut PendingEvents) -> AssistOutcome {
    assist(vmcs, &mut Host::default(), events)
}

/// Simulates the guest taking the injected event: the entry field is consumed by VM entry.
fn enter(vmcs: &mut AnyVmcs) {
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
}

fn injected(outcome: AssistOutcome) -> Event {
    match outcome {
        AssistOutcome::Injected { event, .. } => event,
        other => panic!("expected an injection, got {other:?}"),
    }
}

#[test]
fn sdm_6_9_nmi_is_delivered_before_a_pending_interrupt() {
    let mut vmcs = vmcs(true);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0xF0);
    events.raise_nmi();
    let outcome = run(&mut vmcs, &mut events);
    assert_eq!(
        outcome,
        AssistOutcome::Injected {
            event: Event::nmi(),
            windows: INTERRUPT_WINDOW
        }
    );
    assert_eq!(entry(&vmcs).bits(), 0x8000_0202);
    assert_eq!(windows_armed(&vmcs), INTERRUPT_WINDOW);
    enter(&mut vmcs);
    assert_eq!(
        injected(run(&mut vmcs, &mut events)),
        Event::external_interrupt(0xF0)
    );
    assert_eq!(entry(&vmcs).bits(), 0x8000_00F0);
    assert!(events.is_empty());
}

#[test]
fn irr_rule_highest_vector_is_delivered_first() {
    let mut vmcs = vmcs(true);
    let mut events = PendingEvents::new();
    for vector in [0x31, 0xFE, 0x20, 0x80, 0x7F] {
        assert!(events.raise_interrupt(vector));
    }
    let mut order = [0u8; 5];
    for slot in &mut order {
        *slot = injected(run(&mut vmcs, &mut events)).vector;
        enter(&mut vmcs);
    }
    assert_eq!(order, [0xFE, 0x80, 0x7F, 0x31, 0x20]);
    assert_eq!(run(&mut vmcs, &mut events), AssistOutcome::Nothing);
}

#[test]
fn sdm_27_3_1_5_no_interrupt_injection_with_if_clear_interrupt_window_instead() {
    let mut vmcs = vmcs(false);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x40);
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::WindowRequested(INTERRUPT_WINDOW)
    );
    assert!(!entry(&vmcs).valid());
    assert_eq!(events.next_interrupt(), Some(0x40));
    assert_eq!(
        vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
        PRIMARY_DEFAULT1 | IW
    );
    // The window exit: the guest set IF.
    set_if(&mut vmcs, true);
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::Injected {
            event: Event::external_interrupt(0x40),
            windows: NO_WINDOW
        }
    );
    assert_eq!(
        vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
        PRIMARY_DEFAULT1
    );
}

#[test]
fn sdm_27_3_1_5_no_interrupt_injection_under_sti_or_mov_ss_blocking() {
    for blocking in [Interruptibility::STI, Interruptibility::MOV_SS] {
        let mut vmcs = vmcs(true);
        block(&mut vmcs, blocking);
        let mut events = PendingEvents::new();
        events.raise_interrupt(0x51);
        assert_eq!(
            run(&mut vmcs, &mut events),
            AssistOutcome::WindowRequested(INTERRUPT_WINDOW),
            "{blocking:?}"
        );
        assert!(!entry(&vmcs).valid());
        assert!(events.interrupt_pending());
    }
}

#[test]
fn sdm_27_3_1_5_no_nmi_injection_under_mov_ss_blocking_nmi_window_with_virtual_nmis() {
    let mut vmcs = with_virtual_nmis(vmcs(true));
    block(&mut vmcs, Interruptibility::MOV_SS);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::WindowRequested(NMI_WINDOW)
    );
    assert!(!entry(&vmcs).valid());
    assert!(events.nmi_pending());
}

#[test]
fn sdm_27_7_6_nmi_under_sti_blocking_waits_for_the_interrupt_window_not_the_nmi_window() {
    // An NMI window may open under STI blocking, when injection still may not: it would exit
    // again before any instruction, forever. The interrupt window waits for the STI shadow.
    let mut vmcs = with_virtual_nmis(vmcs(true));
    block(&mut vmcs, Interruptibility::STI);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::WindowRequested(INTERRUPT_WINDOW)
    );
    assert!(!entry(&vmcs).valid());
    block(&mut vmcs, Interruptibility::empty());
    assert_eq!(injected(run(&mut vmcs, &mut events)), Event::nmi());
    assert_eq!(windows_armed(&vmcs), NO_WINDOW);
}

#[test]
fn sdm_27_3_1_5_virtual_nmi_blocking_nmi_window_while_an_open_interrupt_is_injected() {
    let mut vmcs = with_virtual_nmis(vmcs(true));
    block(&mut vmcs, Interruptibility::NMI);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    events.raise_interrupt(0x60);
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::Injected {
            event: Event::external_interrupt(0x60),
            windows: NMI_WINDOW
        }
    );
    assert_eq!(windows_armed(&vmcs), NMI_WINDOW);
    // The NMI-window exit: the guest's IRET ended virtual-NMI blocking.
    enter(&mut vmcs);
    block(&mut vmcs, Interruptibility::empty());
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::Injected {
            event: Event::nmi(),
            windows: NO_WINDOW
        }
    );
    assert_eq!(windows_armed(&vmcs), NO_WINDOW);
}

#[test]
fn sdm_25_6_2_no_nmi_window_without_virtual_nmis() {
    // NMI blocking without virtual NMIs: the NMI window is not allowed. With interrupts shut,
    // the interrupt window is the retry point; with them open it would exit at once, forever,
    // so the NMI waits for the next exit.
    let mut events = PendingEvents::new();
    events.raise_nmi();
    let mut shut = vmcs(false);
    block(&mut shut, Interruptibility::NMI);
    assert_eq!(
        run(&mut shut, &mut events),
        AssistOutcome::WindowRequested(INTERRUPT_WINDOW)
    );
    let mut open = vmcs(true);
    block(&mut open, Interruptibility::NMI);
    assert_eq!(run(&mut open, &mut events), AssistOutcome::Nothing);
    assert_eq!(windows_armed(&open), NO_WINDOW);
    assert!(!entry(&open).valid());
    assert!(events.nmi_pending());
}

#[test]
fn sdm_27_7_5_pending_injection_takes_priority_windows_armed_queue_untouched() {
    let mut vmcs = with_virtual_nmis(vmcs(true));
    let pf = Event::page_fault(2, 0x1000).info(true);
    vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, pf.bits().into());
    vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, 2);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    events.raise_interrupt(0x33);
    let before = events;
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::WindowRequested(Windows {
            interrupt: true,
            nmi: true
        })
    );
    assert_eq!(events, before);
    assert_eq!(entry(&vmcs), pf);
    assert_eq!(vmcs.read(control::VMENTRY_EXCEPTION_ERR_CODE), 2);
}

#[test]
fn sdm_28_2_4_interrupt_displaced_by_an_exception_is_delivered_exactly_once_later() {
    let (mut vmcs, mut host) = (vmcs(true), Host::default());
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x41);
    assert_eq!(
        injected(assist(&mut vmcs, &mut host, &mut events)),
        Event::external_interrupt(0x41)
    );
    // l1-hv then injects a #PF over it: inject hands the interrupt back.
    let outcome = inject_event(
        &mut vmcs,
        &mut host,
        Running::L2,
        Event::page_fault(0, 0x2000),
        None,
    );
    let InjectOutcome::Injected {
        requeue: Some(displaced),
    } = outcome
    else {
        panic!("expected a displaced interrupt, got {outcome:?}");
    };
    assert_eq!(events.requeue(displaced), Ok(()));
    assert_eq!(entry(&vmcs).vector(), PAGE_FAULT_VECTOR);
    enter(&mut vmcs);
    assert_eq!(
        injected(run(&mut vmcs, &mut events)),
        Event::external_interrupt(0x41)
    );
    enter(&mut vmcs);
    assert_eq!(run(&mut vmcs, &mut events), AssistOutcome::Nothing);
}

#[test]
fn sdm_28_2_4_nmi_from_idt_vectoring_is_delivered_exactly_once_and_unblocked() {
    let mut vmcs = with_virtual_nmis(vmcs(true));
    let mut events = PendingEvents::new();
    events.raise_nmi();
    assert_eq!(injected(run(&mut vmcs, &mut events)), Event::nmi());
    // The entry's NMI delivery hit an EPT violation: the exit reports it, with the virtual-NMI
    // blocking its delivery began.
    enter(&mut vmcs);
    vmcs.write(ro::IDT_VECTORING_INFO, 0x8000_0202);
    block(&mut vmcs, Interruptibility::NMI);
    assert_eq!(requeue_interrupted(&mut events, &mut vmcs), None);
    assert_eq!(Interruptibility::read(&vmcs), Interruptibility::empty());
    // Handing it back a second time (e.g. also from inject's requeue) keeps one instance.
    assert_eq!(events.requeue(Event::nmi()), Ok(()));
    assert_eq!(injected(run(&mut vmcs, &mut events)), Event::nmi());
    enter(&mut vmcs);
    assert!(events.is_empty());
    assert_eq!(run(&mut vmcs, &mut events), AssistOutcome::Nothing);
}

#[test]
fn sdm_28_2_4_interrupted_exception_is_returned_for_redelivery() {
    let mut vmcs = vmcs(true);
    let mut events = PendingEvents::new();
    vmcs.write(ro::IDT_VECTORING_INFO, 0x8000_0B0E);
    vmcs.write(ro::IDT_VECTORING_ERR_CODE, 4);
    assert_eq!(
        requeue_interrupted(&mut events, &mut vmcs),
        Some(Event::hardware_exception(PAGE_FAULT_VECTOR, 4))
    );
    assert!(events.is_empty());
    assert_eq!(
        events.requeue(Event::double_fault()),
        Err(Event::double_fault())
    );
}

#[test]
fn sdm_6_7_1_displaced_nmi_and_a_newly_raised_nmi_are_two_nmis() {
    let mut vmcs = with_virtual_nmis(vmcs(true));
    let mut events = PendingEvents::new();
    events.raise_nmi();
    assert_eq!(injected(run(&mut vmcs, &mut events)), Event::nmi());
    // Before the entry, a second NMI arrives and an exception displaces the first.
    assert!(events.raise_nmi());
    assert_eq!(events.requeue(Event::nmi()), Ok(()));
    enter(&mut vmcs);
    let first = run(&mut vmcs, &mut events);
    assert_eq!(
        first,
        AssistOutcome::Injected {
            event: Event::nmi(),
            windows: NMI_WINDOW
        }
    );
    enter(&mut vmcs);
    assert_eq!(injected(run(&mut vmcs, &mut events)), Event::nmi());
    assert!(events.is_empty());
}

#[test]
fn irr_and_nmi_latch_merge_duplicates() {
    let mut vmcs = vmcs(true);
    let mut events = PendingEvents::new();
    assert!(events.raise_interrupt(0x90));
    assert!(!events.raise_interrupt(0x90));
    assert!(events.raise_nmi());
    assert!(!events.raise_nmi());
    assert_eq!(injected(run(&mut vmcs, &mut events)), Event::nmi());
    enter(&mut vmcs);
    assert_eq!(
        injected(run(&mut vmcs, &mut events)),
        Event::external_interrupt(0x90)
    );
    enter(&mut vmcs);
    assert!(events.is_empty());
    assert_eq!(run(&mut vmcs, &mut events), AssistOutcome::Nothing);
}

#[test]
fn hlt_injection_wakes_the_guest_activity_active() {
    let mut vmcs = vmcs(true);
    ActivityState::Hlt.write(&mut vmcs);
    let mut events = PendingEvents::new();
    assert!(!wakes_from_hlt(&events, &vmcs));
    events.raise_interrupt(0x70);
    assert!(wakes_from_hlt(&events, &vmcs));
    assert_eq!(
        injected(run(&mut vmcs, &mut events)),
        Event::external_interrupt(0x70)
    );
    assert_eq!(ActivityState::read(&vmcs), Some(ActivityState::Active));
}

#[test]
fn hlt_window_leaves_the_guest_halted() {
    let mut vmcs = vmcs(false);
    ActivityState::Hlt.write(&mut vmcs);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x70);
    assert_eq!(
        run(&mut vmcs, &mut events),
        AssistOutcome::WindowRequested(INTERRUPT_WINDOW)
    );
    assert_eq!(ActivityState::read(&vmcs), Some(ActivityState::Hlt));
}

#[test]
fn hlt_wake_rules_interrupt_needs_if_nmi_needs_no_nmi_blocking() {
    let mut vmcs = vmcs(false);
    ActivityState::Hlt.write(&mut vmcs);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x70);
    // CLI; HLT: interrupts cannot wake it.
    assert!(!wakes_from_hlt(&events, &vmcs));
    events.raise_nmi();
    assert!(wakes_from_hlt(&events, &vmcs));
    block(&mut vmcs, Interruptibility::NMI);
    assert!(!wakes_from_hlt(&events, &vmcs));
    // STI; HLT: the STI shadow ended with HLT.
    block(&mut vmcs, Interruptibility::STI);
    set_if(&mut vmcs, true);
    let mut interrupt_only = PendingEvents::new();
    interrupt_only.raise_interrupt(0x70);
    assert!(wakes_from_hlt(&interrupt_only, &vmcs));
}

#[test]
fn window_controls_cleared_when_the_queue_drains_other_controls_kept() {
    let mut vmcs = with_virtual_nmis(vmcs(true));
    vmcs.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PRIMARY_DEFAULT1 | IW | NW,
    );
    let mut events = PendingEvents::new();
    assert_eq!(run(&mut vmcs, &mut events), AssistOutcome::Nothing);
    assert_eq!(
        vmcs.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
        PRIMARY_DEFAULT1
    );
}

// L3 under a guest hypervisor: vmcs02 runs L3, vmcs12 holds the guest hypervisor's controls.

fn vmcs12(external_interrupt_exiting: bool, ack: bool, nmi_exiting: bool) -> SoftVmcs {
    let mut vmcs12 = SoftVmcs::new();
    let mut pin = PinbasedControls::empty();
    pin.set(
        PinbasedControls::EXTERNAL_INTERRUPT_EXITING,
        external_interrupt_exiting,
    );
    pin.set(PinbasedControls::NMI_EXITING, nmi_exiting);
    vmcs12.write(control::PINBASED_EXEC_CONTROLS, pin.bits().into());
    let exit = if ack {
        ExitControls::ACK_INTERRUPT_ON_EXIT
    } else {
        ExitControls::empty()
    };
    vmcs12.write(control::VMEXIT_CONTROLS, exit.bits().into());
    vmcs12
}

fn run_l3(vmcs02: &mut AnyVmcs, vmcs12: &SoftVmcs, events: &mut PendingEvents) -> L3Outcome {
    assist_l3(vmcs02, vmcs12, &mut Host::default(), events)
}

fn l3_exit(outcome: L3Outcome) -> ExitInfo {
    match outcome {
        L3Outcome::VmExit(exit) => exit,
        other => panic!("expected a virtual VM exit, got {other:?}"),
    }
}

#[test]
fn sdm_26_2_l3_interrupt_without_external_interrupt_exiting_is_injected_into_l3() {
    for ack in [false, true] {
        let mut vmcs02 = vmcs(true);
        let mut events = PendingEvents::new();
        events.raise_interrupt(0x55);
        assert_eq!(
            run_l3(&mut vmcs02, &vmcs12(false, ack, false), &mut events),
            L3Outcome::Assist(AssistOutcome::Injected {
                event: Event::external_interrupt(0x55),
                windows: NO_WINDOW
            }),
            "ack {ack}"
        );
        assert_eq!(entry(&vmcs02).bits(), 0x8000_0055);
        assert!(events.is_empty());
    }
}

#[test]
fn sdm_28_2_2_l3_interrupt_exit_without_ack_leaves_it_pending_for_l2() {
    // IF = 0 in L3: external-interrupt exiting ignores it (SDM 26.4.1).
    let mut vmcs02 = vmcs(false);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x55);
    let exit = l3_exit(run_l3(
        &mut vmcs02,
        &vmcs12(true, false, false),
        &mut events,
    ));
    assert_eq!(exit.reason, ExitReason::ExternalInterrupt);
    assert!(!exit.interruption_info.valid());
    assert_eq!(events.next_interrupt(), Some(0x55));
    assert!(!entry(&vmcs02).valid());
}

/// kvm-unit-tests' `vmx` "interrupt" suite, "intercepted interrupt while running guest": L3 runs
/// with IF = 0 under vmcs12's external-interrupt exiting without acknowledgement; the guest
/// hypervisor gets the exit, then enables interrupts (`sti; nop; cli`) and takes the vector
/// through its own IDT. The interrupt stays pending across the virtual exit (SDM 28.2.2) and is
/// delivered to L2 exactly once, when its IF and STI blocking allow (SDM 27.3.1.5).
#[test]
fn sdm_28_2_2_l3_interrupt_exit_without_ack_is_delivered_to_l2_once_it_enables_interrupts() {
    let (mut vmcs02, mut vmcs01) = (vmcs(false), vmcs(false));
    let mut events = PendingEvents::new();
    events.raise_interrupt(0xDE);
    let exit = l3_exit(run_l3(
        &mut vmcs02,
        &vmcs12(true, false, false),
        &mut events,
    ));
    assert!(!exit.interruption_info.valid());
    // L2 at its host state, RFLAGS = 2: the interrupt waits for the window.
    assert_eq!(
        run(&mut vmcs01, &mut events),
        AssistOutcome::WindowRequested(INTERRUPT_WINDOW)
    );
    // STI: IF = 1 under STI blocking, still the window.
    set_if(&mut vmcs01, true);
    block(&mut vmcs01, Interruptibility::STI);
    assert_eq!(
        run(&mut vmcs01, &mut events),
        AssistOutcome::WindowRequested(INTERRUPT_WINDOW)
    );
    // The window exit after the NOP: injected once, nothing left for anyone.
    block(&mut vmcs01, Interruptibility::empty());
    assert_eq!(
        run(&mut vmcs01, &mut events),
        AssistOutcome::Injected {
            event: Event::external_interrupt(0xDE),
            windows: NO_WINDOW
        }
    );
    assert_eq!(entry(&vmcs01).bits(), 0x8000_00DE);
    assert!(events.is_empty());
    assert_eq!(windows_armed(&vmcs01), NO_WINDOW);
}

/// The same suite, "running a guest with interrupt acknowledgement set": the vector leaves the
/// queue with the exit that reports it, so L2, which handles it from the exit information, is
/// not given it a second time.
#[test]
fn sdm_28_2_2_l3_interrupt_exit_with_ack_leaves_nothing_for_l2() {
    let (mut vmcs02, mut vmcs01) = (vmcs(false), vmcs(true));
    let mut events = PendingEvents::new();
    events.raise_interrupt(0xDE);
    let exit = l3_exit(run_l3(&mut vmcs02, &vmcs12(true, true, false), &mut events));
    assert_eq!(exit.interruption_info.bits(), 0x8000_00DE);
    assert!(events.is_empty());
    assert_eq!(run(&mut vmcs01, &mut events), AssistOutcome::Nothing);
    assert!(!entry(&vmcs01).valid());
}

/// L3 with IF = 0 and no external-interrupt exiting in vmcs12: the interrupt is L3's once it
/// enables interrupts. l1-hv's interrupt window in vmcs02 brings it back (an exit vmcs12 did not
/// ask for, `L1Exit::Window`); the assist then injects and disarms the window, keeping none of
/// its own when the queue is empty.
#[test]
fn sdm_27_7_5_l3_interrupt_waits_for_l1_hvs_window_in_vmcs02_then_is_injected() {
    let mut vmcs02 = vmcs(false);
    let vmcs12 = vmcs12(false, false, false);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x55);
    assert_eq!(
        run_l3(&mut vmcs02, &vmcs12, &mut events),
        L3Outcome::Assist(AssistOutcome::WindowRequested(INTERRUPT_WINDOW))
    );
    assert_eq!(windows_armed(&vmcs02), INTERRUPT_WINDOW);
    set_if(&mut vmcs02, true);
    assert_eq!(
        run_l3(&mut vmcs02, &vmcs12, &mut events),
        L3Outcome::Assist(AssistOutcome::Injected {
            event: Event::external_interrupt(0x55),
            windows: NO_WINDOW
        })
    );
    assert_eq!(windows_armed(&vmcs02), NO_WINDOW);
    // A window left armed after the event went elsewhere is cleared by the next assist.
    vmcs02.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PRIMARY_DEFAULT1 | IW | NW,
    );
    enter(&mut vmcs02);
    assert_eq!(
        run_l3(&mut vmcs02, &vmcs12, &mut events),
        L3Outcome::Assist(AssistOutcome::Nothing)
    );
    assert_eq!(windows_armed(&vmcs02), NO_WINDOW);
}

#[test]
fn sdm_28_2_2_l3_interrupt_exit_with_ack_reports_and_takes_the_vector() {
    let mut vmcs02 = vmcs(false);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x55);
    events.raise_interrupt(0x21);
    let exit = l3_exit(run_l3(&mut vmcs02, &vmcs12(true, true, false), &mut events));
    assert_eq!(exit.reason, ExitReason::ExternalInterrupt);
    assert_eq!(exit.interruption_info.bits(), 0x8000_0055);
    assert_eq!(events.next_interrupt(), Some(0x21));
}

#[test]
fn sdm_28_2_2_l3_nmi_exit_reports_the_nmi_and_takes_it() {
    let mut vmcs02 = vmcs(true);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    events.raise_interrupt(0x55);
    let exit = l3_exit(run_l3(
        &mut vmcs02,
        &vmcs12(false, false, true),
        &mut events,
    ));
    assert_eq!(exit.reason, ExitReason::ExceptionOrNmi);
    assert_eq!(exit.interruption_info.bits(), 0x8000_0202);
    assert!(!events.nmi_pending());
    assert_eq!(events.next_interrupt(), Some(0x55));
}

#[test]
fn sdm_26_2_l3_nmi_without_nmi_exiting_is_injected_into_l3() {
    let mut vmcs02 = vmcs(true);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    assert_eq!(
        run_l3(&mut vmcs02, &vmcs12(true, true, false), &mut events),
        L3Outcome::Assist(AssistOutcome::Injected {
            event: Event::nmi(),
            windows: NO_WINDOW
        })
    );
    assert_eq!(entry(&vmcs02).bits(), 0x8000_0202);
}

#[test]
fn sdm_27_7_1_l3_nmi_exit_held_by_nmi_blocking_without_virtual_nmis() {
    let mut vmcs02 = vmcs(true);
    block(&mut vmcs02, Interruptibility::NMI);
    let mut events = PendingEvents::new();
    events.raise_nmi();
    // Held back, and not injected into L3 either: its hypervisor intercepts NMIs.
    assert_eq!(
        run_l3(&mut vmcs02, &vmcs12(false, false, true), &mut events),
        L3Outcome::Assist(AssistOutcome::Nothing)
    );
    assert!(!entry(&vmcs02).valid());
    assert!(events.nmi_pending());
}

#[test]
fn sdm_28_2_4_l3_exit_reports_the_injection_vmcs02_was_about_to_make() {
    let mut vmcs02 = vmcs(true);
    let pf = Event::page_fault(6, 0x3000).info(true);
    vmcs02.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, pf.bits().into());
    vmcs02.write(control::VMENTRY_EXCEPTION_ERR_CODE, 6);
    let mut events = PendingEvents::new();
    events.raise_interrupt(0x55);
    let exit = l3_exit(run_l3(&mut vmcs02, &vmcs12(true, true, false), &mut events));
    assert_eq!(exit.idt_vectoring_info, pf);
    assert_eq!(exit.idt_vectoring_error_code, Some(6));
    assert!(!entry(&vmcs02).valid());
}

#[test]
fn l3_assist_keeps_the_window_controls_vmcs12_sets() {
    let mut vmcs02 = vmcs(true);
    vmcs02.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PRIMARY_DEFAULT1 | IW,
    );
    let mut vmcs12 = vmcs12(false, false, false);
    vmcs12.write(
        control::PRIMARY_PROCBASED_EXEC_CONTROLS,
        PRIMARY_DEFAULT1 | IW,
    );
    let mut events = PendingEvents::new();
    assert_eq!(
        run_l3(&mut vmcs02, &vmcs12, &mut events),
        L3Outcome::Assist(AssistOutcome::Nothing)
    );
    assert_eq!(windows_armed(&vmcs02), INTERRUPT_WINDOW);
}

/// A small deterministic generator (xorshift64) for the randomised sequences below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// SDM 27.3.1.5 on the state VM entry sees: the injection the assist made is one VM entry
/// accepts.
fn entry_checks_pass(vmcs: &AnyVmcs) -> bool {
    let gate = Gate::read(vmcs);
    let sti_or_mov_ss = gate
        .blocking
        .intersects(Interruptibility::STI | Interruptibility::MOV_SS);
    match Event::from_entry(vmcs).map(|event| event.kind) {
        Some(InterruptionType::ExternalInterrupt) => gate.interrupts_enabled && !sti_or_mov_ss,
        Some(InterruptionType::Nmi) => {
            !(sti_or_mov_ss || gate.virtual_nmis && gate.blocking.contains(Interruptibility::NMI))
        }
        _ => true,
    }
}

#[test]
fn random_sequences_deliver_every_event_exactly_once_nmis_first_within_entry_checks() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300 {
        let mut vmcs = vmcs(true);
        if rng.below(2) == 0 {
            vmcs = with_virtual_nmis(vmcs);
        }
        let mut events = PendingEvents::new();
        let (mut raised_nmis, mut delivered_nmis) = (0u32, 0u32);
        let mut raised = [0u32; 256];
        let mut delivered = [0u32; 256];
        for _ in 0..60 {
            match rng.below(6) {
                0 => raised_nmis += u32::from(events.raise_nmi()),
                1 | 2 => {
                    let vector = rng.below(256) as u8;
                    raised[usize::from(vector)] += u32::from(events.raise_interrupt(vector));
                }
                _ => {}
            }
            // Random guest state for this entry.
            set_if(&mut vmcs, rng.below(2) == 0);
            let blocking = [
                Interruptibility::empty(),
                Interruptibility::STI,
                Interruptibility::MOV_SS,
                Interruptibility::NMI,
            ][rng.below(4) as usize];
            block(&mut vmcs, blocking);
            let nmi_was_pending = events.nmi_pending();
            let nmi_was_open = Gate::read(&vmcs).nmi_open();
            let outcome = run(&mut vmcs, &mut events);
            assert!(entry_checks_pass(&vmcs), "{outcome:?} {blocking:?}");
            if let AssistOutcome::Injected { event, .. } = outcome {
                match event.kind {
                    InterruptionType::Nmi => delivered_nmis += 1,
                    _ => {
                        assert!(!(nmi_was_pending && nmi_was_open), "NMI first");
                        delivered[usize::from(event.vector)] += 1;
                    }
                }
                // Sometimes an exception displaces it and it comes back.
                if rng.below(4) == 0 {
                    let outcome = inject_event(
                        &mut vmcs,
                        &mut Host::default(),
                        Running::L2,
                        Event::hardware_exception(13, 0),
                        None,
                    );
                    let InjectOutcome::Injected {
                        requeue: Some(displaced),
                    } = outcome
                    else {
                        panic!("{outcome:?}");
                    };
                    assert_eq!(events.requeue(displaced), Ok(()));
                    match displaced.kind {
                        InterruptionType::Nmi => delivered_nmis -= 1,
                        _ => delivered[usize::from(displaced.vector)] -= 1,
                    }
                }
            }
            enter(&mut vmcs);
        }
        // The guest opens up: everything still queued is delivered.
        set_if(&mut vmcs, true);
        block(&mut vmcs, Interruptibility::empty());
        while let AssistOutcome::Injected { event, .. } = run(&mut vmcs, &mut events) {
            match event.kind {
                InterruptionType::Nmi => delivered_nmis += 1,
                _ => delivered[usize::from(event.vector)] += 1,
            }
            enter(&mut vmcs);
        }
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(raised_nmis, delivered_nmis);
        assert_eq!(raised, delivered);
    }
}
