//! Basic VM-exit reasons (SDM Appendix C), for dispatch and for readable stop messages.

/// The exit-reason field (SDM 25.9.1): basic reason in bits 15:0, bit 31 = VM-entry failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReason(pub u32);

impl ExitReason {
    /// Exception or non-maskable interrupt.
    pub const EXCEPTION_OR_NMI: u16 = 0;
    /// External interrupt.
    pub const EXTERNAL_INTERRUPT: u16 = 1;
    /// Triple fault.
    pub const TRIPLE_FAULT: u16 = 2;
    /// CPUID.
    pub const CPUID: u16 = 10;
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
    /// RDMSR.
    pub const RDMSR: u16 = 31;
    /// WRMSR.
    pub const WRMSR: u16 = 32;
    /// EPT violation.
    pub const EPT_VIOLATION: u16 = 48;
    /// EPT misconfiguration.
    pub const EPT_MISCONFIGURATION: u16 = 49;
    /// INVEPT.
    pub const INVEPT: u16 = 50;
    /// VMX-preemption timer expired.
    pub const PREEMPTION_TIMER: u16 = 52;
    /// INVVPID.
    pub const INVVPID: u16 = 53;

    /// Bits 15:0.
    pub fn basic(self) -> u16 {
        self.0 as u16
    }

    /// Bit 31: the exit is a VM-entry failure (SDM 26.8).
    pub fn is_entry_failure(self) -> bool {
        self.0 & (1 << 31) != 0
    }

    /// The SDM's name of the basic reason.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 70] = [
            "exception or NMI", "external interrupt", "triple fault", "INIT signal",
            "start-up IPI", "I/O SMI", "other SMI", "interrupt window", "NMI window",
            "task switch", "CPUID", "GETSEC", "HLT", "INVD", "INVLPG", "RDPMC", "RDTSC", "RSM",
            "VMCALL", "VMCLEAR", "VMLAUNCH", "VMPTRLD", "VMPTRST", "VMREAD", "VMRESUME",
            "VMWRITE", "VMXOFF", "VMXON", "control-register access", "MOV DR",
            "I/O instruction", "RDMSR", "WRMSR", "VM-entry failure: invalid guest state",
            "VM-entry failure: MSR loading", "reserved (35)", "MWAIT", "monitor trap flag",
            "reserved (38)", "MONITOR", "PAUSE", "VM-entry failure: machine-check event",
            "reserved (42)", "TPR below threshold", "APIC access", "virtualized EOI",
            "access to GDTR or IDTR", "access to LDTR or TR", "EPT violation",
            "EPT misconfiguration", "INVEPT", "RDTSCP", "VMX-preemption timer expired",
            "INVVPID", "WBINVD", "XSETBV", "APIC write", "RDRAND", "INVPCID", "VMFUNC", "ENCLS",
            "RDSEED", "page-modification log full", "XSAVES", "XRSTORS", "reserved (65)",
            "SPP-related event", "UMWAIT", "TPAUSE", "LOADIWKEY",
        ];
        NAMES.get(usize::from(self.basic())).copied().unwrap_or("unknown")
    }
}
