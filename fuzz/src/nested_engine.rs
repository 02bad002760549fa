//! Target `nested_engine`: random sequences of the guest hypervisor's VMWRITE/VMREAD (emulated,
//! or straight into the shadow VMCS), VMPTRLD, VMCLEAR, VMLAUNCH/VMRESUME and L3 exits, run
//! through the nested engine ([`NestedVcpu`], which skips what did not change) and, side by
//! side, the slow way: a plain [`NestedVmx`] that copies the whole shadow VMCS at every sync,
//! checks vmcs12 in full ([`check_vmcs12`]) and rebuilds vmcs02 ([`prepare_vmcs02`]) at every
//! entry, and saves every guest field at every exit ([`reflect_exit`]).
//!
//! Properties, after every step:
//! - no panic;
//! - both give the same instruction outcome, VMREAD value and entry result (L3 runs, VMfailValid
//!   with the same error, failure exit);
//! - vmcs01, vmcs02 and the shadow VMCS hold the same fields with the same values;
//! - vmcs12 is the same once the engine's lazily kept L3 state is synced
//!   ([`NestedVcpu::sync_l3_state`]), and without that sync in every field but L3's rarely read
//!   guest state; guest memory (vmcs12 regions written back) is the same.
//!
//! "L3 runs" changes only what L3 itself can change (RIP, RSP, arithmetic flags) and the exit
//! information, so the state a VM exit saves is valid for the next entry, as on a processor.

use crate::config::{
    entry_ram, good_vmcs12, host_caps, l1_needs, real_mode_vmcs12, write_l1_host_state,
    ENTRY_RAM_SIZE, GUEST_PHYS_ADDR_BITS,
};
use crate::memory::Ram;
use crate::vmcs::AnyVmcs;
use arbitrary::Arbitrary;
use nvmx::exit_reason;
use nvmx::insn::{
    AddressSize, Fault, FieldAccessOperands, Gpr, GuestMemory, GuestMode, GuestOperands,
    MemOperand, NestedVmx, NotRam, Operand, Outcome, Segment,
};
use nvmx::nested::{
    check_vmcs12, load_entry_msrs, load_exit_msrs, load_l2_host_state, msr_bitmap_bit,
    prepare_vmcs02, reflect_exit, store_exit_msrs, Entry, EntryContext, EntryFailure, ExitFields,
    L2Inherited, MsrBus, MsrFault, NestedHardware, NestedVcpu,
};
use shadow_vmcs::{
    supported_fields, sync_from_shadow, sync_to_shadow, Field, LaunchState, ShadowPolicy, SoftVmcs,
    Vmcs, SHADOWED, VMCS12_REVISION_ID, VMCS_REGION_SIZE,
};
use std::collections::BTreeMap;
use x86::vmx::vmcs::{control, guest, ro};

/// The guest hypervisor's VMXON region (free in [`entry_ram`]).
const VMXON: u64 = 0x9000;
/// Its two vmcs12 regions: A starts current and clear, B is clear in memory.
const VMCS_A: u64 = 0xA000;
const VMCS_B: u64 = 0xB000;
/// Memory operands (`[rbx]`).
const SCRATCH: u64 = 0xF000;
/// IA32_VMX_MISC bit 29 (VMWRITE to exit-information fields).
const MISC_VMWRITE_ANY_FIELD: u64 = 1 << 29;

/// 64-bit mode, CPL 0: VMX instructions run.
const LONG_MODE: GuestMode = GuestMode {
    cr0: 0x8000_0031,
    cr4: 0x2020,
    rflags: 2,
    long_mode_active: true,
    cs_long: true,
    cpl: 0,
};

const AT_RBX: MemOperand = MemOperand {
    segment: Segment::Ds,
    base: Some(Gpr::Rbx),
    index: None,
    displacement: 0,
    address_size: AddressSize::Bits64,
};

/// The whole input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// vmcs12 A and B start as: % 3 = 64-bit guest, real mode, PAE paging without EPT.
    pub base: u8,
    /// Bit 0: VMCS shadowing on; bit 1: the shadow holds exit information (real IA32_VMX_MISC
    /// bit 29); bit 2: the guest may VMWRITE it (its IA32_VMX_MISC bit 29).
    pub shadow: u8,
    /// The steps.
    pub steps: Vec<Step>,
}

/// One step of the guest hypervisor or of L3, decoded by [`Step::action`] with weights that
/// keep most sequences going round nested entries and exits. A guest hypervisor's step while L3
/// runs, and an L3 exit while it does not, are skipped.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which action (see [`Action`]).
    pub op: u8,
    /// The field, pointer or entry choice; the exit L3 takes.
    pub arg: u8,
    /// Bits 1:0: how `value` edits a field; bits 7:6 = 0: pick any supported field, else a
    /// shadowed one.
    pub how: u8,
    /// Operand, or L3's new RIP/RSP/flags and exit qualification.
    pub value: u64,
}

/// What a [`Step`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// VMWRITE: into the shadow VMCS when the field is shadowed for writing, else emulated.
    Write(Field),
    /// VMREAD: from the shadow when shadowed for reading, else emulated.
    Read(Field),
    /// VMPTRLD of A (false) or B (true).
    Vmptrld(bool),
    /// VMCLEAR of A (false) or B (true).
    Vmclear(bool),
    /// VMLAUNCH if vmcs12 is clear and VMRESUME if launched (or the other one when `wrong`),
    /// then the nested entry if the instruction checks pass.
    Enter { wrong: bool },
    /// L2's IA32_DEBUGCTL (LBR, BTF) for the next entries' context and inheritance.
    Debugctl(u64),
    /// L3 runs and exits.
    L3Exit,
}

impl Step {
    fn action(&self) -> Action {
        // Mostly shadowed fields: random edits of the others mostly make the entries fail.
        let field = if self.how & 0xC0 != 0 {
            Field::new(u64::from(SHADOWED[usize::from(self.arg) % SHADOWED.len()]))
                .expect("shadowed fields are valid")
        } else {
            let fields: Vec<Field> = supported_fields().collect();
            fields[usize::from(self.arg) % fields.len()]
        };
        match self.op % 16 {
            0..=2 => Action::Write(field),
            3 => Action::Read(field),
            4 => Action::Vmptrld(self.arg & 1 != 0),
            5 => Action::Vmclear(self.arg & 1 != 0),
            6..=9 => Action::Enter {
                wrong: self.arg & 0x1F == 0,
            },
            10 => Action::Debugctl(u64::from(self.arg & 3)),
            _ => Action::L3Exit,
        }
    }
}

/// A guest hypervisor vCPU's memory and registers.
#[derive(Clone, Debug)]
struct Guest {
    ram: Ram,
    regs: [u64; 16],
}

impl GuestMemory for Guest {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        self.ram.is_ram(gpa, len)
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), NotRam> {
        self.ram.read(gpa, buf)
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), NotRam> {
        self.ram.write(gpa, data)
    }
}

impl GuestOperands for Guest {
    fn register(&self, reg: Gpr) -> u64 {
        self.regs[reg as usize]
    }
    fn set_register(&mut self, reg: Gpr, value: u64) {
        self.regs[reg as usize] = value;
    }
    fn read_memory(&mut self, operand: &MemOperand, buf: &mut [u8]) -> Result<(), Fault> {
        let linear = operand.offset(|r| self.regs[r as usize]);
        self.ram.read(linear, buf).map_err(|_| Fault::Pf {
            linear,
            error_code: 0,
        })
    }
    fn write_memory(&mut self, operand: &MemOperand, data: &[u8]) -> Result<(), Fault> {
        let linear = operand.offset(|r| self.regs[r as usize]);
        self.ram.write(linear, data).map_err(|_| Fault::Pf {
            linear,
            error_code: 2,
        })
    }
}

/// The engine's hardware in software: three VMCSs and which one is current, so that the
/// property also covers "the engine only touches the VMCS it made current".
#[derive(Clone, Debug, Default)]
struct SoftHardware {
    vmcs01: AnyVmcs,
    vmcs02: AnyVmcs,
    shadow: AnyVmcs,
}

impl NestedHardware for SoftHardware {
    type Vmcs01 = AnyVmcs;
    type Vmcs02 = AnyVmcs;
    type Shadow = AnyVmcs;

    fn vmcs01(&mut self) -> &mut AnyVmcs {
        &mut self.vmcs01
    }
    fn vmcs02(&mut self) -> &mut AnyVmcs {
        &mut self.vmcs02
    }
    fn shadow(&mut self) -> &mut AnyVmcs {
        &mut self.shadow
    }
}

/// The slow way: everything copied, checked and rebuilt at every step.
#[derive(Clone, Debug)]
struct Slow {
    vmx: NestedVmx,
    hw: SoftHardware,
    guest: Guest,
    msrs: Msrs,
}

/// The MSRs outside the VMCSs, for vmcs12's MSR areas: a processor with every MSR of the
/// bitmap's two ranges (the rest #GP), and l1-hv's emulation of IA32_APIC_BASE (its bitmap makes
/// that and the MSRs outside the ranges exit; those #GP).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msrs {
    hardware: BTreeMap<u32, u64>,
    apic_base: u64,
    bitmap: Box<[u8; 4096]>,
}

impl Msrs {
    fn new() -> Self {
        let mut bitmap = Box::new([0u8; 4096]);
        for write in [false, true] {
            let bit = msr_bitmap_bit(x86::msr::IA32_APIC_BASE, write).expect("in range");
            bitmap[bit as usize / 8] |= 1 << (bit % 8);
        }
        Msrs {
            hardware: BTreeMap::new(),
            apic_base: 0xFEE0_0900,
            bitmap,
        }
    }
}

impl MsrBus for Msrs {
    fn l2_bitmap(&self) -> &[u8; 4096] {
        &self.bitmap
    }

    fn read_hardware(&mut self, msr: u32) -> Result<u64, MsrFault> {
        msr_bitmap_bit(msr, false)
            .map(|_| self.hardware.get(&msr).copied().unwrap_or(0))
            .ok_or(MsrFault)
    }

    fn write_hardware(&mut self, msr: u32, value: u64) -> Result<(), MsrFault> {
        msr_bitmap_bit(msr, true).ok_or(MsrFault)?;
        self.hardware.insert(msr, value);
        Ok(())
    }

    fn read_emulated(&mut self, msr: u32, _: &mut impl Vmcs) -> Result<u64, MsrFault> {
        (msr == x86::msr::IA32_APIC_BASE)
            .then_some(self.apic_base)
            .ok_or(MsrFault)
    }

    fn write_emulated(&mut self, msr: u32, value: u64, _: &mut impl Vmcs) -> Result<(), MsrFault> {
        if msr != x86::msr::IA32_APIC_BASE {
            return Err(MsrFault);
        }
        self.apic_base = value;
        Ok(())
    }
}

/// The engine.
#[derive(Clone, Debug)]
struct Fast {
    engine: NestedVcpu,
    hw: SoftHardware,
    guest: Guest,
    msrs: Msrs,
}

/// How an entry attempt ended, comparable across the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Instruction(Outcome),
    Entry(Entry),
}

fn base_vmcs12(base: u8) -> SoftVmcs {
    match base % 3 {
        0 => good_vmcs12(),
        1 => real_mode_vmcs12(),
        _ => {
            let mut v = good_vmcs12();
            let ia32e = u64::from(x86::vmx::vmcs::control::EntryControls::IA32E_MODE_GUEST.bits());
            let entry = v.read(control::VMENTRY_CONTROLS);
            v.write(control::VMENTRY_CONTROLS, entry & !ia32e);
            v.write(
                control::SECONDARY_PROCBASED_EXEC_CONTROLS,
                x86::vmx::vmcs::control::SecondaryControls::ENABLE_VPID
                    .bits()
                    .into(),
            );
            v.write(guest::IA32_EFER_FULL, 0);
            v.write(guest::CS_ACCESS_RIGHTS, 0xC09B);
            v.write(guest::CR3, crate::config::PDPT);
            v
        }
    }
}

fn initial_guest(base: u8) -> Guest {
    let mut ram = entry_ram();
    let mut region = [0u8; VMCS_REGION_SIZE];
    base_vmcs12(base).to_region(&mut region);
    ram.put(VMCS_A, &region);
    ram.put(VMCS_B, &region);
    ram.put(VMXON, &VMCS12_REVISION_ID.to_le_bytes());
    let mut regs = [0; 16];
    regs[Gpr::Rbx as usize] = SCRATCH;
    Guest { ram, regs }
}

fn l2_inherited(debugctl: u64) -> L2Inherited {
    L2Inherited {
        efer: 0x501,
        pat: 0x0007_0406_0007_0406,
        dr7: 0x400,
        debugctl,
    }
}

/// Runs both through every step and checks the properties; panics on a violation.
pub fn check(input: &Input) {
    run(input);
}

/// [`check`], returning how many nested entries resumed L3 after an exit: the skipping paths.
fn run(input: &Input) -> usize {
    let mut resumed_after_exit = 0;
    let mut exited = false;
    let shadowing = input.shadow & 1 != 0;
    let guest_misc = if input.shadow & 4 != 0 {
        MISC_VMWRITE_ANY_FIELD
    } else {
        0
    };
    let mut caps = host_caps().for_guest(shadowing);
    caps.misc = caps.misc & !MISC_VMWRITE_ANY_FIELD | guest_misc;
    let host_misc = if input.shadow & 2 != 0 {
        MISC_VMWRITE_ANY_FIELD
    } else {
        0
    };
    let policy = shadowing.then(|| ShadowPolicy::new(host_misc, guest_misc));
    assert!(ENTRY_RAM_SIZE as u64 > SCRATCH + 8);

    let guest = initial_guest(input.base);
    let mut slow = Slow {
        vmx: NestedVmx::new(caps, GUEST_PHYS_ADDR_BITS),
        hw: SoftHardware::default(),
        guest: guest.clone(),
        msrs: Msrs::new(),
    };
    let mut fast = Fast {
        engine: NestedVcpu::new(caps, GUEST_PHYS_ADDR_BITS, policy),
        hw: SoftHardware::default(),
        guest,
        msrs: Msrs::new(),
    };
    for hw in [&mut slow.hw, &mut fast.hw] {
        write_l1_host_state(&mut hw.vmcs01);
        write_l1_host_state(&mut hw.vmcs02);
    }
    // VMXON and VMPTRLD A, as a guest hypervisor starts.
    for (reason, pointer) in [(exit_reason::VMXON, VMXON), (exit_reason::VMPTRLD, VMCS_A)] {
        let slow_outcome = slow_pointer_instruction(&mut slow, policy.as_ref(), reason, pointer);
        let fast_outcome = fast_pointer_instruction(&mut fast, reason, pointer);
        assert_eq!(slow_outcome, Outcome::Succeed);
        assert_eq!(fast_outcome, Outcome::Succeed);
    }
    let mut in_l3 = false;
    let mut debugctl = 0;
    compare(&slow, &fast);
    for step in &input.steps {
        let action = step.action();
        if in_l3 != (action == Action::L3Exit) {
            // While L3 runs the guest hypervisor does nothing, and L3 exits only from L3.
            continue;
        }
        match action {
            Action::Write(field) => {
                let Some(current) = slow.vmx.current_vmcs12() else {
                    continue;
                };
                let old = current.read(field.encoding());
                let value = match step.how % 4 {
                    0 => old | 1 << (step.value % 64),
                    1 => old & !(1 << (step.value % 64)),
                    2 => step.value,
                    _ => old.wrapping_add(step.value),
                };
                if policy.is_some_and(|p| p.shadows_write(field)) {
                    // The guest's VMWRITE goes to the shadow, without an exit; the processor
                    // keeps the field's width (SDM 24.11.2).
                    let value = value & field.access_mask();
                    slow.hw.shadow.write(field.encoding(), value);
                    fast.hw.shadow.write(field.encoding(), value);
                } else {
                    let a = access(&mut slow.vmx, &mut slow.guest, false, field, value);
                    let b = fast_access(&mut fast, false, field, value);
                    assert_eq!(a, b, "VMWRITE {field:?}");
                }
            }
            Action::Read(field) => {
                if slow.vmx.current_vmcs12().is_none() {
                    continue;
                }
                if policy.is_some_and(|p| p.shadows_read(field)) {
                    assert_eq!(
                        slow.hw.shadow.read(field.encoding()),
                        fast.hw.shadow.read(field.encoding()),
                        "shadowed VMREAD {field:?}"
                    );
                } else {
                    let a = access(&mut slow.vmx, &mut slow.guest, true, field, 0);
                    let b = fast_access(&mut fast, true, field, 0);
                    assert_eq!(a, b, "VMREAD {field:?}");
                    assert_eq!(
                        slow.guest.regs[Gpr::Rcx as usize],
                        fast.guest.regs[Gpr::Rcx as usize]
                    );
                }
            }
            action @ (Action::Vmptrld(b) | Action::Vmclear(b)) => {
                let reason = if matches!(action, Action::Vmptrld(_)) {
                    exit_reason::VMPTRLD
                } else {
                    exit_reason::VMCLEAR
                };
                let pointer = if b { VMCS_B } else { VMCS_A };
                let a = slow_pointer_instruction(&mut slow, policy.as_ref(), reason, pointer);
                let b = fast_pointer_instruction(&mut fast, reason, pointer);
                assert_eq!(a, b, "{action:?}");
            }
            Action::Enter { wrong } => {
                let clear = slow
                    .vmx
                    .current_vmcs12()
                    .is_some_and(|v| v.launch_state() == LaunchState::Clear);
                let ctx = EntryContext {
                    caps: &caps,
                    phys_addr_bits: GUEST_PHYS_ADDR_BITS,
                    ia32e_mode: true,
                    l2_debugctl: debugctl,
                };
                let a = slow_enter(&mut slow, policy.as_ref(), &ctx, clear != wrong);
                let b = fast_enter(&mut fast, &ctx, clear != wrong);
                assert_eq!(a, b, "entry");
                in_l3 = a == Ended::Entry(Entry::L3);
                if in_l3 && exited {
                    resumed_after_exit += 1;
                }
            }
            Action::Debugctl(value) => debugctl = value,
            Action::L3Exit => {
                in_l3 = false;
                exited = true;
                let (kind, qualification) = (step.arg, step.value);
                for hw in [&mut slow.hw, &mut fast.hw] {
                    l3_runs(
                        &mut hw.vmcs02,
                        step.value as u16,
                        (step.value >> 16) as u16,
                        step.how,
                        kind,
                        qualification,
                    );
                }
                let fields = if kind % 4 == 2 {
                    ExitFields::Rewritten {
                        reason: exit_reason::EPT_VIOLATION.into(),
                        qualification: qualification & 0xFFF,
                    }
                } else {
                    ExitFields::FromVmcs02
                };
                let a = slow_l3_exit(&mut slow, policy.as_ref(), fields);
                let b = fast.engine.l3_exit(
                    &mut fast.hw,
                    fields,
                    &mut fast.guest,
                    GUEST_PHYS_ADDR_BITS,
                    &mut fast.msrs,
                );
                assert_eq!(a, b.is_ok(), "L3 exit");
            }
        }
        compare(&slow, &fast);
    }
    resumed_after_exit
}

fn pointer_instruction(
    vmx: &mut NestedVmx,
    guest: &mut Guest,
    reason: u16,
    pointer: u64,
) -> Outcome {
    guest.ram.put(SCRATCH, &pointer.to_le_bytes());
    match reason {
        exit_reason::VMXON => vmx.vmxon(&LONG_MODE, 0b101, guest, &AT_RBX),
        exit_reason::VMPTRLD => vmx.vmptrld(&LONG_MODE, guest, &AT_RBX),
        _ => vmx.vmclear(&LONG_MODE, guest, &AT_RBX),
    }
}

fn slow_pointer_instruction(
    slow: &mut Slow,
    policy: Option<&ShadowPolicy>,
    reason: u16,
    pointer: u64,
) -> Outcome {
    if let (Some(policy), Some(vmcs12)) = (policy, slow.vmx.current_vmcs12_mut()) {
        if reason != exit_reason::VMXON {
            sync_from_shadow(policy, &slow.hw.shadow, vmcs12);
        }
    }
    let before = slow.vmx.current_vmcs_pointer();
    let outcome = pointer_instruction(&mut slow.vmx, &mut slow.guest, reason, pointer);
    if let (Some(policy), Some(vmcs12), true) = (
        policy,
        slow.vmx.current_vmcs12(),
        slow.vmx.current_vmcs_pointer() != before,
    ) {
        sync_to_shadow(policy, vmcs12, &mut slow.hw.shadow);
    }
    outcome
}

fn fast_pointer_instruction(fast: &mut Fast, reason: u16, pointer: u64) -> Outcome {
    let guest = &mut fast.guest;
    fast.engine
        .instruction(&mut fast.hw, reason, |vmx| {
            pointer_instruction(vmx, guest, reason, pointer)
        })
        .0
}

/// An emulated VMREAD (`read`) or VMWRITE of `field` with RAX = encoding, RCX = value.
fn access(vmx: &mut NestedVmx, guest: &mut Guest, read: bool, field: Field, value: u64) -> Outcome {
    guest.regs[Gpr::Rax as usize] = u64::from(field.encoding());
    guest.regs[Gpr::Rcx as usize] = value;
    let operands = FieldAccessOperands {
        rm: Operand::Register(Gpr::Rcx),
        field: Gpr::Rax,
    };
    if read {
        vmx.vmread(&LONG_MODE, guest, &operands)
    } else {
        vmx.vmwrite(&LONG_MODE, guest, &operands)
    }
}

fn fast_access(fast: &mut Fast, read: bool, field: Field, value: u64) -> Outcome {
    let reason = if read {
        exit_reason::VMREAD
    } else {
        exit_reason::VMWRITE
    };
    let guest = &mut fast.guest;
    fast.engine
        .instruction(&mut fast.hw, reason, |vmx| {
            access(vmx, guest, read, field, value)
        })
        .0
}

fn needs(debugctl: u64) -> nvmx::nested::L1Needs {
    l1_needs(l2_inherited(debugctl))
}

fn slow_enter(
    slow: &mut Slow,
    policy: Option<&ShadowPolicy>,
    ctx: &EntryContext<'_>,
    launch: bool,
) -> Ended {
    let outcome = if launch {
        slow.vmx.vmlaunch(&LONG_MODE, false)
    } else {
        slow.vmx.vmresume(&LONG_MODE, false)
    };
    if outcome != (Outcome::Enter { launch }) {
        return Ended::Instruction(outcome);
    }
    let Some(vmcs12) = slow.vmx.current_vmcs12_mut() else {
        return Ended::Entry(Entry::NoVmcs12);
    };
    if let Some(policy) = policy {
        sync_from_shadow(policy, &slow.hw.shadow, vmcs12);
    }
    if let Err(failure) = check_vmcs12(vmcs12, &slow.guest, ctx) {
        failure.write_to(vmcs12);
        return Ended::Entry(match failure {
            EntryFailure::VmFailValid(error) => Entry::FailValid(error),
            EntryFailure::Exit { .. } => slow_to_host(slow, policy, ctx.phys_addr_bits),
        });
    }
    prepare_vmcs02(
        vmcs12,
        &mut slow.hw.vmcs02,
        &needs(ctx.l2_debugctl),
        &slow.guest,
    );
    if let Err(failed) = load_entry_msrs(vmcs12, &mut slow.hw.vmcs02, &slow.guest, &mut slow.msrs) {
        EntryFailure::msr_loading(failed).write_to(vmcs12);
        return Ended::Entry(slow_to_host(slow, policy, ctx.phys_addr_bits));
    }
    let Some(vmcs12) = slow.vmx.current_vmcs12_mut() else {
        return Ended::Entry(Entry::NoVmcs12);
    };
    if launch {
        vmcs12.set_launch_state(LaunchState::Launched);
    }
    Ended::Entry(Entry::L3)
}

fn fast_enter(fast: &mut Fast, ctx: &EntryContext<'_>, launch: bool) -> Ended {
    let reason = if launch {
        exit_reason::VMLAUNCH
    } else {
        exit_reason::VMRESUME
    };
    let (outcome, _) = fast.engine.instruction(&mut fast.hw, reason, |vmx| {
        if launch {
            vmx.vmlaunch(&LONG_MODE, false)
        } else {
            vmx.vmresume(&LONG_MODE, false)
        }
    });
    if outcome != (Outcome::Enter { launch }) {
        return Ended::Instruction(outcome);
    }
    let debugctl = ctx.l2_debugctl;
    Ended::Entry(fast.engine.enter(
        &mut fast.hw,
        &fast.guest,
        ctx,
        launch,
        |_, _| needs(debugctl),
        &mut fast.msrs,
    ))
}

/// What L3 changes while it runs (low bits of RIP and RSP, arithmetic flags from `flags` bits
/// 5:0), and the exit it takes (`kind` % 4: a #PF, CPUID, an EPT violation, a VM-entry failure
/// of vmcs02 on guest state).
fn l3_runs(vmcs02: &mut AnyVmcs, rip: u16, rsp: u16, flags: u8, kind: u8, qualification: u64) {
    const ARITHMETIC: [u64; 6] = [1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 7, 1 << 11];
    let rflags = ARITHMETIC.iter().enumerate().fold(
        vmcs02.read(guest::RFLAGS) & !ARITHMETIC.iter().sum::<u64>(),
        |acc, (i, &bit)| acc | if flags >> i & 1 != 0 { bit } else { 0 },
    );
    vmcs02.write(guest::RFLAGS, rflags);
    vmcs02.write(
        guest::RIP,
        vmcs02.read(guest::RIP) & !0xFFFF | u64::from(rip),
    );
    vmcs02.write(
        guest::RSP,
        vmcs02.read(guest::RSP) & !0xFFFF | u64::from(rsp),
    );
    // A VM exit clears the valid bit of the VM-entry interruption information (SDM 28.2).
    let entry_info = vmcs02.read(control::VMENTRY_INTERRUPTION_INFO_FIELD);
    vmcs02.write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        entry_info & !(1 << 31),
    );
    let (reason, info) = match kind % 4 {
        0 => (u64::from(exit_reason::EXCEPTION_OR_NMI), 0x8000_0B0E),
        1 => (u64::from(exit_reason::CPUID), 0),
        2 => (u64::from(exit_reason::EPT_VIOLATION), 0),
        _ => (
            u64::from(exit_reason::ENTRY_FAILURE_GUEST_STATE) | 1 << 31,
            0,
        ),
    };
    vmcs02.write(ro::EXIT_REASON, reason);
    vmcs02.write(ro::EXIT_QUALIFICATION, qualification);
    vmcs02.write(ro::VMEXIT_INTERRUPTION_INFO, info);
    vmcs02.write(ro::VMEXIT_INSTRUCTION_LEN, 2);
    vmcs02.write(ro::GUEST_PHYSICAL_ADDR_FULL, qualification & !0xFFF);
}

fn slow_l3_exit(slow: &mut Slow, policy: Option<&ShadowPolicy>, fields: ExitFields) -> bool {
    let Some(vmcs12) = slow.vmx.current_vmcs12_mut() else {
        return true;
    };
    reflect_exit(&slow.hw.vmcs02, vmcs12, fields);
    let entry_failure = vmcs12.read(ro::EXIT_REASON) & 1 << 31 != 0;
    if !entry_failure
        && store_exit_msrs(vmcs12, &mut slow.hw.vmcs02, &mut slow.guest, &mut slow.msrs).is_err()
    {
        return false;
    }
    slow_to_host(slow, policy, GUEST_PHYS_ADDR_BITS) == Entry::FailureExit
}

/// vmcs12's host state and VM-exit MSR-load area into vmcs01, then the shadow (SDM 28.5, 28.6,
/// 27.8): `FailureExit` when done, `Abort` on a VMX abort.
fn slow_to_host(slow: &mut Slow, policy: Option<&ShadowPolicy>, phys_addr_bits: u8) -> Entry {
    let Some(vmcs12) = slow.vmx.current_vmcs12_mut() else {
        return Entry::NoVmcs12;
    };
    let loaded = load_l2_host_state(vmcs12, &mut slow.hw.vmcs01, &slow.guest, phys_addr_bits)
        .and_then(|()| load_exit_msrs(vmcs12, &mut slow.hw.vmcs01, &slow.guest, &mut slow.msrs));
    if let Err(abort) = loaded {
        return Entry::Abort(abort);
    }
    if let Some(policy) = policy {
        sync_to_shadow(policy, vmcs12, &mut slow.hw.shadow);
    }
    Entry::FailureExit
}

/// The properties that hold after every step (see the module documentation).
fn compare(slow: &Slow, fast: &Fast) {
    assert_eq!(slow.msrs, fast.msrs, "MSRs differ");
    assert!(slow.hw.vmcs01.same_as(&fast.hw.vmcs01), "vmcs01 differs");
    assert!(slow.hw.vmcs02.same_as(&fast.hw.vmcs02), "vmcs02 differs");
    assert!(
        slow.hw.shadow.same_as(&fast.hw.shadow),
        "shadow VMCS differs"
    );
    assert_eq!(
        slow.vmx.current_vmcs_pointer(),
        fast.engine.vmx().current_vmcs_pointer()
    );
    assert!(
        slow.guest.ram.bytes() == fast.guest.ram.bytes(),
        "guest memory differs"
    );
    // L3's rarely read state may still be in vmcs02: equal once synced.
    let mut synced = fast.clone();
    synced.engine.sync_l3_state(&mut synced.hw);
    assert_eq!(
        slow.vmx.current_vmcs12(),
        synced.engine.vmx().current_vmcs12(),
        "vmcs12 differs"
    );
    // Every field the guest hypervisor reads without an exit is exact without the sync.
    if let (Some(a), Some(b)) = (
        slow.vmx.current_vmcs12(),
        fast.engine.vmx().current_vmcs12(),
    ) {
        for &field in &SHADOWED {
            assert_eq!(
                a.read(field),
                b.read(field),
                "shadowed field {field:#x} of vmcs12"
            );
        }
    }
}

/// The behaviour class of an input, for the seed corpus: its configuration and how many
/// entries, exits and writes it has (up to 4 each).
pub fn classify(input: &Input) -> String {
    let count =
        |f: fn(&Action) -> bool| input.steps.iter().filter(|s| f(&s.action())).count().min(4);
    let enters = count(|a| matches!(a, Action::Enter { .. }));
    let exits = count(|a| matches!(a, Action::L3Exit));
    let writes = count(|a| matches!(a, Action::Write(_)));
    format!(
        "base{}-shadow{}-enter{enters}-exit{exits}-write{writes}",
        input.base % 3,
        input.shadow & 7
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few thousand pseudo-random sequences of 60 steps (xorshift64*, fixed seed) through the
    /// properties, so that `cargo test` in `fuzz/` exercises the target without libFuzzer.
    #[test]
    fn random_sequences_equal_the_slow_way() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut resumed = 0;
        for _ in 0..3000 {
            let (base, shadow) = (next() as u8, next() as u8);
            let steps = (0..60)
                .map(|_| Step {
                    op: next() as u8,
                    arg: next() as u8,
                    how: next() as u8,
                    value: next(),
                })
                .collect();
            resumed += run(&Input {
                base,
                shadow,
                steps,
            });
        }
        // The sequences do reach the paths that skip work.
        assert!(resumed > 1000, "{resumed} entries after an exit");
    }
}
