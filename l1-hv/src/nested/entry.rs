//! Nested VM entry (the guest hypervisor's VMLAUNCH/VMRESUME passed the instruction checks):
//! vmcs12's VM-entry checks, then vmcs02 composed from vmcs12 and what l1-hv needs, then L3
//! runs (SDM 27; the phases are nvmx's, see docs/nested-engine.md).

use super::ept02::Ept02;
use super::{complete, L2Memory, L3Vcpu, Nested};
use crate::guest::{Guest, KernelMsrs, RunEnd, Stop};
use crate::memory::PhysPages;
use crate::Host;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::instructions::{invept_all_contexts, vmclear};
use l1_vmx::HostRsp;
use nvmx::insn::Outcome;
use nvmx::nested::{Entry, EntryContext, L1Needs, L2Inherited, Vmcs12Pages, EFER_LMA};
use shadow_vmcs::{SoftVmcs, Vmcs};
use x86::controlregs::Cr4;
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::guest;

/// L3 runs with the guest's VPID plus this, so L2's and L3's translations never mix.
pub const VPID_L3_OFFSET: u16 = 0x100;

/// What the run loop does next.
pub enum Entered {
    /// Enter the current VMCS's guest: L3 on success, L2 after a failed entry.
    Resume,
    /// The guest cannot go on.
    End(RunEnd),
}

/// Performs the guest hypervisor's VMLAUNCH (`launch`) or VMRESUME through the nested engine;
/// vmcs01 is current, and vmcs02 is on return if L3 is to run.
// Not inlined into the run loop or the L2 exit dispatch: the nested paths inline many vmcs12
// accesses, which would otherwise weigh on every other exit path.
#[inline(never)]
pub fn enter_l3(host: &Host, g: &mut Guest, vmcs: &mut CurrentVmcs, launch: bool) -> Entered {
    let vmcs01_phys = g.vmcs_region.phys();
    let l2_ept = g.ept.pointer();
    let vpid02 = g.vpid + VPID_L3_OFFSET;
    let exception_bitmap = g.config.exception_bitmap;
    if g.nested.l3.is_none() {
        match L3Vcpu::new(host.caps.revision_id()) {
            Some(l3) => g.nested.l3 = Some(l3),
            None => {
                return Entered::End(RunEnd::Stopped(Stop::Internal("out of memory for vmcs02")))
            }
        }
    }
    let context = EntryContext {
        caps: &host.offered,
        phys_addr_bits: host.phys_addr_bits,
        ia32e_mode: vmcs.read(guest::IA32_EFER_FULL) & EFER_LMA != 0,
        l2_debugctl: vmcs.read(guest::IA32_DEBUGCTL_FULL),
    };
    // With vmcs01 switching PAT (a kernel guest), the processor's PAT at vmcs02's entry is
    // l1-hv's, so vmcs02 loads L2's PAT for L3 to inherit (SDM 27.3.2.1) and saves L3's.
    let switch_pat = EntryControls::from_bits_truncate(vmcs.read(control::VMENTRY_CONTROLS) as u32)
        & EntryControls::LOAD_IA32_PAT;
    let l2 = L2Inherited {
        efer: vmcs.read(guest::IA32_EFER_FULL),
        pat: vmcs.read(guest::IA32_PAT_FULL),
        dr7: vmcs.read(guest::DR7),
        debugctl: vmcs.read(guest::IA32_DEBUGCTL_FULL),
    };
    // A test image's runaway guard covers L3's time too (vmcs02 runs it with the guest
    // hypervisor's timer, nvmx::nested's `timer`); a kernel's drain timer stays off while L3
    // runs (`Machine::before_entry`), and the debugger's tick is vmcs01's alone.
    let pin01 =
        PinbasedControls::from_bits_truncate(vmcs.read(control::PINBASED_EXEC_CONTROLS) as u32);
    let runaway = if g.machine.is_none() && g.debug.is_none() {
        pin01 & PinbasedControls::VMX_PREEMPTION_TIMER
    } else {
        PinbasedControls::empty()
    };
    let runaway_value = vmcs.read(guest::VMX_PREEMPTION_TIMER_VALUE) as u32;
    let memory = L2Memory(&mut g.ram);
    let Some(mut msrs) = KernelMsrs::new(host, g.config.boot, g.machine.as_mut()) else {
        return Entered::End(RunEnd::Stopped(Stop::Internal("MSR bitmap is not a page")));
    };
    // SAFETY: vmcs01 is current (an L2 exit is being handled).
    let mut hw = unsafe { g.nested.hardware(vmcs01_phys) };
    let Nested {
        engine,
        l3: Some(l3),
        stats,
        in_l3,
        ..
    } = &mut g.nested
    else {
        return Entered::End(RunEnd::Stopped(Stop::Internal(
            "nested entry without vmcs02",
        )));
    };
    let needs = |vmcs12: &SoftVmcs, memory: &L2Memory<'_>| {
        let pages = Vmcs12Pages::of(vmcs12);
        L1Needs {
            pin: PinbasedControls::EXTERNAL_INTERRUPT_EXITING
                | PinbasedControls::NMI_EXITING
                | runaway,
            primary: PrimaryControls::empty(),
            secondary: SecondaryControls::empty(),
            exit: ExitControls::HOST_ADDRESS_SPACE_SIZE
                | ExitControls::SAVE_IA32_EFER
                | ExitControls::LOAD_IA32_EFER
                | ExitControls::ACK_INTERRUPT_ON_EXIT,
            entry: EntryControls::LOAD_IA32_EFER | switch_pat,
            exception_bitmap,
            cr0_mask: 0,
            cr4_mask: Cr4::CR4_ENABLE_VMX.bits() as u64,
            tsc_offset: 0,
            eptp02: l3.eptp02(vmcs12, l2_ept),
            vpid02,
            msr_bitmap: None,
            io_bitmaps: None,
            virtual_apic_page: pages.virtual_apic.map_or(0, |gpa| {
                memory.host_phys(gpa).unwrap_or_else(|| l3.absent_page())
            }),
            apic_access_page: pages
                .apic_access
                .and_then(|gpa| memory.host_phys(gpa))
                .unwrap_or(0),
            preemption_timer_value: runaway_value,
            l2,
        }
    };
    let entered = engine.enter(&mut hw, &memory, &context, launch, needs, &mut msrs);
    if let Some(why) = msrs.internal {
        return Entered::End(RunEnd::Stopped(Stop::Internal(why)));
    }
    match entered {
        Entry::L3 => {
            *in_l3 = true;
            stats.entered();
            Entered::Resume
        }
        // VMfailValid: the guest hypervisor continues after its instruction (SDM 27.1).
        Entry::FailValid(error) => {
            let mut cx = super::L2Context {
                regs: &mut g.regs,
                vmcs,
                memory,
            };
            complete(&mut cx, Outcome::FailValid(error));
            Entered::Resume
        }
        // A VM-entry failure exit: L2 resumes at its host state (SDM 27.8).
        Entry::FailureExit => Entered::Resume,
        // l1-hv does not write the abort indicator: the guest hypervisor stops (SDM 28.7).
        Entry::Abort(_) => Entered::End(RunEnd::Stopped(Stop::Internal(
            "VMX abort on a failed nested VM entry",
        ))),
        Entry::NoVmcs12 => Entered::End(RunEnd::Stopped(Stop::Internal(
            "nested entry without a current vmcs12",
        ))),
    }
}

fn invalidate_ept() {
    // SAFETY: CPL 0 in VMX root operation, INVEPT all-context checked at bring-up.
    let _ = unsafe { invept_all_contexts() };
}

impl L3Vcpu {
    /// A clear vmcs02 with an empty EPT02.
    fn new(revision_id: u32) -> Option<Self> {
        let mut vmcs02 = PhysPages::page()?;
        vmcs02.bytes_mut()[..4].copy_from_slice(&revision_id.to_le_bytes());
        // SAFETY: a fresh, revision-stamped region (SDM 25.11.3).
        unsafe { vmclear(vmcs02.phys()) }.ok()?;
        Some(Self {
            vmcs02,
            launched: false,
            host_rsp: HostRsp::default(),
            ept02: Ept02::new().ok()?,
            eptp12: u64::MAX,
            absent: PhysPages::page()?,
        })
    }

    /// Host-physical address of the page vmcs02 uses for a virtual-APIC page the guest
    /// hypervisor put where it has no RAM (VM entry allows any aligned address within the width,
    /// SDM 27.2.1.1). There the processor would read all ones and drop writes; this page is
    /// filled with all ones at each nested entry, so the processor reads VTPR as nvmx's checks
    /// did (class 15) and its own threshold check on vmcs02 agrees with them. L3's writes during
    /// one run stay visible to its reads until the next entry; after a write that takes VTPR
    /// below the threshold the processor exits (TPR below threshold, SDM 30.1.2), and that exit
    /// is the guest hypervisor's, so vmcs02 is never re-entered with such a VTPR.
    fn absent_page(&mut self) -> u64 {
        self.absent.bytes_mut().fill(0xFF);
        self.absent.phys()
    }

    /// vmcs02's EPT pointer for `vmcs12`: the composed EPT02 when vmcs12 enables EPT (dropped
    /// when the guest hypervisor's EPTP changed), else l1-hv's EPT for L2 (`l2_ept`), on which L3
    /// addresses L2-physical memory directly. Flushes what the entry must flush.
    fn eptp02(&mut self, vmcs12: &SoftVmcs, l2_ept: u64) -> u64 {
        let primary12 = PrimaryControls::from_bits_truncate(
            vmcs12.read(control::PRIMARY_PROCBASED_EXEC_CONTROLS) as u32,
        );
        let secondary12 = if primary12.contains(PrimaryControls::SECONDARY_CONTROLS) {
            SecondaryControls::from_bits_truncate(
                vmcs12.read(control::SECONDARY_PROCBASED_EXEC_CONTROLS) as u32,
            )
        } else {
            SecondaryControls::empty()
        };
        if !secondary12.contains(SecondaryControls::ENABLE_VPID) {
            // Without VPID the guest hypervisor relies on VM entries and exits flushing linear
            // translations (SDM 29.4.3.3); vpid02 is l1-hv's, so l1-hv flushes.
            invalidate_ept();
        }
        if !secondary12.contains(SecondaryControls::ENABLE_EPT) {
            return l2_ept;
        }
        let eptp12 = vmcs12.read(control::EPTP_FULL);
        if eptp12 != self.eptp12 {
            // Another EPT hierarchy: compose afresh (SDM 29.4.3: translations are per EPTP).
            self.ept02.clear();
            self.eptp12 = eptp12;
            invalidate_ept();
        }
        self.ept02.pointer()
    }
}

impl Drop for L3Vcpu {
    fn drop(&mut self) {
        // SAFETY: flushes vmcs02 before its page returns to the heap.
        let _ = unsafe { vmclear(self.vmcs02.phys()) };
    }
}
