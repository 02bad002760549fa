//! Target `insn`: a sequence of VMX instructions emulated by one [`NestedVmx`] for a guest
//! hypervisor with a few pages of RAM, some pre-formatted as VMXON and vmcs12 regions.
//!
//! Properties, after every step (SDM vol. 3 chapter 31):
//! - no panic;
//! - #UD in real, virtual-8086 or compatibility mode, with CR4.VMXE = 0, and outside VMX operation
//!   for every instruction but VMXON; #GP(0) at CPL > 0 in VMX operation (31.3 "Operation");
//! - an instruction that faults or fails (VMfailInvalid, VMfailValid) changes nothing: VMX
//!   operation, VMXON pointer, current-VMCS pointer, the current vmcs12, registers and memory,
//!   except the VM-instruction error field, which VMfailValid sets to its error (31.2);
//! - VMfailValid only with a current VMCS; VMfailInvalid only without one, or for
//!   VMLAUNCH/VMRESUME of a shadow VMCS (31.2, 24.10);
//! - RFLAGS: VMsucceed clears CF, PF, AF, ZF, SF, OF; VMfailInvalid sets only CF of them,
//!   VMfailValid only ZF; every other bit is kept (31.2);
//! - what succeeds did what it says: VMXON enters VMX operation with that pointer and no current
//!   VMCS; VMXOFF leaves it; VMPTRLD makes the VMCS current; VMPTRST stores the pointer (all ones
//!   without one); VMCLEAR clears the launch state in memory and drops a current VMCS it names;
//!   VMREAD stores the field; VMWRITE changes exactly that field; VMLAUNCH/VMRESUME enter only a
//!   clear/launched ordinary VMCS; INVEPT/INVVPID only ask for invalidations the SDM allows;
//! - always: a current VMCS only in VMX operation, never the VMXON region, pointers 4 KiB-aligned
//!   within the physical-address width.

use crate::config::{good_vmcs12, host_caps};
use crate::memory::Ram;
use arbitrary::Arbitrary;
use nvmx::insn::{
    decode_field_access, decode_invalidation, decode_pointer_operand, eptp_valid, AddressSize,
    Fault, FieldAccessOperands, Gpr, GuestMemory, GuestMode, GuestOperands, Invalidation,
    InvalidationOperands, MemOperand, NestedVmx, NotRam, Operand, Outcome, Segment,
};
use shadow_vmcs::{
    supported_fields, Field, LaunchState, SoftVmcs, Vmcs, VMCS12_REVISION_ID, VMCS_REGION_SIZE,
};
use x86::vmx::vmcs::ro;

/// Guest RAM: eight pages.
pub const RAM_SIZE: usize = 0x8000;
/// A VMXON region (vmcs12 revision).
pub const VMXON: u64 = 0x1000;
/// A clear vmcs12 holding [`good_vmcs12`].
pub const VMCS_A: u64 = 0x2000;
/// A launched vmcs12.
pub const VMCS_B: u64 = 0x3000;
/// A shadow VMCS (revision with bit 31).
pub const SHADOW: u64 = 0x4000;
/// A region with a foreign revision identifier.
pub const BAD_REVISION: u64 = 0x5000;
/// Where `[rbx]` points: memory operands and INVEPT/INVVPID descriptors.
pub const SCRATCH: u64 = 0x7000;
/// Page-aligned, within every width the harness uses (≥ 32 bits), not RAM.
pub const MMIO: u64 = 0x10_0000;
/// INVEPT single-context EPTP that VM entry would accept (WB, 4-level).
pub const GOOD_EPTP: u64 = 0x5000 | 3 << 3 | 6;

const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;
/// The six flags VMX instructions report through (SDM 31.2).
const STATUS_FLAGS: u64 = CF | PF | AF | ZF | SF | OF;

/// The whole input: the vCPU's configuration, then the steps.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Physical-address width: 32 + this % 21 (MAXPHYADDR is 32..=52 on real processors).
    pub phys_addr_bits: u8,
    /// Whether VMCS shadowing is offered (shadow VMCSs may be made current).
    pub offer_shadowing: bool,
    /// The instructions.
    pub steps: Vec<Step>,
}

/// What a step does.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Vmxon,
    Vmxoff,
    Vmclear,
    Vmptrld,
    Vmptrst,
    Vmread,
    Vmwrite,
    Vmlaunch,
    Vmresume,
    Invept,
    Invvpid,
    /// Not an instruction: stores `value` at guest-physical `extra % RAM_SIZE` (another vCPU or
    /// DMA changing memory under the emulator).
    Poke,
    /// Not an instruction: sets register `arg % 16` to `value`.
    SetRegister,
}

/// One step. Bytes have one meaning per [`Op`]; see [`Step::mode`] and the operand helpers.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The instruction (or harness action).
    pub op: Op,
    /// Below 0xC000: 64-bit mode at CPL 0 (the common case, so that sequences go deep); else
    /// bit 0 CR0.PE, 1 CR0.NE, 2 CR0.PG, 3 CR4.VMXE, 4 RFLAGS.VM, 5 EFER.LMA, 6 CS.L,
    /// 8:7 CPL, 9 a CR0 bit outside IA32_VMX_CR0_FIXED1, 10 a CR4 bit outside FIXED1.
    pub mode: u16,
    /// Operand form: below 0xE0 the canonical one (`[rbx]`, `vmread rcx, rax` / `vmread [rbx],
    /// rax` by bit 0, type in RAX); else decoded from `info` and `qualification` as the
    /// instruction-information and exit-qualification fields of the exit.
    pub form: u8,
    /// Instruction information (decoded forms).
    pub info: u32,
    /// Exit qualification: the displacement (decoded forms).
    pub qualification: u64,
    /// Which pointer, field or type: see [`pointer`], [`field_encoding`], [`invalidation_type`].
    pub arg: u8,
    /// A raw pointer, the VMWRITE source, a descriptor's low quadword, a poked or register value.
    pub value: u64,
    /// A raw field or type, a descriptor's high quadword, IA32_FEATURE_CONTROL, a poke address;
    /// bit 0 also says whether a VMLAUNCH that may enter is completed (launch state set).
    pub extra: u64,
}

impl Step {
    fn guest_mode(&self) -> GuestMode {
        if self.mode < 0xC000 {
            return GuestMode {
                cr0: 0x8000_0031,
                cr4: 0x2020,
                rflags: 0x2,
                long_mode_active: true,
                cs_long: true,
                cpl: 0,
            };
        }
        let bit = |n: u32| self.mode & 1 << n != 0;
        let flag = |n: u32, value: u64| if bit(n) { value } else { 0 };
        GuestMode {
            cr0: flag(0, 1) | flag(1, 0x20) | flag(2, 1 << 31) | flag(9, 1 << 40) | 0x10,
            cr4: flag(3, 1 << 13) | flag(10, 1 << 24) | 0x20,
            rflags: flag(4, 1 << 17) | 0x2,
            long_mode_active: bit(5),
            cs_long: bit(6),
            cpl: ((self.mode >> 7) & 3) as u8,
        }
    }

    fn canonical(&self) -> bool {
        self.form < 0xE0
    }
}

/// The pointer VMXON/VMCLEAR/VMPTRLD find at `[rbx]`: the prepared regions, addresses each check
/// rejects, or `value`.
pub fn pointer(arg: u8, value: u64, phys_addr_bits: u8) -> u64 {
    match arg % 10 {
        0 => VMXON,
        1 => VMCS_A,
        2 => VMCS_B,
        3 => SHADOW,
        4 => BAD_REVISION,
        5 => MMIO,
        6 => VMCS_A + 8,
        7 => 1 << phys_addr_bits,
        8 => SCRATCH & !0xFFF,
        _ => value,
    }
}

/// The field encoding in RAX: mostly a supported field (FULL or, bit 7, HIGH access), else raw.
pub fn field_encoding(arg: u8, extra: u64) -> u64 {
    if arg >= 0xF0 {
        return extra;
    }
    let fields: Vec<Field> = supported_fields().collect();
    let field = fields[usize::from(arg & 0x7F) % fields.len()];
    let field = if arg & 0x80 != 0 {
        field.high().unwrap_or(field)
    } else {
        field
    };
    u64::from(field.encoding())
}

/// The INVEPT/INVVPID type in RAX: 0..=4 mostly, else raw.
pub fn invalidation_type(arg: u8, extra: u64) -> u64 {
    if arg >= 0xF0 {
        extra
    } else {
        u64::from(arg % 5)
    }
}

/// The guest hypervisor's vCPU: flat segments, paging off for operands (linear = physical).
#[derive(Clone, Debug)]
pub struct Guest {
    /// RAM with its undo log.
    pub ram: Ram,
    /// RAX..R15.
    pub regs: [u64; 16],
}

impl Guest {
    /// RAM with the prepared regions, RBX pointing at [`SCRATCH`].
    pub fn new() -> Self {
        let mut ram = Ram::new(RAM_SIZE);
        let mut region = [0u8; VMCS_REGION_SIZE];
        good_vmcs12().to_region(&mut region);
        ram.put(VMCS_A, &region);
        let mut launched = good_vmcs12();
        launched.set_launch_state(LaunchState::Launched);
        launched.to_region(&mut region);
        ram.put(VMCS_B, &region);
        ram.put(VMXON, &VMCS12_REVISION_ID.to_le_bytes());
        ram.put(SHADOW, &(VMCS12_REVISION_ID | 1 << 31).to_le_bytes());
        ram.put(BAD_REVISION, &(VMCS12_REVISION_ID ^ 1).to_le_bytes());
        let mut regs = [0; 16];
        regs[Gpr::Rbx as usize] = SCRATCH;
        Guest { ram, regs }
    }

    fn linear(&self, operand: &MemOperand) -> u64 {
        operand.offset(|r| self.regs[r as usize])
    }
}

impl Default for Guest {
    fn default() -> Self {
        Self::new()
    }
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
        let linear = self.linear(operand);
        self.ram.read(linear, buf).map_err(|_| Fault::Pf {
            linear,
            error_code: 0,
        })
    }
    fn write_memory(&mut self, operand: &MemOperand, data: &[u8]) -> Result<(), Fault> {
        let linear = self.linear(operand);
        self.ram.write(linear, data).map_err(|_| Fault::Pf {
            linear,
            error_code: 2,
        })
    }
}

/// `[rbx]`, DS, 64-bit addressing.
const AT_RBX: MemOperand = MemOperand {
    segment: Segment::Ds,
    base: Some(Gpr::Rbx),
    index: None,
    displacement: 0,
    address_size: AddressSize::Bits64,
};

/// What the emulator's state was before a step.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    in_vmx: bool,
    vmxon: Option<u64>,
    current: Option<u64>,
    vmcs12: Option<SoftVmcs>,
}

impl State {
    fn of(vmx: &NestedVmx) -> Self {
        State {
            in_vmx: vmx.in_vmx_operation(),
            vmxon: vmx.vmxon_pointer(),
            current: vmx.current_vmcs_pointer(),
            vmcs12: vmx.current_vmcs12().cloned(),
        }
    }
}

/// Runs every step and checks the properties; panics (a libFuzzer finding) on a violation.
pub fn check(input: &Input) {
    let bits = 32 + input.phys_addr_bits % 21;
    let caps = host_caps().for_guest(input.offer_shadowing);
    let mut vmx = NestedVmx::new(caps, bits);
    let mut guest = Guest::new();
    for step in &input.steps {
        run_step(&mut vmx, &mut guest, step, bits);
        always(&vmx, bits);
    }
}

/// The class of a run for the `seeds` binary: the deepest state reached and the last outcome
/// of each instruction.
pub fn classify(input: &Input) -> String {
    let bits = 32 + input.phys_addr_bits % 21;
    let mut vmx = NestedVmx::new(host_caps().for_guest(input.offer_shadowing), bits);
    let mut guest = Guest::new();
    let mut class = String::new();
    for step in &input.steps {
        if let Some(outcome) = execute(&mut vmx, &mut guest, step, bits) {
            class = format!("{:?}-{}", step.op, outcome_name(&outcome));
        }
    }
    let depth = match (vmx.in_vmx_operation(), vmx.current_vmcs_pointer()) {
        (false, _) => "off",
        (true, None) => "root",
        (true, Some(_)) => "current",
    };
    format!("{depth}-{class}")
}

fn outcome_name(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Fault(fault) => format!("{fault:?}").chars().take(2).collect(),
        Outcome::FailValid(error) => format!("fail{}", *error as u32),
        other => format!("{other:?}")
            .split([' ', '(', '{'])
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

/// An instruction's decoded operands.
enum Operands {
    None,
    Pointer(MemOperand),
    Field(FieldAccessOperands),
    Invalidation(InvalidationOperands),
}

/// Puts the step's operand values in registers and memory (not a guest action, so unlogged) and
/// returns the operands; `None` for instruction-information values the SDM leaves undefined,
/// which hardware never reports.
fn operands(guest: &mut Guest, step: &Step, bits: u8) -> Option<Operands> {
    let decoded = !step.canonical();
    if !decoded {
        guest.regs[Gpr::Rbx as usize] = SCRATCH;
    }
    Some(match step.op {
        Op::Vmxon | Op::Vmclear | Op::Vmptrld | Op::Vmptrst if decoded => {
            Operands::Pointer(decode_pointer_operand(step.info, step.qualification).ok()?)
        }
        Op::Vmxon | Op::Vmclear | Op::Vmptrld | Op::Vmptrst => {
            guest
                .ram
                .put(SCRATCH, &pointer(step.arg, step.value, bits).to_le_bytes());
            Operands::Pointer(AT_RBX)
        }
        Op::Vmread | Op::Vmwrite if decoded => {
            Operands::Field(decode_field_access(step.info, step.qualification).ok()?)
        }
        Op::Vmread | Op::Vmwrite => {
            guest.regs[Gpr::Rax as usize] = field_encoding(step.arg, step.extra);
            guest.regs[Gpr::Rcx as usize] = step.value;
            guest.ram.put(SCRATCH, &step.value.to_le_bytes());
            let rm = if step.form & 1 == 0 {
                Operand::Register(Gpr::Rcx)
            } else {
                Operand::Memory(AT_RBX)
            };
            Operands::Field(FieldAccessOperands {
                rm,
                field: Gpr::Rax,
            })
        }
        Op::Invept | Op::Invvpid if decoded => {
            Operands::Invalidation(decode_invalidation(step.info, step.qualification).ok()?)
        }
        Op::Invept | Op::Invvpid => {
            guest.regs[Gpr::Rax as usize] = invalidation_type(step.arg, step.extra);
            let low = match step.arg % 3 {
                0 => GOOD_EPTP,
                1 => step.value & 0xFFFF,
                _ => step.value,
            };
            guest.ram.put(SCRATCH, &low.to_le_bytes());
            guest.ram.put(SCRATCH + 8, &step.extra.to_le_bytes());
            Operands::Invalidation(InvalidationOperands {
                kind: Gpr::Rax,
                descriptor: AT_RBX,
            })
        }
        Op::Vmxoff | Op::Vmlaunch | Op::Vmresume | Op::Poke | Op::SetRegister => Operands::None,
    })
}

/// Executes the instruction of `step` with `operands`.
fn run(vmx: &mut NestedVmx, guest: &mut Guest, step: &Step, operands: &Operands) -> Outcome {
    let mode = step.guest_mode();
    let feature_control = if step.arg < 0xF0 {
        0b101
    } else {
        step.extra & 7
    };
    let blocked_by_mov_ss = step.value & 1 != 0;
    match (step.op, operands) {
        (Op::Vmxon, Operands::Pointer(m)) => vmx.vmxon(&mode, feature_control, guest, m),
        (Op::Vmclear, Operands::Pointer(m)) => vmx.vmclear(&mode, guest, m),
        (Op::Vmptrld, Operands::Pointer(m)) => vmx.vmptrld(&mode, guest, m),
        (Op::Vmptrst, Operands::Pointer(m)) => vmx.vmptrst(&mode, guest, m),
        (Op::Vmread, Operands::Field(f)) => vmx.vmread(&mode, guest, f),
        (Op::Vmwrite, Operands::Field(f)) => vmx.vmwrite(&mode, guest, f),
        (Op::Invept, Operands::Invalidation(i)) => vmx.invept(&mode, guest, i),
        (Op::Invvpid, Operands::Invalidation(i)) => vmx.invvpid(&mode, guest, i),
        (Op::Vmxoff, _) => vmx.vmxoff(&mode, guest),
        (Op::Vmlaunch, _) => vmx.vmlaunch(&mode, blocked_by_mov_ss),
        (Op::Vmresume, _) => vmx.vmresume(&mode, blocked_by_mov_ss),
        (op, _) => unreachable!("{op:?} has no instruction or its operands do not match"),
    }
}

/// Harness actions; returns whether `step` was one.
fn harness_action(guest: &mut Guest, step: &Step) -> bool {
    match step.op {
        Op::Poke => {
            let at = step.extra % (RAM_SIZE as u64 - 8);
            guest.ram.put(at, &step.value.to_le_bytes());
            true
        }
        Op::SetRegister => {
            guest.regs[usize::from(step.arg % 16)] = step.value;
            true
        }
        _ => false,
    }
}

/// The kernel sets the launch state once a VMLAUNCH's nested entry succeeded (docs/vmcs12.md);
/// `extra` bit 0 set stands for an entry that failed the later checks.
fn complete_entry(vmx: &mut NestedVmx, step: &Step, outcome: &Outcome) {
    if *outcome == (Outcome::Enter { launch: true }) && step.extra & 1 == 0 {
        if let Some(vmcs12) = vmx.current_vmcs12_mut() {
            vmcs12.set_launch_state(LaunchState::Launched);
        }
    }
}

/// Runs `step` without checking anything (for [`classify`]).
fn execute(vmx: &mut NestedVmx, guest: &mut Guest, step: &Step, bits: u8) -> Option<Outcome> {
    if harness_action(guest, step) {
        return None;
    }
    let operands = operands(guest, step, bits)?;
    let outcome = run(vmx, guest, step, &operands);
    complete_entry(vmx, step, &outcome);
    Some(outcome)
}

/// Runs `step` and checks every per-step property.
fn run_step(vmx: &mut NestedVmx, guest: &mut Guest, step: &Step, bits: u8) {
    if harness_action(guest, step) {
        return;
    }
    let Some(operands) = operands(guest, step, bits) else {
        return;
    };
    let before = State::of(vmx);
    let regs_before = guest.regs;
    guest.ram.start_logging();
    let outcome = run(vmx, guest, step, &operands);
    let after = State::of(vmx);

    check_faults(&before, &step.guest_mode(), step.op, &outcome);
    check_rflags(&outcome);
    match outcome {
        Outcome::Fault(_) | Outcome::FailInvalid | Outcome::FailValid(_) => {
            let mut expected = before.clone();
            if let Outcome::FailValid(error) = outcome {
                let vmcs12 = expected
                    .vmcs12
                    .as_mut()
                    .unwrap_or_else(|| panic!("VMfailValid without a current VMCS: {step:?}"));
                vmcs12.write(ro::VM_INSTRUCTION_ERROR, error as u64);
            }
            if outcome == Outcome::FailInvalid {
                let shadow_entry = matches!(step.op, Op::Vmlaunch | Op::Vmresume)
                    && before.vmcs12.as_ref().is_some_and(SoftVmcs::is_shadow);
                assert!(
                    before.current.is_none() || shadow_entry,
                    "VMfailInvalid with a current VMCS: {step:?}"
                );
            }
            assert_eq!(
                after, expected,
                "{outcome:?} changed the VMX state: {step:?}"
            );
            assert_eq!(
                guest.regs, regs_before,
                "{outcome:?} changed registers: {step:?}"
            );
            assert!(!guest.ram.changed(), "{outcome:?} changed memory: {step:?}");
        }
        Outcome::Succeed => check_success(&before, &after, step, guest, regs_before, bits),
        Outcome::Enter { launch } => {
            let vmcs12 = before
                .vmcs12
                .as_ref()
                .expect("entry without a current VMCS");
            assert!(!vmcs12.is_shadow(), "entry into a shadow VMCS: {step:?}");
            let expected = if launch {
                LaunchState::Clear
            } else {
                LaunchState::Launched
            };
            assert_eq!(
                vmcs12.launch_state(),
                expected,
                "entry in the wrong launch state"
            );
            assert_eq!(after, before, "VMLAUNCH/VMRESUME changed the VMX state");
            assert!(!guest.ram.changed(), "VMLAUNCH/VMRESUME changed memory");
        }
        Outcome::Invalidate(invalidation) => {
            assert_eq!(after, before, "INVEPT/INVVPID changed the VMX state");
            assert!(!guest.ram.changed(), "INVEPT/INVVPID changed memory");
            check_invalidation(&invalidation, vmx, bits);
        }
    }
    complete_entry(vmx, step, &outcome);
}

/// The #UD and #GP(0) conditions every VMX instruction checks first (SDM 31.3), restated from
/// the raw mode bits.
fn check_faults(before: &State, mode: &GuestMode, op: Op, outcome: &Outcome) {
    let undefined_mode = mode.cr0 & 1 == 0
        || mode.cr4 & 1 << 13 == 0
        || mode.rflags & 1 << 17 != 0
        || (mode.long_mode_active && !mode.cs_long);
    if undefined_mode || (!before.in_vmx && op != Op::Vmxon) {
        assert_eq!(
            *outcome,
            Outcome::Fault(Fault::Ud),
            "{op:?} must #UD in {mode:?}"
        );
    } else if before.in_vmx && mode.cpl > 0 {
        assert_eq!(
            *outcome,
            Outcome::Fault(Fault::Gp(0)),
            "{op:?} at CPL {}",
            mode.cpl
        );
    }
}

/// SDM 31.2: the status flags, and nothing else, report the outcome.
fn check_rflags(outcome: &Outcome) {
    for rflags in [0x2, 0x2 | STATUS_FLAGS | 1 << 9 | 1 << 8 | 0x3000] {
        let kept = rflags & !STATUS_FLAGS;
        let expected = match outcome {
            Outcome::Succeed | Outcome::Invalidate(_) => Some(kept),
            Outcome::FailInvalid => Some(kept | CF),
            Outcome::FailValid(_) => Some(kept | ZF),
            Outcome::Fault(_) | Outcome::Enter { .. } => None,
        };
        assert_eq!(outcome.rflags(rflags), expected, "RFLAGS after {outcome:?}");
    }
}

/// What each instruction's VMsucceed promises.
fn check_success(
    before: &State,
    after: &State,
    step: &Step,
    guest: &Guest,
    regs_before: [u64; 16],
    bits: u8,
) {
    let aligned_in_width = |p: u64| p & 0xFFF == 0 && p >> bits == 0;
    let canonical = step.canonical();
    let operand_pointer = guest.ram.u64_at(SCRATCH);
    let operand_bytes = step.guest_mode().operand_bytes();
    let truncate = |v: u64| {
        if operand_bytes == 8 {
            v
        } else {
            v & 0xFFFF_FFFF
        }
    };
    match step.op {
        Op::Vmxon => {
            let vmxon = after.vmxon.expect("VMXON succeeded outside VMX operation");
            assert!(aligned_in_width(vmxon), "VMXON accepted {vmxon:#x}");
            assert_eq!(
                guest.ram.u32_at(vmxon),
                VMCS12_REVISION_ID,
                "VMXON region revision"
            );
            assert_eq!(after.current, None, "VMXON left a current VMCS");
            if canonical {
                assert_eq!(Some(operand_pointer), after.vmxon, "VMXON pointer");
            }
        }
        Op::Vmxoff => {
            assert!(
                !after.in_vmx && after.current.is_none(),
                "VMXOFF stayed in VMX operation"
            );
        }
        Op::Vmptrld => {
            let current = after
                .current
                .expect("VMPTRLD succeeded without a current VMCS");
            assert!(aligned_in_width(current) && Some(current) != after.vmxon);
            assert_eq!(
                after.vmxon, before.vmxon,
                "VMPTRLD changed the VMXON pointer"
            );
            if canonical {
                assert_eq!(
                    current, operand_pointer,
                    "VMPTRLD made another VMCS current"
                );
            }
        }
        Op::Vmptrst => {
            assert_eq!(after, before, "VMPTRST changed the VMX state");
            if canonical {
                assert_eq!(
                    operand_pointer,
                    before.current.unwrap_or(u64::MAX),
                    "VMPTRST"
                );
            }
        }
        Op::Vmclear if canonical => {
            assert!(aligned_in_width(operand_pointer) && Some(operand_pointer) != before.vmxon);
            if before.current == Some(operand_pointer) {
                assert_eq!(
                    after.current, None,
                    "VMCLEAR kept the VMCS it cleared current"
                );
            } else {
                assert_eq!(after, before, "VMCLEAR of another VMCS changed the state");
            }
            if guest.ram.is_ram(operand_pointer, 12) {
                assert_eq!(
                    guest.ram.u32_at(operand_pointer + 8),
                    0,
                    "launch state not clear"
                );
            }
        }
        Op::Vmread if canonical => {
            assert_eq!(after, before, "VMREAD changed the VMX state");
            let field = Field::new(truncate(regs_before[Gpr::Rax as usize]));
            let value = field.and_then(|f| before.vmcs12.as_ref()?.get(f).ok());
            let value = truncate(value.expect("VMREAD of a field vmcs12 lacks succeeded"));
            let stored = if step.form & 1 == 0 {
                guest.regs[Gpr::Rcx as usize]
            } else {
                truncate(operand_pointer)
            };
            assert_eq!(stored, value, "VMREAD stored something else");
        }
        Op::Vmread => assert_eq!(after, before, "VMREAD changed the VMX state"),
        Op::Vmwrite if canonical => {
            let field = Field::new(truncate(regs_before[Gpr::Rax as usize]))
                .expect("VMWRITE of an invalid encoding succeeded");
            let mut expected = before.clone();
            let vmcs12 = expected
                .vmcs12
                .as_mut()
                .expect("VMWRITE without a current VMCS");
            vmcs12
                .set(field, truncate(step.value))
                .expect("VMWRITE of a field vmcs12 lacks succeeded");
            assert_eq!(
                *after, expected,
                "VMWRITE changed more or less than its field"
            );
        }
        Op::Vmclear | Op::Vmwrite => {}
        op => panic!("{op:?} ended in plain VMsucceed"),
    }
}

/// SDM 31.3 INVEPT/INVVPID: only valid contexts are invalidated.
fn check_invalidation(invalidation: &Invalidation, vmx: &NestedVmx, bits: u8) {
    let canonical = |a: u64| ((a as i64) << 16 >> 16) as u64 == a;
    let ok = match *invalidation {
        Invalidation::EptSingleContext(eptp) => {
            eptp_valid(eptp, vmx.capabilities().ept_vpid_cap, bits)
        }
        Invalidation::EptAllContext | Invalidation::VpidAllContext => true,
        Invalidation::VpidAddress { vpid, linear } => vpid != 0 && canonical(linear),
        Invalidation::VpidSingleContext(vpid)
        | Invalidation::VpidSingleContextRetainingGlobals(vpid) => vpid != 0,
    };
    assert!(ok, "{invalidation:?}");
}

/// Invariants of the emulator state between instructions.
fn always(vmx: &NestedVmx, bits: u8) {
    let aligned_in_width = |p: u64| p & 0xFFF == 0 && p >> bits == 0;
    if let Some(vmxon) = vmx.vmxon_pointer() {
        assert!(aligned_in_width(vmxon), "VMXON pointer {vmxon:#x}");
    }
    if let Some(current) = vmx.current_vmcs_pointer() {
        assert!(
            vmx.in_vmx_operation(),
            "a current VMCS outside VMX operation"
        );
        assert!(
            aligned_in_width(current),
            "current-VMCS pointer {current:#x}"
        );
        assert_ne!(
            vmx.vmxon_pointer(),
            Some(current),
            "the VMXON region is current"
        );
    }
}
