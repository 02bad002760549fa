//! Target `nested_entry`: arbitrary field writes into a vmcs12 that starts from a valid
//! configuration (64-bit, real mode under "unrestricted guest", or PAE paging without EPT), then
//! the nested VM entry and the exit back to the guest hypervisor.
//!
//! Properties:
//! - no panic;
//! - a failed check reports only what SDM 27.2/27.3/27.8 allow (VMfailValid 7 or 8; an exit with
//!   reason 33 | 1 << 31 and qualification 0, 2 or 4), and recording it
//!   ([`EntryFailure::write_to`]) changes vmcs12 in those fields only;
//! - an accepted vmcs12 gives, through [`prepare_vmcs02`] and l1-hv's host state, a vmcs02 that
//!   passes the same checks under the *host's* capabilities: the real VM entry cannot fail
//!   (docs/nested-engine.md); and vmcs02 exits at least whenever vmcs12 asked for an exit
//!   (exiting controls, exception bitmap, CR0/CR4 guest/host masks are supersets);
//! - whenever the host state passed (entry accepted, or failed on guest state), loading it into
//!   vmcs01 ([`load_l2_host_state`], SDM 28.5) never panics and gives a vmcs01 that passes the
//!   checks under the host's capabilities, or a VMX abort only for a 32-bit PAE host.

use crate::config::{
    entry_ram, good_vmcs12, host_caps, l1_needs, real_mode_vmcs12, write_l1_host_state,
    GUEST_PHYS_ADDR_BITS, HOST_PHYS_ADDR_BITS, PDPT,
};
use crate::memory::Ram;
use crate::vmcs::AnyVmcs;
use arbitrary::Arbitrary;
use nvmx::insn::VmInstructionError;
use nvmx::nested::{
    check_vmcs12, load_l2_host_state, prepare_vmcs02, EntryContext, EntryFailure, L2Inherited,
    Vmcs12Pages, VmxAbort,
};
use shadow_vmcs::{supported_fields, Field, SoftVmcs, Vmcs};
use std::sync::OnceLock;
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{guest, host, ro};

/// The whole input.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Starting configuration: % 3 = 64-bit, real mode, PAE without EPT.
    pub base: u8,
    /// The guest hypervisor's mode: below 0xE0 IA-32e (as the 64-bit host state needs), else not.
    pub mode: u8,
    /// L2's IA32_DEBUGCTL (bits 1:0: LBR, BTF), L2's EFER (bits 3:2), l1-hv's needs (bits 15:4).
    pub l2: u16,
    /// The edits.
    pub writes: Vec<Write>,
}

/// One edit of a vmcs12 field.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// The field: a supported vmcs12 field (FULL encoding), by index.
    pub field: u8,
    /// How `value` changes it: % 4 = set bit `value % 64`, clear it, replace, add.
    pub how: u8,
    /// The operand.
    pub value: u64,
}

fn base_vmcs12(base: u8) -> SoftVmcs {
    match base % 3 {
        0 => good_vmcs12(),
        1 => real_mode_vmcs12(),
        _ => {
            let mut v = good_vmcs12();
            let entry = v.read(control::VMENTRY_CONTROLS);
            v.write(
                control::VMENTRY_CONTROLS,
                entry & !u64::from(EntryControls::IA32E_MODE_GUEST.bits()),
            );
            v.write(
                control::SECONDARY_PROCBASED_EXEC_CONTROLS,
                SecondaryControls::ENABLE_VPID.bits().into(),
            );
            v.write(guest::IA32_EFER_FULL, 0);
            v.write(guest::CS_ACCESS_RIGHTS, 0xC09B);
            v.write(guest::CR3, PDPT);
            v
        }
    }
}

/// Applies the edits.
pub fn edited_vmcs12(input: &Input) -> SoftVmcs {
    let fields: Vec<Field> = supported_fields().collect();
    let mut v = base_vmcs12(input.base);
    for w in &input.writes {
        let field = fields[usize::from(w.field) % fields.len()];
        let old = v.get(field).expect("a supported field");
        let new = match w.how % 4 {
            0 => old | 1 << (w.value % 64),
            1 => old & !(1 << (w.value % 64)),
            2 => w.value,
            _ => old.wrapping_add(w.value),
        };
        v.set(field, new).expect("a supported field");
    }
    v
}

/// L2's registers L3 inherits, consistent with the entry context's `l2_debugctl`.
fn l2_inherited(input: &Input) -> L2Inherited {
    L2Inherited {
        efer: [0, 0x500, 0xD01, 0x100][usize::from(input.l2 >> 2 & 3)],
        pat: 0x0007_0406_0007_0406,
        dr7: 0x400,
        debugctl: u64::from(input.l2 & 3),
    }
}

/// l1-hv's needs, varied by `l2` bits 15:4 within what l1-hv may ask for.
fn needs(input: &Input, vmcs12: &SoftVmcs) -> nvmx::nested::L1Needs {
    let bit = |n: u32| input.l2 & 1 << n != 0;
    let mut needs = l1_needs(l2_inherited(input));
    if bit(4) {
        needs.msr_bitmap = None;
    }
    if bit(5) {
        needs.io_bitmaps = Some((0x56_0000, 0x57_0000));
    }
    if bit(6) {
        needs.exception_bitmap |= 1 << 14;
    }
    if bit(7) {
        needs.vpid02 = 0;
    }
    if bit(8) {
        needs.primary |= PrimaryControls::USE_TSC_OFFSETTING;
        needs.tsc_offset = 0x1000;
    }
    if bit(9) {
        needs.cr0_mask |= 1 << 5 | 1 << 16;
    }
    if bit(10) {
        needs.primary |= PrimaryControls::NMI_WINDOW_EXITING;
    }
    if bit(11) {
        needs.primary |= PrimaryControls::CR3_LOAD_EXITING;
    }
    if bit(12) {
        needs.secondary |= SecondaryControls::WBINVD_EXITING | SecondaryControls::DTABLE_EXITING;
    }
    // The kernel translates these guest-physical pages; the harness maps them 1:1, so the real
    // CPU reads the same virtual-APIC page the checks read.
    let pages = Vmcs12Pages::of(vmcs12);
    needs.virtual_apic_page = pages.virtual_apic.unwrap_or(0);
    needs.apic_access_page = pages.apic_access.unwrap_or(0);
    needs
}

fn ram() -> &'static Ram {
    static RAM: OnceLock<Ram> = OnceLock::new();
    RAM.get_or_init(entry_ram)
}

fn host_context(caps: &nvmx::insn::VmxCapabilities) -> EntryContext<'_> {
    EntryContext {
        caps,
        phys_addr_bits: HOST_PHYS_ADDR_BITS,
        ia32e_mode: true,
        l2_debugctl: 0,
    }
}

/// vmcs01 as l1-hv runs a 64-bit guest hypervisor: built like a vmcs02 of [`good_vmcs12`], with
/// l1-hv's host state; it passes the host's checks (asserted once).
fn vmcs01() -> &'static AnyVmcs {
    static VMCS01: OnceLock<AnyVmcs> = OnceLock::new();
    VMCS01.get_or_init(|| {
        let mut v = AnyVmcs::default();
        prepare_vmcs02(
            &good_vmcs12(),
            &mut v,
            &l1_needs(L2Inherited::default()),
            ram(),
        );
        write_l1_host_state(&mut v);
        let caps = host_caps();
        assert_eq!(check_vmcs12(&v, ram(), &host_context(&caps)), Ok(()));
        v
    })
}

/// The result of the checks, for the `seeds` classes.
pub fn classify(input: &Input) -> String {
    let v = edited_vmcs12(input);
    let caps = host_caps().for_guest(true);
    let ctx = guest_context(input, &caps);
    format!("base{}-{:?}", input.base % 3, check_vmcs12(&v, ram(), &ctx))
        .replace([' ', '{', '}', ',', ':', '(', ')'], "")
}

fn guest_context<'a>(input: &Input, caps: &'a nvmx::insn::VmxCapabilities) -> EntryContext<'a> {
    EntryContext {
        caps,
        phys_addr_bits: GUEST_PHYS_ADDR_BITS,
        ia32e_mode: input.mode < 0xE0,
        l2_debugctl: u64::from(input.l2 & 3),
    }
}

/// Runs the entry and exit and checks the properties.
pub fn check(input: &Input) {
    let v12 = edited_vmcs12(input);
    let guest_caps = host_caps().for_guest(true);
    let host_caps = host_caps();
    let result = check_vmcs12(&v12, ram(), &guest_context(input, &guest_caps));
    let mut after = v12.clone();
    match result {
        Ok(()) => check_vmcs02(input, &v12, &host_caps),
        Err(failure) => {
            failure.write_to(&mut after);
            check_failure_record(&v12, &after, failure);
        }
    }
    if !matches!(result, Err(EntryFailure::VmFailValid(_))) {
        check_host_load(&after, &host_caps);
    }
}

/// SDM 27.8: what a failure may say, and that recording it touches only those fields.
fn check_failure_record(before: &SoftVmcs, after: &SoftVmcs, failure: EntryFailure) {
    let mut expected = before.clone();
    match failure {
        EntryFailure::VmFailValid(error) => {
            assert!(
                matches!(
                    error,
                    VmInstructionError::EntryInvalidControls
                        | VmInstructionError::EntryInvalidHostState
                ),
                "VM entry failed with error {error:?}"
            );
            expected.write(ro::VM_INSTRUCTION_ERROR, error as u64);
        }
        EntryFailure::Exit {
            reason,
            qualification,
        } => {
            assert_eq!(reason, 33 | 1 << 31, "entry-failure exit reason");
            assert!(
                matches!(qualification, 0 | 2 | 4),
                "qualification {qualification}"
            );
            expected.write(ro::EXIT_REASON, reason.into());
            expected.write(ro::EXIT_QUALIFICATION, qualification);
        }
    }
    assert_eq!(
        *after, expected,
        "recording {failure:?} changed other vmcs12 fields"
    );
}

/// Exiting controls: if vmcs12 sets one, the guest hypervisor expects that exit (SDM 25.6).
const PIN_EXITING: PinbasedControls =
    PinbasedControls::EXTERNAL_INTERRUPT_EXITING.union(PinbasedControls::NMI_EXITING);
const PRIMARY_EXITING: PrimaryControls = PrimaryControls::INTERRUPT_WINDOW_EXITING
    .union(PrimaryControls::HLT_EXITING)
    .union(PrimaryControls::INVLPG_EXITING)
    .union(PrimaryControls::MWAIT_EXITING)
    .union(PrimaryControls::RDPMC_EXITING)
    .union(PrimaryControls::RDTSC_EXITING)
    .union(PrimaryControls::CR8_LOAD_EXITING)
    .union(PrimaryControls::CR8_STORE_EXITING)
    .union(PrimaryControls::NMI_WINDOW_EXITING)
    .union(PrimaryControls::MOV_DR_EXITING)
    .union(PrimaryControls::MONITOR_TRAP_FLAG)
    .union(PrimaryControls::MONITOR_EXITING)
    .union(PrimaryControls::PAUSE_EXITING)
    .union(PrimaryControls::CR3_STORE_EXITING);
const SECONDARY_EXITING: SecondaryControls = SecondaryControls::DTABLE_EXITING
    .union(SecondaryControls::WBINVD_EXITING)
    .union(SecondaryControls::RDRAND_EXITING)
    .union(SecondaryControls::RDSEED_EXITING);

fn check_vmcs02(input: &Input, v12: &SoftVmcs, host_caps: &nvmx::insn::VmxCapabilities) {
    let needs = needs(input, v12);
    let mut v02 = AnyVmcs::default();
    prepare_vmcs02(v12, &mut v02, &needs, ram());
    write_l1_host_state(&mut v02);
    let real = check_vmcs12(&v02, ram(), &host_context(host_caps));
    assert_eq!(
        real,
        Ok(()),
        "an accepted vmcs12 gave a vmcs02 the CPU rejects"
    );

    let word = |v: &dyn Fn(u32) -> u64, field| v(field) as u32;
    let r12 = |f| v12.read(f);
    let r02 = |f| v02.read(f);
    let pin12 = PinbasedControls::from_bits_truncate(word(&r12, control::PINBASED_EXEC_CONTROLS));
    let pin02 = PinbasedControls::from_bits_truncate(word(&r02, control::PINBASED_EXEC_CONTROLS));
    assert!(
        pin02.contains(pin12 & PIN_EXITING),
        "vmcs02 lost pin-based exiting"
    );
    let primary = control::PRIMARY_PROCBASED_EXEC_CONTROLS;
    let p12 = PrimaryControls::from_bits_truncate(word(&r12, primary));
    let p02 = PrimaryControls::from_bits_truncate(word(&r02, primary));
    assert!(
        p02.contains(p12 & PRIMARY_EXITING),
        "vmcs02 lost primary exiting"
    );
    if p12.contains(PrimaryControls::SECONDARY_CONTROLS) {
        let secondary = control::SECONDARY_PROCBASED_EXEC_CONTROLS;
        let s12 = SecondaryControls::from_bits_truncate(word(&r12, secondary));
        let s02 = SecondaryControls::from_bits_truncate(word(&r02, secondary));
        assert!(
            s02.contains(s12 & SECONDARY_EXITING),
            "vmcs02 lost secondary exiting"
        );
    }
    for field in [
        control::EXCEPTION_BITMAP,
        control::CR0_GUEST_HOST_MASK,
        control::CR4_GUEST_HOST_MASK,
    ] {
        let (a, b) = (v12.read(field), v02.read(field));
        assert_eq!(
            a & !b,
            0,
            "vmcs02 field {field:#x} = {b:#x} lacks vmcs12's {a:#x}"
        );
    }
}

/// SDM 28.5: the host state that passed the checks loads into a guest state the CPU accepts.
fn check_host_load(v12: &SoftVmcs, host_caps: &nvmx::insn::VmxCapabilities) {
    let mut v01 = vmcs01().clone();
    match load_l2_host_state(v12, &mut v01, ram(), GUEST_PHYS_ADDR_BITS) {
        Ok(()) => {
            let result = check_vmcs12(&v01, ram(), &host_context(host_caps));
            assert_eq!(
                result,
                Ok(()),
                "vmcs01 after loading vmcs12's host state fails"
            );
        }
        Err(VmxAbort::HostPdpteCorrupted) => {
            let exit = ExitControls::from_bits_truncate(v12.read(control::VMEXIT_CONTROLS) as u32);
            let host64 = exit.contains(ExitControls::HOST_ADDRESS_SPACE_SIZE);
            let pae = v12.read(host::CR4) & 1 << 5 != 0;
            assert!(
                !host64 && pae,
                "VMX abort for PDPTEs of a host without PAE paging"
            );
        }
        Err(abort @ (VmxAbort::StoreGuestMsrs | VmxAbort::LoadHostMsrs)) => {
            panic!("loading the host state touches no MSR area: {abort:?}")
        }
    }
}
