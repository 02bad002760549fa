//! The engine's round trips on software VMCSs; the `nested_engine` fuzz target compares random
//! sequences with the slow way.

use super::*;
use crate::insn::test_guest::{
    FakeGuest, AT_RBX, FEATURE_CONTROL, LONG_MODE, VMCS_A, VMXON_REGION,
};
use crate::insn::{FieldAccessOperands, Gpr, Operand, Outcome};
use crate::nested::test_support::{
    good_vmcs12, guest_caps, l1_needs, AnyVmcs, FakeMsrs, PHYS_ADDR_BITS,
};
use crate::nested::{prepare_vmcs02, reflect_exit, MSR_LIST_MAX};
use shadow_vmcs::VMCS_REGION_SIZE;
use x86::vmx::vmcs::{control, guest, ro};

/// A VMCS that counts the writes it takes.
#[derive(Clone, Debug)]
struct Counted {
    vmcs: AnyVmcs,
    writes: usize,
}

impl Vmcs for Counted {
    fn read(&self, field: u32) -> u64 {
        self.vmcs.read(field)
    }
    fn write(&mut self, field: u32, value: u64) {
        self.writes += 1;
        self.vmcs.write(field, value);
    }
}

#[derive(Clone, Debug)]
struct Soft {
    vmcs01: AnyVmcs,
    vmcs02: Counted,
    shadow: AnyVmcs,
}

impl NestedHardware for Soft {
    type Vmcs01 = AnyVmcs;
    type Vmcs02 = Counted;
    type Shadow = AnyVmcs;
    fn vmcs01(&mut self) -> &mut AnyVmcs {
        &mut self.vmcs01
    }
    fn vmcs02(&mut self) -> &mut Counted {
        &mut self.vmcs02
    }
    fn shadow(&mut self) -> &mut AnyVmcs {
        &mut self.shadow
    }
}

struct Setup {
    engine: NestedVcpu,
    hw: Soft,
    guest: FakeGuest,
    msrs: FakeMsrs,
}

/// VMXON, then VMPTRLD of a vmcs12 that passes the checks; the shadow holds exit information.
fn setup() -> Setup {
    setup_with(good_vmcs12())
}

/// [`setup`] with `vmcs12` as the current VMCS.
fn setup_with(vmcs12: SoftVmcs) -> Setup {
    let mut guest = FakeGuest::new();
    let mut region = [0u8; VMCS_REGION_SIZE];
    vmcs12.to_region(&mut region);
    guest.ram.bytes[VMCS_A as usize..VMCS_A as usize + VMCS_REGION_SIZE].copy_from_slice(&region);
    let policy = ShadowPolicy::new(1 << 29, 0);
    let mut s = Setup {
        engine: NestedVcpu::new(guest_caps(), PHYS_ADDR_BITS, Some(policy)),
        hw: Soft {
            vmcs01: AnyVmcs::new(),
            vmcs02: Counted {
                vmcs: AnyVmcs::new(),
                writes: 0,
            },
            shadow: AnyVmcs::new(),
        },
        guest,
        msrs: FakeMsrs::new(),
    };
    for (reason, pointer) in [
        (exit_reason::VMXON, VMXON_REGION),
        (exit_reason::VMPTRLD, VMCS_A),
    ] {
        s.guest.put_operand(pointer);
        let guest = &mut s.guest;
        let (outcome, _) = s.engine.instruction(&mut s.hw, reason, |vmx| match reason {
            exit_reason::VMXON => vmx.vmxon(&LONG_MODE, FEATURE_CONTROL, guest, &AT_RBX),
            _ => vmx.vmptrld(&LONG_MODE, guest, &AT_RBX),
        });
        assert_eq!(outcome, Outcome::Succeed);
    }
    s
}

impl Setup {
    fn enter(&mut self, launch: bool) -> Entry {
        self.enter_with(launch, l1_needs())
    }

    /// A nested entry with l1-hv needing `needs`.
    fn enter_with(&mut self, launch: bool, needs: L1Needs) -> Entry {
        let caps = guest_caps();
        let ctx = EntryContext {
            caps: &caps,
            phys_addr_bits: PHYS_ADDR_BITS,
            ia32e_mode: true,
            l2_debugctl: 0,
        };
        self.hw.vmcs02.writes = 0;
        self.engine.enter(
            &mut self.hw,
            &self.guest,
            &ctx,
            launch,
            |_, _| needs,
            &mut self.msrs,
        )
    }

    /// L3 runs (to a new RIP and ES base) and takes a #PF exit, reflected.
    fn l3_page_fault(&mut self) {
        let vmcs02 = &mut self.hw.vmcs02.vmcs;
        vmcs02.write(guest::RIP, 0x40_2000);
        vmcs02.write(guest::ES_BASE, 0x1234_0000);
        vmcs02.write(ro::EXIT_REASON, exit_reason::EXCEPTION_OR_NMI.into());
        vmcs02.write(ro::VMEXIT_INTERRUPTION_INFO, 0x8000_0B0E);
        vmcs02.write(ro::EXIT_QUALIFICATION, 0xDEAD_0000);
        let exit = self.engine.l3_exit(
            &mut self.hw,
            ExitFields::FromVmcs02,
            &mut self.guest,
            PHYS_ADDR_BITS,
            &mut self.msrs,
        );
        assert_eq!(exit, Ok(()));
    }

    /// L3 exited (as vmcs02 says): the engine's accounting; returns the facts to decide on.
    fn l3_ran(&mut self) -> ExitFacts {
        let mut facts = ExitFacts::from_vmcs02(&self.hw.vmcs02, || [0; 16]);
        self.engine.l3_ran(&mut self.hw.vmcs02, &mut facts);
        facts
    }

    /// L3 exits with `reason` and vmcs02's timer value `left` (as "save VMX-preemption timer
    /// value" stores it); returns whether the exit is the guest hypervisor's timer's.
    fn timer_exit(&mut self, reason: u16, left: u32) -> bool {
        let vmcs02 = &mut self.hw.vmcs02.vmcs;
        vmcs02.write(ro::EXIT_REASON, reason.into());
        vmcs02.write(guest::VMX_PREEMPTION_TIMER_VALUE, left.into());
        self.l3_ran().timer12_expired
    }

    fn timer02(&self) -> u64 {
        self.hw.vmcs02.read(guest::VMX_PREEMPTION_TIMER_VALUE)
    }

    fn timer12(&self) -> u64 {
        let vmcs12 = self.engine.vmx().current_vmcs12().unwrap();
        vmcs12.read(guest::VMX_PREEMPTION_TIMER_VALUE)
    }

    /// A reflected exit with the exit information vmcs02 has.
    fn reflect(&mut self) {
        let exit = self.engine.l3_exit(
            &mut self.hw,
            ExitFields::FromVmcs02,
            &mut self.guest,
            PHYS_ADDR_BITS,
            &mut self.msrs,
        );
        assert_eq!(exit, Ok(()));
    }

    /// An emulated VMREAD (`read`) or VMWRITE of `field` with RCX.
    fn access(&mut self, read: bool, field: u32, value: u64) -> (Outcome, u64) {
        self.guest.regs[Gpr::Rax as usize] = field.into();
        self.guest.regs[Gpr::Rcx as usize] = value;
        let ops = FieldAccessOperands {
            rm: Operand::Register(Gpr::Rcx),
            field: Gpr::Rax,
        };
        let reason = if read {
            exit_reason::VMREAD
        } else {
            exit_reason::VMWRITE
        };
        let guest = &mut self.guest;
        let (outcome, _) = self.engine.instruction(&mut self.hw, reason, |vmx| {
            if read {
                vmx.vmread(&LONG_MODE, guest, &ops)
            } else {
                vmx.vmwrite(&LONG_MODE, guest, &ops)
            }
        });
        (outcome, self.guest.regs[Gpr::Rcx as usize])
    }

    /// vmcs12 with L3's state synced, as the slow way keeps it.
    fn vmcs12_synced(&self) -> SoftVmcs {
        let mut synced = self.engine.clone();
        let mut hw = self.hw.clone();
        synced.sync_l3_state(&mut hw);
        synced
            .vmx()
            .current_vmcs12()
            .cloned()
            .expect("a current vmcs12")
    }
}

#[test]
fn a_reflected_exception_round_trip_writes_only_the_injection_into_vmcs02() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    assert!(
        s.hw.vmcs02.writes > 50,
        "the first entry builds vmcs02 in full"
    );
    s.l3_page_fault();
    assert_eq!(
        s.hw.shadow.read(ro::EXIT_REASON),
        u64::from(exit_reason::EXCEPTION_OR_NMI)
    );
    assert_eq!(s.hw.shadow.read(guest::RIP), 0x40_2000);
    // The guest hypervisor reflects the #PF: VMWRITEs into the shadow, then VMRESUME.
    s.hw.shadow
        .write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0B0E);
    s.hw.shadow.write(control::VMENTRY_EXCEPTION_ERR_CODE, 2);
    assert_eq!(s.enter(false), Entry::L3);
    assert_eq!(s.hw.vmcs02.writes, 3);
    // The same vmcs02 as a full rebuild from the synced vmcs12.
    let mut rebuilt = s.hw.vmcs02.clone();
    prepare_vmcs02(&s.vmcs12_synced(), &mut rebuilt, &l1_needs(), &s.guest);
    assert!(rebuilt.vmcs.same_as(&s.hw.vmcs02.vmcs));
    assert_eq!(s.hw.vmcs02.read(guest::ES_BASE), 0x1234_0000);
}

#[test]
fn rarely_read_l3_state_reaches_vmcs12_when_read() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    s.l3_page_fault();
    // Saved at once: what the guest hypervisor reads after every exit.
    let vmcs12 = s.engine.vmx().current_vmcs12().unwrap();
    assert_eq!(vmcs12.read(guest::RIP), 0x40_2000);
    assert_eq!(vmcs12.read(guest::ES_BASE), 0, "ES base still in vmcs02");
    assert_eq!(
        s.access(true, guest::ES_BASE, 0),
        (Outcome::Succeed, 0x1234_0000)
    );
    let mut slow = good_vmcs12();
    reflect_exit(&s.hw.vmcs02, &mut slow, ExitFields::FromVmcs02);
    assert_eq!(
        s.engine
            .vmx()
            .current_vmcs12()
            .unwrap()
            .read(guest::ES_BASE),
        slow.read(guest::ES_BASE)
    );
}

#[test]
fn a_guest_state_vmwrite_is_checked_in_full() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    s.l3_page_fault();
    assert_eq!(
        s.access(false, guest::CS_ACCESS_RIGHTS, 0).0,
        Outcome::Succeed
    );
    assert_eq!(s.enter(false), Entry::FailureExit);
    let reason = s
        .engine
        .vmx()
        .current_vmcs12()
        .unwrap()
        .read(ro::EXIT_REASON);
    assert_eq!(
        reason,
        u64::from(exit_reason::ENTRY_FAILURE_GUEST_STATE) | 1 << 31
    );
    assert_eq!(s.hw.shadow.read(ro::EXIT_REASON), reason);
}

#[test]
fn an_injection_alone_is_still_checked() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    s.l3_page_fault();
    // Type 1 is reserved (SDM 27.2.1.3).
    s.hw.shadow
        .write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0x8000_0100);
    assert_eq!(
        s.enter(false),
        Entry::FailValid(VmInstructionError::EntryInvalidControls)
    );
}

#[test]
fn an_entry_failure_of_vmcs02_reaches_the_guest_hypervisor_and_vmcs02_is_rebuilt() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    let failure = u64::from(exit_reason::ENTRY_FAILURE_GUEST_STATE) | 1 << 31;
    s.hw.vmcs02.vmcs.write(ro::EXIT_REASON, failure);
    s.hw.vmcs02.vmcs.write(guest::RIP, 0x40_2000);
    assert_eq!(
        s.engine.l3_exit(
            &mut s.hw,
            ExitFields::FromVmcs02,
            &mut s.guest,
            PHYS_ADDR_BITS,
            &mut s.msrs
        ),
        Ok(())
    );
    let vmcs12 = s.engine.vmx().current_vmcs12().unwrap();
    assert_eq!(vmcs12.read(ro::EXIT_REASON), failure);
    assert_eq!(
        vmcs12.read(guest::RIP),
        good_vmcs12().read(guest::RIP),
        "no guest state saved"
    );
    assert_eq!(s.enter(false), Entry::L3);
    assert!(s.hw.vmcs02.writes > 50, "rebuilt in full");
    assert_eq!(s.hw.vmcs02.read(guest::RIP), good_vmcs12().read(guest::RIP));
}

#[test]
fn a_vmfail_valid_of_vmcs02_fails_the_guest_hypervisors_vmlaunch() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    assert_eq!(
        s.engine.vmcs02_entry_failed(&mut s.hw, 7),
        Ok(VmInstructionError::EntryInvalidControls)
    );
    let vmcs12 = s.engine.vmx().current_vmcs12().unwrap();
    assert_eq!(vmcs12.read(ro::VM_INSTRUCTION_ERROR), 7);
    assert_eq!(
        vmcs12.launch_state(),
        shadow_vmcs::LaunchState::Clear,
        "the VMLAUNCH launched nothing"
    );
    assert_eq!(s.enter(true), Entry::L3, "VMLAUNCH again");
    assert!(s.hw.vmcs02.writes > 50, "rebuilt in full");
    // L3 ran and l1-hv handled its exit: a failed re-entry of vmcs02 is l1-hv's.
    s.l3_ran();
    assert_eq!(
        s.engine.vmcs02_entry_failed(&mut s.hw, 7),
        Err(Vmcs02EntryBug::NoInstruction)
    );
}

#[test]
fn a_vmfail_valid_of_vmcs02_fails_the_guest_hypervisors_vmresume() {
    let mut s = setup();
    assert_eq!(s.enter(true), Entry::L3);
    s.l3_ran();
    assert_eq!(s.enter(false), Entry::L3);
    assert_eq!(
        s.engine.vmcs02_entry_failed(&mut s.hw, 26),
        Ok(VmInstructionError::EntryBlockedByMovSs)
    );
    let vmcs12 = s.engine.vmx().current_vmcs12().unwrap();
    assert_eq!(vmcs12.read(ro::VM_INSTRUCTION_ERROR), 26);
    assert_eq!(vmcs12.launch_state(), shadow_vmcs::LaunchState::Launched);
    assert_eq!(s.enter(false), Entry::L3);
    assert_eq!(
        s.engine.vmcs02_entry_failed(&mut s.hw, 99),
        Err(Vmcs02EntryBug::UnknownError(99)),
        "not an error number VM entry reports"
    );
}

/// Guest-hypervisor memory for the MSR areas of the tests below.
const ENTRY_LOAD: u64 = 0x9000;
const EXIT_STORE: u64 = 0x9100;
const EXIT_LOAD: u64 = 0x9200;
/// IA32_KERNEL_GS_BASE: neither VMCS holds it, and l1-hv's bitmap lets L2 reach it directly.
const KERNEL_GS_BASE: u32 = 0xC000_0102;

impl Setup {
    /// Puts an MSR-area entry (index, reserved, data) at `gpa`.
    fn put_entry(&mut self, gpa: u64, index: u32, reserved: u32, data: u64) {
        self.guest.put_u32(gpa, index);
        self.guest.put_u32(gpa + 4, reserved);
        self.guest.ram.put_u64(gpa + 8, data);
    }

    /// The quadword at `gpa`.
    fn stored(&self, gpa: u64) -> u64 {
        let bytes = &self.guest.ram.bytes[gpa as usize..gpa as usize + 8];
        u64::from_le_bytes(bytes.try_into().unwrap())
    }

    /// The guest hypervisor VMWRITEs `value` to `field`.
    fn vmwrite(&mut self, field: u32, value: u64) {
        assert_eq!(self.access(false, field, value).0, Outcome::Succeed);
    }

    /// Points all three areas at their memory with the given counts.
    fn msr_areas(&mut self, entry_load: u64, exit_store: u64, exit_load: u64) {
        for (count, n) in [
            (control::VMENTRY_MSR_LOAD_COUNT, entry_load),
            (control::VMEXIT_MSR_STORE_COUNT, exit_store),
            (control::VMEXIT_MSR_LOAD_COUNT, exit_load),
        ] {
            self.vmwrite(count, n);
        }
        self.vmwrite(control::VMENTRY_MSR_LOAD_ADDR_FULL, ENTRY_LOAD);
        self.vmwrite(control::VMEXIT_MSR_STORE_ADDR_FULL, EXIT_STORE);
        self.vmwrite(control::VMEXIT_MSR_LOAD_ADDR_FULL, EXIT_LOAD);
    }
}

/// A vmcs12 with its VMX-preemption timer at `value`, saved at exits if `save`.
fn timer_vmcs12(value: u32, save: bool) -> SoftVmcs {
    let mut v = good_vmcs12();
    let pin = v.read(control::PINBASED_EXEC_CONTROLS);
    let timer = u64::from(control::PinbasedControls::VMX_PREEMPTION_TIMER.bits());
    v.write(control::PINBASED_EXEC_CONTROLS, pin | timer);
    if save {
        let exit = v.read(control::VMEXIT_CONTROLS);
        let save = u64::from(control::ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits());
        v.write(control::VMEXIT_CONTROLS, exit | save);
    }
    v.write(guest::VMX_PREEMPTION_TIMER_VALUE, value.into());
    v
}

/// l1-hv's needs with its own timer at `value` (its runaway guard).
fn l1_timer(value: u32) -> L1Needs {
    L1Needs {
        pin: l1_needs().pin | control::PinbasedControls::VMX_PREEMPTION_TIMER,
        preemption_timer_value: value,
        ..l1_needs()
    }
}

#[test]
fn msr_areas_load_for_l3_store_l3s_values_and_load_for_l2() {
    let mut s = setup();
    // kvm-unit-tests' "MSR switch" sequence (SDM 27.4, 28.4, 28.6), plus an MSR vmcs02 holds.
    s.put_entry(ENTRY_LOAD, KERNEL_GS_BASE, 0, 0xAAAA);
    s.put_entry(ENTRY_LOAD + 16, x86::msr::IA32_SYSENTER_ESP, 0, 0x5000);
    s.put_entry(EXIT_STORE, KERNEL_GS_BASE, 0, 0);
    s.put_entry(EXIT_STORE + 16, x86::msr::IA32_SYSENTER_ESP, 0, 0);
    s.put_entry(EXIT_LOAD, KERNEL_GS_BASE, 0, 0xCCCC);
    s.put_entry(EXIT_LOAD + 16, x86::msr::IA32_SYSENTER_EIP, 0, 0x7000);
    s.msr_areas(2, 2, 2);
    assert_eq!(s.enter(true), Entry::L3);
    assert_eq!(
        *s.msrs.hardware(KERNEL_GS_BASE).unwrap(),
        0xAAAA,
        "on the processor"
    );
    assert_eq!(
        s.hw.vmcs02.read(guest::IA32_SYSENTER_ESP),
        0x5000,
        "in vmcs02"
    );
    // L3 writes KERNEL_GS_BASE and SYSENTER_ESP, then exits.
    *s.msrs.hardware(KERNEL_GS_BASE).unwrap() = 0xBBBB;
    s.hw.vmcs02.vmcs.write(guest::IA32_SYSENTER_ESP, 0x6000);
    s.l3_page_fault();
    assert_eq!(s.stored(EXIT_STORE + 8), 0xBBBB);
    assert_eq!(s.stored(EXIT_STORE + 24), 0x6000);
    assert_eq!(
        *s.msrs.hardware(KERNEL_GS_BASE).unwrap(),
        0xCCCC,
        "loaded for L2"
    );
    assert_eq!(
        s.hw.vmcs01.read(guest::IA32_SYSENTER_EIP),
        0x7000,
        "in vmcs01"
    );
}

#[test]
fn a_failing_entry_load_is_exit_reason_34_with_its_number() {
    let mut s = setup();
    s.put_entry(ENTRY_LOAD, KERNEL_GS_BASE, 0, 0xAAAA);
    // The FS base is the VMCS's to load (SDM 27.4).
    s.put_entry(ENTRY_LOAD + 16, x86::msr::IA32_FS_BASE, 0, 0);
    s.put_entry(EXIT_LOAD, KERNEL_GS_BASE, 0, 0xCCCC);
    s.msr_areas(2, 0, 1);
    let rip = s.hw.vmcs01.read(guest::RIP);
    assert_eq!(s.enter(true), Entry::FailureExit);
    let vmcs12 = s.engine.vmx().current_vmcs12().unwrap();
    assert_eq!(vmcs12.read(ro::EXIT_REASON), 34 | 1 << 31);
    assert_eq!(vmcs12.read(ro::EXIT_QUALIFICATION), 2);
    assert_eq!(vmcs12.launch_state(), shadow_vmcs::LaunchState::Clear);
    assert_ne!(
        s.hw.vmcs01.read(guest::RIP),
        rip,
        "the host state is loaded"
    );
    assert_eq!(
        *s.msrs.hardware(KERNEL_GS_BASE).unwrap(),
        0xCCCC,
        "entry 1 was loaded, then the VM-exit MSR-load area (SDM 27.8)"
    );
    // Fixed, the next entry rebuilds vmcs02 from vmcs12.
    s.vmwrite(control::VMENTRY_MSR_LOAD_COUNT, 1);
    assert_eq!(s.enter(true), Entry::L3);
    assert!(s.hw.vmcs02.writes > 50, "rebuilt in full");
}

#[test]
fn entry_load_rules() {
    for (index, reserved, data, ok) in [
        (KERNEL_GS_BASE, 1, 0, false),
        (x86::msr::IA32_GS_BASE, 0, 0, false),
        (0x808, 0, 0, false),
        (x86::msr::IA32_SMM_MONITOR_CTL, 0, 0, false),
        // WRMSR's own #GP: a non-canonical SYSENTER_EIP, an MSR the processor lacks.
        (x86::msr::IA32_SYSENTER_EIP, 0, 1 << 60, false),
        (0x4000_0000, 0, 0, false),
        (0x1B, 0, 0x1234, true),
        (x86::msr::IA32_SYSENTER_EIP, 0, 0x1000, true),
    ] {
        let mut s = setup();
        s.put_entry(ENTRY_LOAD, index, reserved, data);
        s.msr_areas(1, 0, 0);
        let expected = if ok { Entry::L3 } else { Entry::FailureExit };
        assert_eq!(s.enter(true), expected, "{index:#x} {reserved} {data:#x}");
    }
    // Past the recommended maximum (IA32_VMX_MISC bits 27:25).
    let mut s = setup();
    for i in 0..=u64::from(MSR_LIST_MAX) {
        s.put_entry(0x4000 + i * 16, KERNEL_GS_BASE, 0, i);
    }
    s.msr_areas(u64::from(MSR_LIST_MAX) + 1, 0, 0);
    s.vmwrite(control::VMENTRY_MSR_LOAD_ADDR_FULL, 0x4000);
    assert_eq!(s.enter(true), Entry::FailureExit);
    let vmcs12 = s.engine.vmx().current_vmcs12().unwrap();
    assert_eq!(vmcs12.read(ro::EXIT_QUALIFICATION), 513);
}

#[test]
fn a_failing_exit_store_or_load_is_a_vmx_abort() {
    for (store, load, abort) in [
        (
            x86::msr::IA32_SMBASE,
            KERNEL_GS_BASE,
            VmxAbort::StoreGuestMsrs,
        ),
        (0x800, KERNEL_GS_BASE, VmxAbort::StoreGuestMsrs),
        (
            KERNEL_GS_BASE,
            x86::msr::IA32_FS_BASE,
            VmxAbort::LoadHostMsrs,
        ),
        (KERNEL_GS_BASE, 0x4000_0000, VmxAbort::LoadHostMsrs),
    ] {
        let mut s = setup();
        s.put_entry(EXIT_STORE, store, 0, 0);
        s.put_entry(EXIT_LOAD, load, 0, 0);
        s.msr_areas(0, 1, 1);
        assert_eq!(s.enter(true), Entry::L3);
        s.hw.vmcs02
            .vmcs
            .write(ro::EXIT_REASON, exit_reason::CPUID.into());
        assert_eq!(
            s.engine.l3_exit(
                &mut s.hw,
                ExitFields::FromVmcs02,
                &mut s.guest,
                PHYS_ADDR_BITS,
                &mut s.msrs
            ),
            Err(abort),
            "{store:#x} {load:#x}"
        );
    }
}

#[test]
fn areas_outside_ram_read_as_all_ones() {
    let mut s = setup();
    s.msr_areas(1, 0, 0);
    s.vmwrite(control::VMENTRY_MSR_LOAD_ADDR_FULL, 0x10_0000);
    assert_eq!(s.enter(true), Entry::FailureExit, "reserved bits all ones");
}

#[test]
fn l3_time_comes_off_the_guest_hypervisors_count_across_exits_l1_hv_handles() {
    let mut s = setup_with(timer_vmcs12(1000, true));
    assert_eq!(s.enter_with(true, l1_timer(300)), Entry::L3);
    let exit02 = s.hw.vmcs02.read(control::VMEXIT_CONTROLS);
    let save = u64::from(control::ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits());
    assert_ne!(exit02 & save, 0, "vmcs02 measures L3's time");
    assert_eq!(s.timer02(), 300, "l1-hv's count is the smaller");
    // l1-hv's timer ran out: its own (300 of the guest hypervisor's 1000 gone).
    assert!(!s.timer_exit(exit_reason::PREEMPTION_TIMER, 0));
    assert_eq!(s.timer02(), 300);
    // An external interrupt after 200 more: 500 left, vmcs02 restarts l1-hv's 300.
    assert!(!s.timer_exit(exit_reason::EXTERNAL_INTERRUPT, 100));
    assert_eq!(s.timer02(), 300);
    assert!(!s.timer_exit(exit_reason::PREEMPTION_TIMER, 0));
    assert_eq!(
        s.timer02(),
        200,
        "the guest hypervisor's 200 left is now the smaller"
    );
    // A reflected exit after 50: vmcs12 gets the 150 left.
    assert!(!s.timer_exit(exit_reason::CPUID, 150));
    s.reflect();
    assert_eq!(s.timer12(), 150);
    // The next entry starts from vmcs12's value.
    assert_eq!(s.enter_with(false, l1_timer(300)), Entry::L3);
    assert_eq!(s.timer02(), 150);
    assert!(
        s.timer_exit(exit_reason::PREEMPTION_TIMER, 0),
        "its count ran out"
    );
    let facts = s.l3_ran();
    assert_eq!(
        super::super::decide_l3_exit(&facts, s.engine.vmx().current_vmcs12().unwrap(), &s.guest),
        super::super::Decision::ReflectToL2
    );
    s.reflect();
    assert_eq!(s.timer12(), 0, "SDM 28.3: the value at the exit");
}

#[test]
fn without_save_the_field_stays_and_the_next_entry_starts_from_it() {
    let mut s = setup_with(timer_vmcs12(1000, false));
    assert_eq!(s.enter(true), Entry::L3);
    assert_eq!(s.timer02(), 1000, "l1-hv runs no timer of its own here");
    assert!(!s.timer_exit(exit_reason::CPUID, 400));
    s.reflect();
    assert_eq!(s.timer12(), 1000);
    assert_eq!(s.enter(false), Entry::L3);
    assert_eq!(s.timer02(), 1000);
}

#[test]
fn a_zero_value_is_the_guest_hypervisors_exit_before_l3_runs() {
    let mut s = setup_with(timer_vmcs12(0, true));
    assert_eq!(s.enter_with(true, l1_timer(300)), Entry::L3);
    assert_eq!(
        s.timer02(),
        0,
        "the processor exits before L3's first instruction"
    );
    assert!(s.timer_exit(exit_reason::PREEMPTION_TIMER, 0));
}

#[test]
fn when_both_run_out_l1_hv_goes_first_then_the_guest_hypervisor() {
    let mut s = setup_with(timer_vmcs12(300, true));
    assert_eq!(s.enter_with(true, l1_timer(300)), Entry::L3);
    assert!(
        !s.timer_exit(exit_reason::PREEMPTION_TIMER, 0),
        "l1-hv's first"
    );
    assert_eq!(s.timer02(), 0, "the re-entry exits at once");
    assert!(s.timer_exit(exit_reason::PREEMPTION_TIMER, 0));
}

#[test]
fn without_vmcs12_timer_vmcs02_runs_l1_hvs_alone_and_saves_nothing() {
    let mut s = setup();
    assert_eq!(s.enter_with(true, l1_timer(300)), Entry::L3);
    let exit02 = s.hw.vmcs02.read(control::VMEXIT_CONTROLS);
    let save = u64::from(control::ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits());
    assert_eq!(exit02 & save, 0);
    assert_eq!(s.timer02(), 300);
    assert!(!s.timer_exit(exit_reason::PREEMPTION_TIMER, 0));
    assert_eq!(s.timer02(), 0, "vmcs02's field is the processor's alone");
}

#[test]
fn a_timer_value_vmwrite_is_no_rebuild_but_the_next_entry_uses_it() {
    let mut s = setup_with(timer_vmcs12(1000, false));
    assert_eq!(s.enter(true), Entry::L3);
    s.l3_page_fault();
    let value = u64::from(500u32);
    assert_eq!(
        s.access(false, guest::VMX_PREEMPTION_TIMER_VALUE, value).0,
        Outcome::Succeed
    );
    assert_eq!(s.enter(false), Entry::L3);
    assert!(s.hw.vmcs02.writes < 5, "only the timer");
    assert_eq!(s.timer02(), 500);
}
