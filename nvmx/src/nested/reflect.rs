//! Which exits of L3 belong to the guest hypervisor: an exit is reflected iff vmcs12's controls
//! would have caused it on hardware (SDM 26.1–26.2 "Instructions that cause VM exits", 25.2 for
//! events); otherwise vmcs02 caused it for l1-hv's own needs and l1-hv handles it.

use super::arch::{ar, CR0_TS, CS};
use super::controls::Controls;
use super::msr::msr_bitmap_bit;
use crate::event::{Event, InterruptionInfo};
use crate::exit::{CrAccess, IoInstruction};
use crate::exit_reason as reason;
use crate::insn::{Gpr, GuestMemory};
use crate::route::{intercepts, InterceptControls};
use shadow_vmcs::Vmcs;
use x86::vmx::vmcs::control::{self, EntryControls, PrimaryControls, SecondaryControls};
use x86::vmx::vmcs::ro;

/// What the decision needs to know about an exit from vmcs02.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitFacts {
    /// The exit-reason field: basic reason in bits 15:0, bit 31 for VM-entry failures.
    pub reason: u32,
    /// The exit qualification.
    pub qualification: u64,
    /// VM-exit interruption information (exception and NMI exits).
    pub interruption_info: InterruptionInfo,
    /// VM-exit interruption error code.
    pub interruption_error_code: u32,
    /// VM-exit instruction information (VMREAD/VMWRITE operands).
    pub instruction_info: u32,
    /// Whether L3 was in 64-bit mode (EFER.LMA and CS.L), which sizes register operands.
    pub long_mode: bool,
    /// L3's general-purpose registers at the exit, indexed by [`Gpr`] number (RSP from vmcs02).
    pub gprs: [u64; 16],
    /// A preemption-timer exit of the guest hypervisor's VMX-preemption timer alone (set by
    /// [`super::NestedVcpu::l3_ran`]; `false` from [`ExitFacts::from_vmcs02`]).
    pub timer12_expired: bool,
}

impl ExitFacts {
    /// Reads the exit from vmcs02; `gprs` gives L3's registers as the kernel saved them. The
    /// instruction's operands (registers, instruction information, operand size) are read only
    /// for the exits whose decision uses them ([`ExitFacts::reads_operands`]); for the others
    /// those fields are 0.
    pub fn from_vmcs02(vmcs02: &impl Vmcs, gprs: impl FnOnce() -> [u64; 16]) -> Self {
        let reason = vmcs02.read(ro::EXIT_REASON) as u32;
        let mut facts = ExitFacts {
            reason,
            qualification: vmcs02.read(ro::EXIT_QUALIFICATION),
            interruption_info: InterruptionInfo(vmcs02.read(ro::VMEXIT_INTERRUPTION_INFO) as u32),
            interruption_error_code: vmcs02.read(ro::VMEXIT_INTERRUPTION_ERR_CODE) as u32,
            instruction_info: 0,
            long_mode: false,
            gprs: [0; 16],
            timer12_expired: false,
        };
        if Self::reads_operands(reason) {
            // A VM exit stores EFER.LMA into "IA-32e mode guest" (SDM 28.2).
            let lma =
                EntryControls::from_bits_truncate(vmcs02.read(control::VMENTRY_CONTROLS) as u32)
                    .contains(EntryControls::IA32E_MODE_GUEST);
            let cs_long = vmcs02.read(CS.access_rights) as u32 & ar::L != 0;
            facts.instruction_info = vmcs02.read(ro::VMEXIT_INSTRUCTION_INFO) as u32;
            facts.long_mode = lma && cs_long;
            facts.gprs = gprs();
        }
        facts
    }

    /// Whether [`l2_wants_exit`] reads the instruction's operands for this exit reason: the
    /// register of MOV to CR, ECX of RDMSR/WRMSR, and VMREAD/VMWRITE's field encoding.
    pub const fn reads_operands(reason: u32) -> bool {
        matches!(
            reason as u16,
            reason::CR_ACCESS | reason::RDMSR | reason::WRMSR | reason::VMREAD | reason::VMWRITE
        ) && reason >> 31 == 0
    }

    fn gpr(&self, number: u64) -> u64 {
        self.gprs[Gpr::from_number(number as u32) as usize]
    }
}

/// Whether the guest hypervisor wants this exit of its L3 guest: whether vmcs12's controls would
/// have caused it on hardware. `mem` is the guest hypervisor's memory, where vmcs12's I/O, MSR
/// and VMREAD/VMWRITE bitmaps live; a bitmap that cannot be read counts as all ones (an absent
/// page reads as ones on the bus), i.e. reflect.
///
/// Asked only for exits l1-hv does not keep for itself ([`super::decide_l3_exit`] asks that
/// first). Reasons nvmx does not know are reflected, the conservative choice for a control nvmx
/// does not emulate.
pub(super) fn l2_wants_exit(exit: &ExitFacts, vmcs12: &impl Vmcs, mem: &impl GuestMemory) -> bool {
    let c = Controls::read(vmcs12);
    let primary = |bit: PrimaryControls| c.primary.contains(bit);
    let secondary = |bit: SecondaryControls| c.secondary.contains(bit);
    match exit.reason as u16 {
        reason::EXCEPTION_OR_NMI => exception_reflected(exit, vmcs12),
        reason::INTERRUPT_WINDOW => primary(PrimaryControls::INTERRUPT_WINDOW_EXITING),
        reason::NMI_WINDOW => primary(PrimaryControls::NMI_WINDOW_EXITING),
        reason::HLT => primary(PrimaryControls::HLT_EXITING),
        reason::INVLPG => primary(PrimaryControls::INVLPG_EXITING),
        reason::RDPMC => primary(PrimaryControls::RDPMC_EXITING),
        reason::RDTSC | reason::RDTSCP => primary(PrimaryControls::RDTSC_EXITING),
        reason::MWAIT => primary(PrimaryControls::MWAIT_EXITING),
        reason::MONITOR => primary(PrimaryControls::MONITOR_EXITING),
        reason::PAUSE => primary(PrimaryControls::PAUSE_EXITING),
        reason::MONITOR_TRAP_FLAG => primary(PrimaryControls::MONITOR_TRAP_FLAG),
        reason::MOV_DR => primary(PrimaryControls::MOV_DR_EXITING),
        reason::TPR_BELOW_THRESHOLD => primary(PrimaryControls::USE_TPR_SHADOW),
        reason::APIC_ACCESS => secondary(SecondaryControls::VIRTUALIZE_APIC),
        reason::GDTR_IDTR_ACCESS | reason::LDTR_TR_ACCESS => {
            secondary(SecondaryControls::DTABLE_EXITING)
        }
        reason::WBINVD => secondary(SecondaryControls::WBINVD_EXITING),
        reason::RDRAND => secondary(SecondaryControls::RDRAND_EXITING),
        reason::RDSEED => secondary(SecondaryControls::RDSEED_EXITING),
        // INVPCID exits iff "enable INVPCID" and "INVLPG exiting" (SDM 26.1.3).
        reason::INVPCID => {
            secondary(SecondaryControls::ENABLE_INVPCID) && primary(PrimaryControls::INVLPG_EXITING)
        }
        reason::CR_ACCESS => cr_access_reflected(exit, vmcs12, &c),
        reason::IO_INSTRUCTION => io_reflected(exit, vmcs12, mem, &c),
        reason::RDMSR | reason::WRMSR => msr_reflected(exit, vmcs12, mem, &c),
        reason::VMREAD | reason::VMWRITE => vmcs_access_reflected(exit, vmcs12, mem, &c),
        // Only the guest hypervisor's own count running out reaches here (l1-hv's is l1-hv's).
        reason::PREEMPTION_TIMER => exit.timer12_expired,
        // Triple fault, task switch, CPUID, GETSEC, INVD, RSM, XSETBV, every other VMX
        // instruction, VM-entry failures of vmcs02 (its guest state is vmcs12's), and reasons
        // nvmx does not know.
        _ => true,
    }
}

/// Exceptions by vmcs12's exception bitmap and #PF filter (the machine's NMIs and machine
/// checks were l1-hv's before this is asked).
fn exception_reflected(exit: &ExitFacts, vmcs12: &impl Vmcs) -> bool {
    Event::from_info(
        exit.interruption_info,
        exit.interruption_error_code,
        0,
        exit.qualification,
    )
    .is_none_or(|event| intercepts(&InterceptControls::from_vmcs(vmcs12), &event))
}

/// Control-register accesses (SDM 26.1.3).
fn cr_access_reflected(exit: &ExitFacts, vmcs12: &impl Vmcs, c: &Controls) -> bool {
    let primary = |bit: PrimaryControls| c.primary.contains(bit);
    let owned_change = |mask_field, shadow_field, value: u64| {
        (value ^ vmcs12.read(shadow_field)) & vmcs12.read(mask_field) != 0
    };
    match CrAccess::from_qualification(exit.qualification) {
        CrAccess::MovTo { cr: 0, gpr } => owned_change(
            control::CR0_GUEST_HOST_MASK,
            control::CR0_READ_SHADOW,
            exit.gprs[gpr as usize],
        ),
        CrAccess::MovTo { cr: 4, gpr } => owned_change(
            control::CR4_GUEST_HOST_MASK,
            control::CR4_READ_SHADOW,
            exit.gprs[gpr as usize],
        ),
        CrAccess::MovTo { cr: 3, gpr } => {
            primary(PrimaryControls::CR3_LOAD_EXITING)
                && !cr3_target(vmcs12, exit.gprs[gpr as usize])
        }
        CrAccess::MovTo { cr: 8, .. } => primary(PrimaryControls::CR8_LOAD_EXITING),
        CrAccess::MovFrom { cr: 3, .. } => primary(PrimaryControls::CR3_STORE_EXITING),
        CrAccess::MovFrom { cr: 8, .. } => primary(PrimaryControls::CR8_STORE_EXITING),
        // CLTS exits iff the guest hypervisor owns CR0.TS and its shadow says TS = 1.
        CrAccess::Clts => {
            vmcs12.read(control::CR0_GUEST_HOST_MASK)
                & vmcs12.read(control::CR0_READ_SHADOW)
                & CR0_TS
                != 0
        }
        // LMSW: an owned PE being set while the shadow has it clear, or an owned MP/EM/TS
        // changing (LMSW cannot clear PE).
        CrAccess::Lmsw { source, .. } => {
            let mask = vmcs12.read(control::CR0_GUEST_HOST_MASK);
            let shadow = vmcs12.read(control::CR0_READ_SHADOW);
            let msw = u64::from(source) & 0xF;
            (mask & msw & !shadow & 1 != 0) || (mask & (msw ^ shadow) & 0b1110 != 0)
        }
        _ => false,
    }
}

/// Whether `value` is among the first CR3-target-count CR3-target values.
fn cr3_target(vmcs12: &impl Vmcs, value: u64) -> bool {
    let targets = [
        control::CR3_TARGET_VALUE0,
        control::CR3_TARGET_VALUE1,
        control::CR3_TARGET_VALUE2,
        control::CR3_TARGET_VALUE3,
    ];
    let count = vmcs12.read(control::CR3_TARGET_COUNT) as usize;
    targets
        .iter()
        .take(count)
        .any(|&field| vmcs12.read(field) == value)
}

/// Reads bit `bit` of the bitmap page at `page`; an unreadable page reads as ones.
fn bitmap_bit(mem: &impl GuestMemory, page: u64, bit: u64) -> bool {
    let mut byte = [0];
    mem.read_or_ones(page + bit / 8, &mut byte);
    byte[0] & (1 << (bit % 8)) != 0
}

/// I/O instructions (SDM 26.1.3): "unconditional I/O exiting" unless I/O bitmaps are used, then
/// the bit of every port accessed; an access wrapping past port FFFFH always exits, and so
/// does one whose size field Table 28-5 does not use (the conservative choice).
fn io_reflected(
    exit: &ExitFacts,
    vmcs12: &impl Vmcs,
    mem: &impl GuestMemory,
    c: &Controls,
) -> bool {
    if !c.primary.contains(PrimaryControls::USE_IO_BITMAPS) {
        return c.primary.contains(PrimaryControls::UNCOND_IO_EXITING);
    }
    let Some(io) = IoInstruction::from_qualification(exit.qualification) else {
        return true;
    };
    io.ports().map(u64::from).any(|p| {
        if p > 0xFFFF {
            return true;
        }
        let (bitmap, index) = if p < 0x8000 {
            (control::IO_BITMAP_A_ADDR_FULL, p)
        } else {
            (control::IO_BITMAP_B_ADDR_FULL, p - 0x8000)
        };
        bitmap_bit(mem, vmcs12.read(bitmap), index)
    })
}

/// RDMSR/WRMSR (SDM 25.6.9): always without MSR bitmaps; with them, the MSR's bit for ECX in
/// 0–1FFFH or C0000000H–C0001FFFH, every other ECX exits.
fn msr_reflected(
    exit: &ExitFacts,
    vmcs12: &impl Vmcs,
    mem: &impl GuestMemory,
    c: &Controls,
) -> bool {
    if !c.primary.contains(PrimaryControls::USE_MSR_BITMAPS) {
        return true;
    }
    let msr = exit.gprs[Gpr::Rcx as usize] as u32;
    let write = exit.reason as u16 == reason::WRMSR;
    msr_bitmap_bit(msr, write)
        .is_none_or(|bit| bitmap_bit(mem, vmcs12.read(control::MSR_BITMAPS_ADDR_FULL), bit))
}

/// VMREAD/VMWRITE (SDM 26.1.3): exit unless "VMCS shadowing" is 1, the field encoding has no
/// bit set above bit 14, and its bit in the VMREAD/VMWRITE bitmap is 0. In that last case L3's
/// access goes to the shadow VMCS vmcs12's link pointer names, which l1-hv emulates.
fn vmcs_access_reflected(
    exit: &ExitFacts,
    vmcs12: &impl Vmcs,
    mem: &impl GuestMemory,
    c: &Controls,
) -> bool {
    if !c.secondary.contains(SecondaryControls::VMCS_SHADOWING) {
        return true;
    }
    let mut encoding = exit.gpr(u64::from(exit.instruction_info >> 28));
    if !exit.long_mode {
        encoding &= 0xFFFF_FFFF;
    }
    if encoding >> 15 != 0 {
        return true;
    }
    let bitmap = if exit.reason as u16 == reason::VMREAD {
        control::VMREAD_BITMAP_ADDR_FULL
    } else {
        control::VMWRITE_BITMAP_ADDR_FULL
    };
    bitmap_bit(mem, vmcs12.read(bitmap), encoding)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::event::InterruptionType;
    use shadow_vmcs::SoftVmcs;

    fn facts(reason: u16, qualification: u64) -> ExitFacts {
        ExitFacts {
            reason: reason.into(),
            qualification,
            interruption_info: InterruptionInfo::INVALID,
            interruption_error_code: 0,
            instruction_info: 0,
            long_mode: true,
            gprs: [0; 16],
            timer12_expired: false,
        }
    }

    fn decide(exit: &ExitFacts, vmcs12: &SoftVmcs, ram: &Ram) -> bool {
        l2_wants_exit(exit, vmcs12, ram)
    }

    fn exception(vector: u8, kind: InterruptionType, error_code: u32) -> ExitFacts {
        ExitFacts {
            interruption_info: InterruptionInfo::new(kind, vector, error_code != 0),
            interruption_error_code: error_code,
            ..facts(reason::EXCEPTION_OR_NMI, 0)
        }
    }

    fn set_primary(vmcs12: &mut SoftVmcs, bits: PrimaryControls, on: bool) {
        let field = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
        let value = vmcs12.read(field);
        let bits = u64::from(bits.bits());
        vmcs12.write(field, if on { value | bits } else { value & !bits });
    }

    /// The guest hypervisor wants the exit.
    const REFLECT: bool = true;
    /// It does not: the exit is l1-hv's ([`super::super::decide_l3_exit`] says what kind).
    const NOT_WANTED: bool = false;

    #[test]
    fn exceptions_follow_vmcs12s_bitmap_and_pf_filter() {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(control::EXCEPTION_BITMAP, 1 << 13 | 1 << 14 | 1 << 18);
        vmcs12.write(control::PAGE_FAULT_ERR_CODE_MASK, 1);
        vmcs12.write(control::PAGE_FAULT_ERR_CODE_MATCH, 1);
        let ram = Ram::new();
        let hw = InterruptionType::HardwareException;
        assert_eq!(decide(&exception(13, hw, 4), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&exception(6, hw, 0), &vmcs12, &ram), NOT_WANTED);
        assert_eq!(
            decide(&exception(14, hw, 3), &vmcs12, &ram),
            REFLECT,
            "PFEC matches"
        );
        assert_eq!(
            decide(&exception(14, hw, 2), &vmcs12, &ram),
            NOT_WANTED,
            "PFEC does not match"
        );
        vmcs12.write(control::EXCEPTION_BITMAP, 1 << 3);
        let int3 = exception(3, InterruptionType::SoftwareException, 0);
        assert_eq!(decide(&int3, &vmcs12, &ram), REFLECT);
    }

    #[test]
    fn unconditional_reasons() {
        let vmcs12 = good_vmcs12();
        let ram = Ram::new();
        for r in [
            reason::TRIPLE_FAULT,
            reason::TASK_SWITCH,
            reason::CPUID,
            reason::GETSEC,
            reason::INVD,
            reason::XSETBV,
            reason::VMCALL,
            reason::VMCLEAR,
            reason::VMLAUNCH,
            reason::VMPTRLD,
            reason::VMPTRST,
            reason::VMRESUME,
            reason::VMXOFF,
            reason::VMXON,
            reason::INVEPT,
            reason::INVVPID,
            70,
        ] {
            assert_eq!(decide(&facts(r, 0), &vmcs12, &ram), REFLECT, "reason {r}");
        }
        let entry_failure = ExitFacts {
            reason: 33 | 1 << 31,
            ..facts(0, 0)
        };
        assert_eq!(decide(&entry_failure, &vmcs12, &ram), REFLECT);
    }

    #[test]
    fn instruction_exits_follow_vmcs12_controls() {
        let mut vmcs12 = good_vmcs12();
        let ram = Ram::new();
        assert_eq!(decide(&facts(reason::HLT, 0), &vmcs12, &ram), REFLECT);
        set_primary(&mut vmcs12, PrimaryControls::HLT_EXITING, false);
        assert_eq!(decide(&facts(reason::HLT, 0), &vmcs12, &ram), NOT_WANTED);
        assert_eq!(decide(&facts(reason::RDTSCP, 0), &vmcs12, &ram), NOT_WANTED);
        set_primary(&mut vmcs12, PrimaryControls::RDTSC_EXITING, true);
        assert_eq!(decide(&facts(reason::RDTSCP, 0), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&facts(reason::MOV_DR, 0), &vmcs12, &ram), NOT_WANTED);
        set_primary(
            &mut vmcs12,
            PrimaryControls::MOV_DR_EXITING | PrimaryControls::INVLPG_EXITING,
            true,
        );
        assert_eq!(decide(&facts(reason::MOV_DR, 0), &vmcs12, &ram), REFLECT);
        assert_eq!(
            decide(&facts(reason::INVPCID, 0), &vmcs12, &ram),
            NOT_WANTED,
            "INVPCID not enabled"
        );
        assert_eq!(
            decide(&facts(reason::INTERRUPT_WINDOW, 0), &vmcs12, &ram),
            NOT_WANTED
        );
        set_primary(&mut vmcs12, PrimaryControls::INTERRUPT_WINDOW_EXITING, true);
        assert_eq!(
            decide(&facts(reason::INTERRUPT_WINDOW, 0), &vmcs12, &ram),
            REFLECT
        );
    }

    fn io(port: u64, size: u64) -> ExitFacts {
        facts(reason::IO_INSTRUCTION, port << 16 | (size - 1))
    }

    #[test]
    fn io_exits_follow_vmcs12s_io_bitmaps() {
        let vmcs12 = good_vmcs12();
        let mut ram = Ram::new();
        ram.set_bit(IO_BITMAP_A, 0x60);
        ram.set_bit(IO_BITMAP_B, 0);
        assert_eq!(decide(&io(0x60, 1), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&io(0x61, 1), &vmcs12, &ram), NOT_WANTED);
        assert_eq!(
            decide(&io(0x5F, 2), &vmcs12, &ram),
            REFLECT,
            "second port intercepted"
        );
        assert_eq!(
            decide(&io(0x7FFF, 2), &vmcs12, &ram),
            REFLECT,
            "port 8000H in bitmap B"
        );
        assert_eq!(
            decide(&io(0xFFFF, 2), &vmcs12, &ram),
            REFLECT,
            "wraps around"
        );
        assert_eq!(decide(&io(0xFFFE, 1), &vmcs12, &ram), NOT_WANTED);
    }

    #[test]
    fn io_exits_without_bitmaps_follow_unconditional_io_exiting() {
        let mut vmcs12 = good_vmcs12();
        set_primary(&mut vmcs12, PrimaryControls::USE_IO_BITMAPS, false);
        let ram = Ram::new();
        assert_eq!(decide(&io(0x60, 1), &vmcs12, &ram), NOT_WANTED);
        set_primary(&mut vmcs12, PrimaryControls::UNCOND_IO_EXITING, true);
        assert_eq!(decide(&io(0x60, 1), &vmcs12, &ram), REFLECT);
    }

    fn msr(write: bool, ecx: u64) -> ExitFacts {
        let mut exit = facts(if write { reason::WRMSR } else { reason::RDMSR }, 0);
        exit.gprs[Gpr::Rcx as usize] = ecx;
        exit
    }

    #[test]
    fn msr_exits_follow_vmcs12s_msr_bitmap() {
        let mut vmcs12 = good_vmcs12();
        let mut ram = Ram::new();
        ram.set_bit(MSR_BITMAP, 0x10); // read 10H
        ram.set_bit(MSR_BITMAP, 0xC00 * 8 + 0x80); // write C0000080H
        assert_eq!(decide(&msr(false, 0x10), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&msr(true, 0x10), &vmcs12, &ram), NOT_WANTED);
        assert_eq!(decide(&msr(true, 0xC000_0080), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&msr(false, 0xC000_0080), &vmcs12, &ram), NOT_WANTED);
        assert_eq!(
            decide(&msr(false, 0x4000_0000), &vmcs12, &ram),
            REFLECT,
            "outside the ranges"
        );
        set_primary(&mut vmcs12, PrimaryControls::USE_MSR_BITMAPS, false);
        assert_eq!(decide(&msr(true, 0x10), &vmcs12, &ram), REFLECT);
    }

    fn mov_cr(access: u64, cr: u64, value: u64) -> ExitFacts {
        let mut exit = facts(reason::CR_ACCESS, access << 4 | cr | 2 << 8);
        exit.gprs[Gpr::Rdx as usize] = value;
        exit
    }

    #[test]
    fn cr_accesses_follow_masks_shadows_and_cr3_cr8_controls() {
        let mut vmcs12 = good_vmcs12();
        vmcs12.write(control::CR0_GUEST_HOST_MASK, 0x8000_0009); // PG, TS, PE
        vmcs12.write(control::CR0_READ_SHADOW, 0x8000_0039);
        let ram = Ram::new();
        assert_eq!(
            decide(&mov_cr(0, 0, 0x8000_0039), &vmcs12, &ram),
            NOT_WANTED,
            "owned bits unchanged"
        );
        assert_eq!(
            decide(&mov_cr(0, 0, 0x8000_0031), &vmcs12, &ram),
            REFLECT,
            "TS cleared"
        );
        assert_eq!(
            decide(&mov_cr(0, 4, 0), &vmcs12, &ram),
            NOT_WANTED,
            "CR4 owned by l1-hv only"
        );
        assert_eq!(
            decide(&mov_cr(2, 0, 0), &vmcs12, &ram),
            REFLECT,
            "CLTS with TS owned and set"
        );
        let lmsw = |msw: u64| facts(reason::CR_ACCESS, msw << 16 | 3 << 4);
        assert_eq!(
            decide(&lmsw(0x9), &vmcs12, &ram),
            NOT_WANTED,
            "PE and TS as shadowed"
        );
        assert_eq!(decide(&lmsw(0x1), &vmcs12, &ram), REFLECT, "TS cleared");
        set_primary(
            &mut vmcs12,
            PrimaryControls::CR3_LOAD_EXITING | PrimaryControls::CR8_STORE_EXITING,
            true,
        );
        vmcs12.write(control::CR3_TARGET_COUNT, 1);
        vmcs12.write(control::CR3_TARGET_VALUE0, 0x5000);
        assert_eq!(
            decide(&mov_cr(0, 3, 0x5000), &vmcs12, &ram),
            NOT_WANTED,
            "CR3 target"
        );
        assert_eq!(decide(&mov_cr(0, 3, 0x6000), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&mov_cr(1, 8, 0), &vmcs12, &ram), REFLECT);
        assert_eq!(decide(&mov_cr(0, 8, 0), &vmcs12, &ram), NOT_WANTED);
    }

    #[test]
    fn vmread_and_vmwrite_follow_vmcs_shadowing_bitmaps() {
        let mut vmcs12 = good_vmcs12();
        let ram_bitmaps = |ram: &mut Ram| ram.set_bit(0x8000, 0x4402);
        let mut ram = Ram::new();
        ram_bitmaps(&mut ram);
        let vmread = |encoding: u64| {
            let mut exit = facts(reason::VMREAD, 0);
            exit.instruction_info = 3 << 28; // field encoding in RBX
            exit.gprs[Gpr::Rbx as usize] = encoding;
            exit
        };
        assert_eq!(
            decide(&vmread(0x6400), &vmcs12, &ram),
            REFLECT,
            "no VMCS shadowing"
        );
        let secondary = control::SECONDARY_PROCBASED_EXEC_CONTROLS;
        vmcs12.write(
            secondary,
            vmcs12.read(secondary) | u64::from(SecondaryControls::VMCS_SHADOWING.bits()),
        );
        vmcs12.write(control::VMREAD_BITMAP_ADDR_FULL, 0x8000);
        vmcs12.write(control::VMWRITE_BITMAP_ADDR_FULL, 0x9000);
        assert_eq!(
            decide(&vmread(0x6400), &vmcs12, &ram),
            NOT_WANTED,
            "read from the shadow VMCS"
        );
        assert_eq!(
            decide(&vmread(0x4402), &vmcs12, &ram),
            REFLECT,
            "bitmap bit set"
        );
        assert_eq!(
            decide(&vmread(0x1_0000), &vmcs12, &ram),
            REFLECT,
            "bits above 14"
        );
        let mut legacy = vmread(0x1_0000_6400);
        legacy.long_mode = false;
        assert_eq!(decide(&legacy, &vmcs12, &ram), NOT_WANTED, "32-bit operand");
    }

    #[test]
    fn facts_are_read_from_vmcs02() {
        let mut vmcs02 = AnyVmcs::new();
        vmcs02.write(ro::EXIT_REASON, reason::VMREAD.into());
        vmcs02.write(ro::EXIT_QUALIFICATION, 0x60_0000);
        vmcs02.write(ro::VMEXIT_INSTRUCTION_INFO, 5 << 28);
        vmcs02.write(
            control::VMENTRY_CONTROLS,
            u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
        );
        vmcs02.write(CS.access_rights, 0xA09B);
        let exit = ExitFacts::from_vmcs02(&vmcs02, || [7; 16]);
        assert_eq!(
            (exit.reason, exit.qualification, exit.instruction_info),
            (reason::VMREAD.into(), 0x60_0000, 5 << 28)
        );
        assert!(exit.long_mode);
        assert_eq!(exit.gprs[15], 7);
    }

    /// `from_vmcs02` leaves the operands out for every other reason: the decision must then not
    /// depend on them, whatever vmcs12's controls and bitmaps say.
    #[test]
    fn only_the_operand_reading_exits_depend_on_operands() {
        let mut vmcs12 = good_vmcs12();
        let ram = Ram::new();
        // Every control bit set, so that any rule reading an operand could see it.
        for field in [
            control::PRIMARY_PROCBASED_EXEC_CONTROLS,
            control::SECONDARY_PROCBASED_EXEC_CONTROLS,
            control::EXCEPTION_BITMAP,
        ] {
            vmcs12.write(field, u64::from(u32::MAX));
        }
        for basic in 0..=80u16 {
            let reason = u32::from(basic);
            if ExitFacts::reads_operands(reason) {
                continue;
            }
            let plain = facts(basic, 0x1234);
            let with_operands = ExitFacts {
                instruction_info: u32::MAX,
                long_mode: false,
                gprs: [u64::MAX; 16],
                timer12_expired: false,
                ..facts(basic, 0x1234)
            };
            assert_eq!(
                decide(&plain, &vmcs12, &ram),
                decide(&with_operands, &vmcs12, &ram),
                "reason {basic}"
            );
        }
    }
}
