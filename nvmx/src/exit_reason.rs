//! VM-exit reasons (SDM Vol. 3, 25.9.1 exit-reason field, Appendix C basic reasons): the
//! constants every exit path dispatches on and the names every report prints, in one place
//! (the `x86` crate has neither).

/// Exception or NMI.
pub const EXCEPTION_OR_NMI: u16 = 0;
/// External interrupt.
pub const EXTERNAL_INTERRUPT: u16 = 1;
/// Triple fault.
pub const TRIPLE_FAULT: u16 = 2;
/// INIT signal.
pub const INIT: u16 = 3;
/// Start-up IPI.
pub const SIPI: u16 = 4;
/// I/O system-management interrupt.
pub const IO_SMI: u16 = 5;
/// Other SMI.
pub const OTHER_SMI: u16 = 6;
/// Interrupt window.
pub const INTERRUPT_WINDOW: u16 = 7;
/// NMI window.
pub const NMI_WINDOW: u16 = 8;
/// Task switch.
pub const TASK_SWITCH: u16 = 9;
/// CPUID.
pub const CPUID: u16 = 10;
/// GETSEC.
pub const GETSEC: u16 = 11;
/// HLT.
pub const HLT: u16 = 12;
/// INVD.
pub const INVD: u16 = 13;
/// INVLPG.
pub const INVLPG: u16 = 14;
/// RDPMC.
pub const RDPMC: u16 = 15;
/// RDTSC.
pub const RDTSC: u16 = 16;
/// RSM.
pub const RSM: u16 = 17;
/// VMCALL.
pub const VMCALL: u16 = 18;
/// VMCLEAR.
pub const VMCLEAR: u16 = 19;
/// VMLAUNCH.
pub const VMLAUNCH: u16 = 20;
/// VMPTRLD.
pub const VMPTRLD: u16 = 21;
/// VMPTRST.
pub const VMPTRST: u16 = 22;
/// VMREAD.
pub const VMREAD: u16 = 23;
/// VMRESUME.
pub const VMRESUME: u16 = 24;
/// VMWRITE.
pub const VMWRITE: u16 = 25;
/// VMXOFF.
pub const VMXOFF: u16 = 26;
/// VMXON.
pub const VMXON: u16 = 27;
/// Control-register access.
pub const CR_ACCESS: u16 = 28;
/// MOV DR.
pub const MOV_DR: u16 = 29;
/// I/O instruction.
pub const IO_INSTRUCTION: u16 = 30;
/// RDMSR.
pub const RDMSR: u16 = 31;
/// WRMSR.
pub const WRMSR: u16 = 32;
/// VM-entry failure due to invalid guest state.
pub const ENTRY_FAILURE_GUEST_STATE: u16 = 33;
/// VM-entry failure due to MSR loading.
pub const ENTRY_FAILURE_MSR_LOADING: u16 = 34;
/// MWAIT.
pub const MWAIT: u16 = 36;
/// Monitor trap flag.
pub const MONITOR_TRAP_FLAG: u16 = 37;
/// MONITOR.
pub const MONITOR: u16 = 39;
/// PAUSE.
pub const PAUSE: u16 = 40;
/// VM-entry failure due to machine-check event.
pub const ENTRY_FAILURE_MACHINE_CHECK: u16 = 41;
/// TPR below threshold.
pub const TPR_BELOW_THRESHOLD: u16 = 43;
/// APIC access.
pub const APIC_ACCESS: u16 = 44;
/// Access to GDTR or IDTR.
pub const GDTR_IDTR_ACCESS: u16 = 46;
/// Access to LDTR or TR.
pub const LDTR_TR_ACCESS: u16 = 47;
/// EPT violation.
pub const EPT_VIOLATION: u16 = 48;
/// EPT misconfiguration.
pub const EPT_MISCONFIGURATION: u16 = 49;
/// INVEPT.
pub const INVEPT: u16 = 50;
/// RDTSCP.
pub const RDTSCP: u16 = 51;
/// VMX-preemption timer expired.
pub const PREEMPTION_TIMER: u16 = 52;
/// INVVPID.
pub const INVVPID: u16 = 53;
/// WBINVD or WBNOINVD.
pub const WBINVD: u16 = 54;
/// XSETBV.
pub const XSETBV: u16 = 55;
/// RDRAND.
pub const RDRAND: u16 = 57;
/// INVPCID.
pub const INVPCID: u16 = 58;
/// RDSEED.
pub const RDSEED: u16 = 61;

/// Bit 31 of the exit-reason field: the exit is a VM-entry failure (SDM 27.8).
pub const ENTRY_FAILURE: u32 = 1 << 31;

/// Basic exit reasons 0–79 by number, as Appendix C names them; `None` where it defines none.
const NAMES: [Option<&str>; 80] = [
    Some("exception or NMI"),
    Some("external interrupt"),
    Some("triple fault"),
    Some("INIT signal"),
    Some("start-up IPI (SIPI)"),
    Some("I/O system-management interrupt (SMI)"),
    Some("other SMI"),
    Some("interrupt window"),
    Some("NMI window"),
    Some("task switch"),
    Some("CPUID"),
    Some("GETSEC"),
    Some("HLT"),
    Some("INVD"),
    Some("INVLPG"),
    Some("RDPMC"),
    Some("RDTSC"),
    Some("RSM"),
    Some("VMCALL"),
    Some("VMCLEAR"),
    Some("VMLAUNCH"),
    Some("VMPTRLD"),
    Some("VMPTRST"),
    Some("VMREAD"),
    Some("VMRESUME"),
    Some("VMWRITE"),
    Some("VMXOFF"),
    Some("VMXON"),
    Some("control-register access"),
    Some("MOV DR"),
    Some("I/O instruction"),
    Some("RDMSR"),
    Some("WRMSR"),
    Some("VM-entry failure due to invalid guest state"),
    Some("VM-entry failure due to MSR loading"),
    None,
    Some("MWAIT"),
    Some("monitor trap flag"),
    None,
    Some("MONITOR"),
    Some("PAUSE"),
    Some("VM-entry failure due to machine-check event"),
    None,
    Some("TPR below threshold"),
    Some("APIC access"),
    Some("virtualized EOI"),
    Some("access to GDTR or IDTR"),
    Some("access to LDTR or TR"),
    Some("EPT violation"),
    Some("EPT misconfiguration"),
    Some("INVEPT"),
    Some("RDTSCP"),
    Some("VMX-preemption timer expired"),
    Some("INVVPID"),
    Some("WBINVD or WBNOINVD"),
    Some("XSETBV"),
    Some("APIC write"),
    Some("RDRAND"),
    Some("INVPCID"),
    Some("VMFUNC"),
    Some("ENCLS"),
    Some("RDSEED"),
    Some("page-modification log full"),
    Some("XSAVES"),
    Some("XRSTORS"),
    Some("PCONFIG"),
    Some("SPP-related event"),
    Some("UMWAIT"),
    Some("TPAUSE"),
    Some("LOADIWKEY"),
    Some("ENCLV"),
    None,
    Some("ENQCMD PASID translation failure"),
    Some("ENQCMDS PASID translation failure"),
    Some("bus lock"),
    Some("instruction timeout"),
    Some("SEAMCALL"),
    Some("TDCALL"),
    Some("RDMSRLIST"),
    Some("WRMSRLIST"),
];

/// The exit-reason field of a VMCS: basic reason in bits 15:0, flags above (bit 31: VM-entry
/// failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReason(pub u32);

impl ExitReason {
    /// Bits 15:0.
    pub const fn basic(self) -> u16 {
        self.0 as u16
    }

    /// Bit 31: the exit is a VM-entry failure (SDM 27.8).
    pub const fn is_entry_failure(self) -> bool {
        self.0 & ENTRY_FAILURE != 0
    }

    /// Appendix C's name of the basic reason, or "undefined".
    pub fn name(self) -> &'static str {
        name(self.basic()).unwrap_or("undefined")
    }
}

/// Appendix C's name of basic reason `basic`, if it defines one.
pub fn name(basic: u16) -> Option<&'static str> {
    NAMES.get(usize::from(basic)).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_constants() {
        assert_eq!(name(EXCEPTION_OR_NMI), Some("exception or NMI"));
        assert_eq!(name(VMCALL), Some("VMCALL"));
        assert_eq!(name(EPT_VIOLATION), Some("EPT violation"));
        assert_eq!(name(INVVPID), Some("INVVPID"));
        assert_eq!(name(35), None);
        assert_eq!(
            ExitReason(0x8000_0021).name(),
            "VM-entry failure due to invalid guest state"
        );
        assert!(ExitReason(0x8000_0021).is_entry_failure());
        assert_eq!(ExitReason(0x8000_0021).basic(), ENTRY_FAILURE_GUEST_STATE);
    }
}
