//! The exit-reason field (SDM Vol. 3, 25.9.1, Table 25-17) and the basic exit reasons
//! (Appendix C).

use super::{error, SEP};

/// Basic exit reasons 0–79 by number, as Appendix C names them; `None` where it defines none.
/// (Neither `x86` nor `nvmx` has this table.)
const BASIC_REASONS: [Option<&str>; 80] = [
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

/// Basic reasons that only VM-entry failures report (SDM 27.8): bit 31 accompanies them.
const ENTRY_FAILURES: [u16; 3] = [33, 34, 41];

/// Bit 16 of the exit reason: always 0.
const ALWAYS_ZERO: u32 = 1 << 16;
/// Bits 26:17 and 30: not defined.
const UNDEFINED: u32 = 0x07fe_0000 | (1 << 30);

/// The flag bits above the basic reason, with what a set bit means (Table 25-17).
const FLAGS: [(u32, &str); 4] = [
    (1 << 27, "incident to enclave mode (bit 27)"),
    (1 << 28, "pending MTF VM exit (bit 28)"),
    (1 << 29, "from VMX root operation: SMM VM exit (bit 29)"),
    (1 << 31, "VM-entry failure (bit 31)"),
];

/// The Appendix C name of basic exit reason `basic`, if it defines one.
pub fn basic_reason_name(basic: u16) -> Option<&'static str> {
    BASIC_REASONS.get(usize::from(basic)).copied().flatten()
}

/// Decodes an exit-reason field `value`: basic reason in words, then the flags that are set.
pub fn exit_reason(value: u32) -> String {
    let basic = value as u16;
    let mut line = vec![match basic_reason_name(basic) {
        Some(name) => format!("{name} (basic reason {basic})"),
        None => format!("basic reason {basic} (not defined in SDM Appendix C)"),
    }];
    line.extend(
        FLAGS
            .iter()
            .filter(|(bit, _)| value & bit != 0)
            .map(|(_, what)| what.to_string()),
    );
    let mut notes = String::new();
    if value & ALWAYS_ZERO != 0 {
        notes += &error("bit 16 set: the CPU always writes it as 0");
    }
    if value & UNDEFINED != 0 {
        notes += &error(&format!(
            "undefined bits set ({:#x}): bits 26:17 and 30 are not defined",
            value & UNDEFINED
        ));
    }
    let entry_failure = value & (1 << 31) != 0;
    match (entry_failure, ENTRY_FAILURES.contains(&basic)) {
        (false, true) => {
            notes += &error("this reason is a VM-entry failure: bit 31 is set with it")
        }
        (true, false) => {
            notes += &error("bit 31 comes only with basic reasons 33, 34 and 41 (SDM 27.8)")
        }
        _ => {}
    }
    line.join(SEP) + &notes
}
