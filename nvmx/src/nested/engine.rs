//! The nested engine: one guest hypervisor vCPU's virtual VMX state and the sequencing of a
//! nested round trip — which VMCS is current, when the shadow VMCS is synced, what is redone —
//! with three entry points: a VMX instruction of the guest hypervisor
//! ([`NestedVcpu::instruction`]), its VMLAUNCH/VMRESUME passing the instruction checks
//! ([`NestedVcpu::enter`]) and an exit of L3 that goes to the guest hypervisor
//! ([`NestedVcpu::l3_exit`]).
//!
//! It skips what did not change since the last successful nested entry:
//!
//! * the guest hypervisor's VMWRITEs (emulated, or found in the shadow VMCS when it is copied
//!   back, by comparison) and VMPTRLD mark vmcs12 field groups [`Dirty`];
//! * vmcs02 persists across entries: only when controls, guest state, l1-hv's needs or the
//!   context change is it rebuilt ([`super::prepare_vmcs02`]); when only the event injection
//!   changed, only the injection fields are written;
//! * the checks run in full only when a checked group changed; the injection alone needs only the
//!   injection rules ([`super::checks`]). Guest state a VM exit saved from vmcs02 is not
//!   re-checked: vmcs02 holds exactly that state, and the processor checks vmcs02 at VM entry
//!   (a failure comes back as an L3 exit with bit 31, reflected as the processor reports it);
//! * a nested exit saves at once only what the guest hypervisor reads after nearly every exit
//!   (exit information, the shadowed guest fields); L3's other guest state stays in vmcs02 until
//!   vmcs12 is read or written as a whole, or a field of it is read or written by an emulated
//!   VMREAD/VMWRITE (lazy sync);
//! * the shadow VMCS gets after an exit only the fields the exit changed.
//!
//! The result equals the slow way after every step (the `nested_engine` fuzz target and the
//! tests below compare with [`super::check_vmcs12`], [`super::prepare_vmcs02`],
//! [`super::reflect_exit`] and whole shadow copies).

use super::arch::FREQUENT_GUEST_FIELDS;
use super::checks::{check_injection, check_vmcs12, reads_memory, EntryContext, EntryFailure};
use super::controls::Controls;
use super::dirty::{Dirty, INJECTION_FIELDS};
use super::exit::{
    load_l2_host_state, save_exit, save_rare_guest_state, ExitFields, RareGuestState, VmxAbort,
};
use super::msr::MsrBus;
use super::msr_area::{load_entry_msrs, load_exit_msrs, store_exit_msrs};
use super::reflect::ExitFacts;
use super::timer::L3Timer;
use super::vmcs02::{prepare_vmcs02, write_injection, L1Needs};
use crate::exit_reason;
use crate::insn::{GuestMemory, NestedVmx, VmInstructionError, VmxCapabilities};
pub use failed_entry::Vmcs02EntryBug;
use shadow_vmcs::{Field, Resolved, ShadowPolicy, SoftVmcs, Vmcs, SHADOWED};
use x86::vmx::vmcs::{control, guest};

/// Runs `$body` with `$item` bound to each element of the constant table `$table` (at most 32)
/// as straight-line code, so that each element's constants fold into the instructions.
macro_rules! unrolled {
    ($table:expr, |$item:pat_param| $body:block) => {{
        const _: () = assert!($table.len() <= 32, "unrolled! covers 32 elements");
        unrolled!(@indices $table, $item, $body, [
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        ]);
    }};
    (@indices $table:expr, $item:pat_param, $body:block, [$($k:literal)*]) => {
        $(
            if let Some(&$item) = $table.get($k) {
                $body
            }
        )*
    };
}

/// The VMCSs the engine works on, each behind its own type so that writing the wrong one does
/// not compile. Taking a handle makes that VMCS current (a VMPTRLD on hardware when another one
/// was); the `&mut self` borrow means only one handle is usable at a time, as only one VMCS is
/// current on a processor.
pub trait NestedHardware {
    /// vmcs01: the VMCS l1-hv runs the guest hypervisor with.
    type Vmcs01: Vmcs;
    /// vmcs02: the VMCS l1-hv runs L3 with.
    type Vmcs02: Vmcs;
    /// The shadow VMCS linked from vmcs01 (only asked for when the engine has a shadow policy).
    type Shadow: Vmcs;

    /// vmcs01, made current.
    fn vmcs01(&mut self) -> &mut Self::Vmcs01;
    /// vmcs02, made current.
    fn vmcs02(&mut self) -> &mut Self::Vmcs02;
    /// The shadow VMCS, made current.
    fn shadow(&mut self) -> &mut Self::Shadow;
}

/// What the last successful nested entry built vmcs02 from and checked vmcs12 against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Built {
    needs: L1Needs,
    ia32e_mode: bool,
    l2_debugctl: u64,
}

/// How a nested entry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// vmcs02 is current and ready: enter L3.
    L3,
    /// VMfailValid, the error recorded in vmcs12 (controls or host state, SDM 27.2); vmcs01 is
    /// current: the caller sets RFLAGS and steps over the instruction.
    FailValid(VmInstructionError),
    /// A VM-entry failure exit (guest state or MSR loading, SDM 27.8): vmcs12 has its reason and
    /// qualification, vmcs01 the guest hypervisor's host state and is current; resume the guest
    /// hypervisor.
    FailureExit,
    /// A VMX abort loading the host state or its MSRs (SDM 28.7): the guest hypervisor cannot
    /// go on.
    Abort(VmxAbort),
    /// No current vmcs12: the instruction checks should have failed the entry (a caller bug).
    NoVmcs12,
}

/// One guest hypervisor vCPU's nested state (see the module documentation).
#[derive(Clone, Debug)]
pub struct NestedVcpu {
    vmx: NestedVmx,
    /// How vmcs12 is mirrored in a shadow VMCS; `None`: no VMCS shadowing for this guest.
    shadow: Option<ShadowPolicy>,
    /// vmcs02's provenance; `None` until the first entry and after vmcs02 failed an entry.
    built: Option<Built>,
    /// vmcs02 holds L3's guest state of the last exit that vmcs12 does not have yet (all but
    /// [`FREQUENT_GUEST_FIELDS`]): which of it the exit saves.
    l3_state_in_vmcs02: Option<RareGuestState>,
    /// The guest hypervisor's VMLAUNCH (`Some(true)`) or VMRESUME (`Some(false)`) that the
    /// coming VM entry of vmcs02 completes; set by every successful nested entry, `None` once
    /// L3 ran ([`Self::l3_ran`]).
    entering: Option<bool>,
    /// The guest hypervisor's VMX-preemption timer from a nested entry that activates it to
    /// the next virtual VM exit.
    timer: Option<L3Timer>,
}

impl NestedVcpu {
    /// A vCPU outside VMX operation offered `caps`, mirroring vmcs12 in a shadow VMCS under
    /// `shadow` if given.
    pub fn new(caps: VmxCapabilities, phys_addr_bits: u8, shadow: Option<ShadowPolicy>) -> Self {
        NestedVcpu {
            vmx: NestedVmx::new(caps, phys_addr_bits),
            shadow,
            built: None,
            l3_state_in_vmcs02: None,
            entering: None,
            timer: None,
        }
    }

    /// The VMX-operation state. Its vmcs12 ([`NestedVmx::current_vmcs12`]) is exact in the
    /// controls, host state, exit information and [`FREQUENT_GUEST_FIELDS`]; L3's other guest
    /// fields may still be in vmcs02 (see [`Self::sync_l3_state`]).
    pub fn vmx(&self) -> &NestedVmx {
        &self.vmx
    }

    /// Entry point 1: the guest hypervisor's VMX instruction with exit reason `reason`.
    /// `emulate` runs it on the VMX state, with vmcs01 current (it also is on return). Before,
    /// L3's state and the shadow VMCS go into vmcs12 where the instruction reads or releases
    /// vmcs12; after, a newly current vmcs12 is copied into the shadow. Returns `emulate`'s
    /// result and whether the current-VMCS pointer changed (the shadow must be linked anew).
    pub fn instruction<H: NestedHardware, R>(
        &mut self,
        hw: &mut H,
        reason: u16,
        emulate: impl FnOnce(&mut NestedVmx) -> R,
    ) -> (R, bool) {
        let releases = matches!(
            reason,
            exit_reason::VMCLEAR | exit_reason::VMPTRLD | exit_reason::VMXOFF
        );
        if releases || matches!(reason, exit_reason::VMREAD | exit_reason::VMWRITE) {
            self.sync_l3_state(hw);
        }
        // VMLAUNCH/VMRESUME copy the shadow back in `enter`, after the instruction checks (which
        // read no shadowed field). A VMCLEAR of another VMCS keeps this one current: what the
        // copy changed stays marked.
        if releases {
            self.store_shadow(hw);
        }
        let before = self.vmx.current_vmcs_pointer();
        hw.vmcs01();
        let result = emulate(&mut self.vmx);
        let changed = self.vmx.current_vmcs_pointer() != before;
        if changed {
            if let (Some(policy), Some(current)) = (&self.shadow, &self.vmx.current) {
                load_shadow(policy, &current.vmcs12, hw.shadow(), ShadowLoad::All);
            }
            hw.vmcs01();
        }
        (result, changed)
    }

    /// Entry point 2: the guest hypervisor's VMLAUNCH (`launch`) or VMRESUME passed the
    /// instruction checks; vmcs01 is current. Copies the shadow back, checks vmcs12 where it
    /// changed (`ctx` as [`check_vmcs12`] takes it), then brings vmcs02 up to date with vmcs12
    /// and `needs` (asked of the caller after the checks passed, from the up-to-date vmcs12),
    /// then loads vmcs12's VM-entry MSR-load area for L3 (`msrs`: the MSRs outside the VMCSs).
    pub fn enter<H: NestedHardware, M: GuestMemory>(
        &mut self,
        hw: &mut H,
        mem: &M,
        ctx: &EntryContext<'_>,
        launch: bool,
        needs: impl FnOnce(&SoftVmcs, &M) -> L1Needs,
        msrs: &mut impl MsrBus,
    ) -> Entry {
        if self.vmx.current.is_none() {
            return Entry::NoVmcs12;
        }
        self.store_shadow(hw);
        let context_same = self
            .built
            .is_some_and(|b| b.ia32e_mode == ctx.ia32e_mode && b.l2_debugctl == ctx.l2_debugctl);
        let Some(current) = self.vmx.current.as_ref() else {
            return Entry::NoVmcs12;
        };
        let dirty = current.dirty;
        // Read once for the whole entry: neither the checks nor the lazy sync change them.
        let controls = Controls::read(&current.vmcs12);
        let memory = reads_memory(&current.vmcs12, &controls);
        let full_check = !context_same
            || dirty.intersects(Dirty::CONTROLS | Dirty::HOST | Dirty::GUEST)
            || memory;
        if full_check {
            // The checks read every guest field.
            self.sync_l3_state(hw);
        }
        let Some(current) = self.vmx.current.as_mut() else {
            return Entry::NoVmcs12;
        };
        let vmcs12 = &mut current.vmcs12;
        let checked = if full_check {
            check_vmcs12(vmcs12, mem, ctx)
        } else if dirty.contains(Dirty::INJECTION) {
            check_injection(vmcs12, ctx, &controls)
        } else {
            Ok(())
        };
        if let Err(failure) = checked {
            failure.write_to(vmcs12);
            hw.vmcs01();
            return match failure {
                // The guest hypervisor continues after its instruction (SDM 27.1).
                EntryFailure::VmFailValid(error) => Entry::FailValid(error),
                // It resumes at its host state (SDM 27.8).
                EntryFailure::Exit { .. } => {
                    let shadow = self.shadow.as_ref();
                    match to_host(vmcs12, hw, shadow, mem, ctx.phys_addr_bits, msrs) {
                        Ok(()) => Entry::FailureExit,
                        Err(abort) => Entry::Abort(abort),
                    }
                }
            };
        }
        // The entries load into vmcs02's guest state (SDM 27.4): L3's state an exit left there
        // goes to vmcs12 first, so that a failed load cannot reach vmcs12 through a later sync.
        let loads_msrs = vmcs12.read(control::VMENTRY_MSR_LOAD_COUNT) != 0;
        if loads_msrs {
            if let Some(rare) = self.l3_state_in_vmcs02.take() {
                save_rare_guest_state(hw.vmcs02(), vmcs12, rare);
            }
        }

        let needs = needs(vmcs12, mem);
        let built = Built {
            needs,
            ia32e_mode: ctx.ia32e_mode,
            l2_debugctl: ctx.l2_debugctl,
        };
        let rebuild = self.built.is_none_or(|b| b.needs != needs)
            || dirty.intersects(Dirty::CONTROLS | Dirty::GUEST)
            // PAE PDPTEs of a guest without EPT come from memory.
            || memory;
        if rebuild {
            if let Some(rare) = self.l3_state_in_vmcs02.take() {
                // prepare_vmcs02 writes every guest field from vmcs12.
                save_rare_guest_state(hw.vmcs02(), vmcs12, rare);
            }
            prepare_vmcs02(vmcs12, hw.vmcs02(), &needs, mem);
        } else if dirty.contains(Dirty::INJECTION) {
            write_injection(vmcs12, hw.vmcs02());
        } else {
            // vmcs02 is up to date; make it current for the entry.
            hw.vmcs02();
        }
        if loads_msrs {
            if let Err(failed) = load_entry_msrs(vmcs12, hw.vmcs02(), mem, msrs) {
                // vmcs02's guest state is vmcs12's plus the entries loaded: rebuild it (and
                // check in full) at the next entry.
                self.built = None;
                EntryFailure::msr_loading(failed).write_to(vmcs12);
                hw.vmcs01();
                let shadow = self.shadow.as_ref();
                return match to_host(vmcs12, hw, shadow, mem, ctx.phys_addr_bits, msrs) {
                    Ok(()) => Entry::FailureExit,
                    Err(abort) => Entry::Abort(abort),
                };
            }
        }
        self.timer = controls
            .pin
            .contains(control::PinbasedControls::VMX_PREEMPTION_TIMER)
            .then(|| {
                L3Timer::new(
                    vmcs12.read(guest::VMX_PREEMPTION_TIMER_VALUE) as u32,
                    &needs,
                )
            });
        if let (Some(timer), false) = (&self.timer, rebuild) {
            // Every entry starts from vmcs12's value; vmcs02's holds what the last run left.
            timer.arm(hw.vmcs02());
        }
        if launch {
            vmcs12.set_launch_state(shadow_vmcs::LaunchState::Launched);
        }
        current.dirty = Dirty::empty();
        self.built = Some(built);
        self.entering = Some(launch);
        Entry::L3
    }

    /// Entry point 3: an exit of L3 (vmcs02 current) that goes to the guest hypervisor as a
    /// virtual VM exit with `fields` — also a VM-entry failure of vmcs02 the processor reported
    /// (reason bit 31), which the guest hypervisor gets as it is. Saves the exit into vmcs12 and
    /// L3's MSRs into its VM-exit MSR-store area, loads its host state into vmcs01 (`mem`: the
    /// areas, a 32-bit PAE host's PDPTEs) and its VM-exit MSR-load area (`msrs`: the MSRs outside
    /// the VMCSs), and refreshes the shadow; vmcs01 is current on return. `Err`: a VMX abort.
    pub fn l3_exit<H: NestedHardware, M: GuestMemory>(
        &mut self,
        hw: &mut H,
        fields: ExitFields,
        mem: &mut M,
        phys_addr_bits: u8,
        msrs: &mut impl MsrBus,
    ) -> Result<(), VmxAbort> {
        let Some(current) = self.vmx.current.as_mut() else {
            // The entry had a current vmcs12 and only a VMX instruction can take it away.
            return Ok(());
        };
        let vmcs12 = &mut current.vmcs12;
        let timer = self.timer.take();
        match save_exit(hw.vmcs02(), vmcs12, fields) {
            Some(rare) => {
                self.l3_state_in_vmcs02 = Some(rare);
                let save = u64::from(control::ExitControls::SAVE_VMX_PREEMPTION_TIMER.bits());
                if let Some(timer) =
                    timer.filter(|_| vmcs12.read(control::VMEXIT_CONTROLS) & save != 0)
                {
                    // SDM 28.3: the value left; without the control the field stays, and the
                    // next entry starts from it.
                    vmcs12.write(guest::VMX_PREEMPTION_TIMER_VALUE, timer.left().into());
                }
                store_exit_msrs(vmcs12, hw.vmcs02(), mem, msrs)?;
            }
            // vmcs02 failed the processor's checks: check and build in full next time. A failed
            // VM entry saves no guest state and stores no MSRs (SDM 27.8).
            None => self.built = None,
        }
        hw.vmcs01();
        to_host(vmcs12, hw, self.shadow.as_ref(), mem, phys_addr_bits, msrs)
    }

    /// L3 ran and exited, `facts` read from vmcs02 (current): the VM entry of vmcs02 completed
    /// the guest hypervisor's VMLAUNCH/VMRESUME, so a later failed entry of vmcs02 is not that
    /// instruction's; the time L3 ran comes off the guest hypervisor's VMX-preemption timer,
    /// vmcs02's timer is armed for a re-entry, and `facts` says whether a preemption-timer exit
    /// is the guest hypervisor's ([`super::timer`]). Call before deciding the exit.
    pub fn l3_ran(&mut self, vmcs02: &mut impl Vmcs, facts: &mut ExitFacts) {
        self.entering = None;
        if let Some(timer) = self.timer.as_mut() {
            facts.timer12_expired = timer.exited(vmcs02, facts.reason);
        }
    }

    /// Copies L3's guest state still in vmcs02 into vmcs12 (leaves vmcs02 current if it did).
    pub fn sync_l3_state<H: NestedHardware>(&mut self, hw: &mut H) {
        let Some(rare) = self.l3_state_in_vmcs02.take() else {
            return;
        };
        if let Some(current) = self.vmx.current.as_mut() {
            save_rare_guest_state(hw.vmcs02(), &mut current.vmcs12, rare);
        }
    }

    /// Copies the shadow VMCS into vmcs12, marking the groups of the fields that differ.
    fn store_shadow<H: NestedHardware>(&mut self, hw: &mut H) {
        let (Some(policy), Some(current)) = (&self.shadow, self.vmx.current.as_mut()) else {
            return;
        };
        let shadow = hw.shadow();
        let vmcs12 = &mut current.vmcs12;
        // Straight-line code with each field's encoding and slot constant: this runs at every
        // nested entry, and a loop over the table costs twice the instructions of the
        // VMREAD-compare per field itself.
        unrolled!(SHADOWED_WRITABLE, |(field, group)| {
            let value = shadow.read(field.encoding());
            if vmcs12.read_resolved(field) != value {
                vmcs12.write_resolved(field, value);
                current.dirty |= group;
            }
        });
        if policy.exit_information_writable() {
            for &field in &SHADOWED_EXIT_INFORMATION {
                vmcs12.write_resolved(field, shadow.read(field.encoding()));
            }
        }
    }
}

/// The end of a virtual VM exit or of a VM entry that failed after the checks of the controls
/// and host state (SDM 27.8), vmcs01 current: vmcs12's host state into vmcs01 (SDM 28.5), its
/// VM-exit MSR-load area as L2's (SDM 28.6), the fields the exit changed into the shadow.
fn to_host<H: NestedHardware>(
    vmcs12: &SoftVmcs,
    hw: &mut H,
    shadow: Option<&ShadowPolicy>,
    mem: &impl GuestMemory,
    phys_addr_bits: u8,
    msrs: &mut impl MsrBus,
) -> Result<(), VmxAbort> {
    load_l2_host_state(vmcs12, hw.vmcs01(), mem, phys_addr_bits)?;
    load_exit_msrs(vmcs12, hw.vmcs01(), mem, msrs)?;
    if let Some(policy) = shadow {
        load_shadow(policy, vmcs12, hw.shadow(), ShadowLoad::Exit);
        hw.vmcs01();
    }
    Ok(())
}

/// Which shadowed fields to copy from vmcs12 into the shadow.
#[derive(Clone, Copy)]
enum ShadowLoad {
    /// All (a newly current vmcs12).
    All,
    /// Those a nested exit or a VM-entry failure exit changes in vmcs12: exit information, the
    /// frequent guest fields, the VM-entry interruption information (valid bit cleared). The
    /// others were copied from the shadow at the entry and are equal.
    Exit,
}

/// Copies shadowed fields of vmcs12 into the shadow VMCS, exit-information fields only where
/// the policy lets the guest read them from the shadow.
fn load_shadow(
    policy: &ShadowPolicy,
    vmcs12: &SoftVmcs,
    shadow: &mut impl Vmcs,
    which: ShadowLoad,
) {
    let writable: &[(Resolved, Dirty)] = match which {
        ShadowLoad::All => &SHADOWED_WRITABLE,
        ShadowLoad::Exit => &CHANGED_BY_EXIT,
    };
    for &(field, _) in writable {
        shadow.write(field.encoding(), vmcs12.read_resolved(field));
    }
    if policy.exit_information_readable() {
        for &field in &SHADOWED_EXIT_INFORMATION {
            shadow.write(field.encoding(), vmcs12.read_resolved(field));
        }
    }
}

const fn is_exit_information(field: u32) -> bool {
    match Field::new(field as u64) {
        Some(f) => f.is_read_only(),
        None => false,
    }
}

const fn count_shadowed(exit_information: bool) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < SHADOWED.len() {
        if is_exit_information(SHADOWED[i]) == exit_information {
            n += 1;
        }
        i += 1;
    }
    n
}

/// Shadowed fields the guest may write in the shadow, with the group each changes.
const SHADOWED_WRITABLE: [(Resolved, Dirty); count_shadowed(false)] = {
    let mut fields = [(Resolved::new(SHADOWED[0]), Dirty::empty()); count_shadowed(false)];
    let mut n = 0;
    let mut i = 0;
    while i < SHADOWED.len() {
        if let Some(field) = Field::new(SHADOWED[i] as u64) {
            if !field.is_read_only() {
                fields[n] = (Resolved::new(SHADOWED[i]), Dirty::of(field));
                n += 1;
            }
        }
        i += 1;
    }
    fields
};

/// Shadowed exit-information fields.
const SHADOWED_EXIT_INFORMATION: [Resolved; count_shadowed(true)] = {
    let mut fields = [Resolved::new(SHADOWED[0]); count_shadowed(true)];
    let mut n = 0;
    let mut i = 0;
    while i < SHADOWED.len() {
        if is_exit_information(SHADOWED[i]) {
            fields[n] = Resolved::new(SHADOWED[i]);
            n += 1;
        }
        i += 1;
    }
    fields
};

/// The guest-writable shadowed fields a nested exit changes (see [`ShadowLoad::Exit`]).
const CHANGED_BY_EXIT: [(Resolved, Dirty); FREQUENT_GUEST_FIELDS.len() + 1] = {
    let mut fields =
        [(Resolved::new(INJECTION_FIELDS[0]), Dirty::INJECTION); FREQUENT_GUEST_FIELDS.len() + 1];
    let mut i = 0;
    while i < FREQUENT_GUEST_FIELDS.len() {
        fields[i + 1] = (Resolved::new(FREQUENT_GUEST_FIELDS[i]), Dirty::GUEST);
        i += 1;
    }
    fields
};

// Every field refreshed after an exit is a guest-writable shadowed one.
const _: () = {
    let mut i = 0;
    while i < CHANGED_BY_EXIT.len() {
        let mut j = 0;
        let mut found = false;
        while j < SHADOWED_WRITABLE.len() {
            found |= SHADOWED_WRITABLE[j].0.encoding() == CHANGED_BY_EXIT[i].0.encoding();
            j += 1;
        }
        assert!(found, "fields refreshed after an exit are shadowed");
        i += 1;
    }
    assert!(control::VMENTRY_INTERRUPTION_INFO_FIELD == INJECTION_FIELDS[0]);
};

mod failed_entry;
#[cfg(test)]
mod tests;
