//! Checks on the VM-execution, VM-exit and VM-entry control fields (SDM 27.2.1).

use super::super::arch::{page_address_valid, within_width, CR0_PE, CR4_CET};
use super::super::controls::{Controls, RawControls};
use super::super::msr_area::MSR_ENTRY_BYTES;
use super::EntryContext;
use crate::event::{
    vector_has_error_code, InterruptionInfo, InterruptionType, CONTROL_PROTECTION_VECTOR,
};
use crate::insn::{eptp_valid, GuestMemory, VmxCapabilities};
use shadow_vmcs::Vmcs;
use x86::irq::NONMASKABLE_INTERRUPT_VECTOR;
use x86::vmx::vmcs::control::{
    self, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::guest;

/// IA32_VMX_BASIC bit 55: the TRUE control MSRs report the real default1 bits.
const BASIC_TRUE_CONTROLS: u64 = 1 << 55;
/// IA32_VMX_MISC bit 30: VM entry may inject software events with instruction length 0.
const MISC_ZERO_LENGTH_INJECTION: u64 = 1 << 30;
/// Offset of VTPR in the virtual-APIC page.
const VTPR_OFFSET: u64 = 0x80;
/// Bits 30:12 of the VM-entry interruption-information field are reserved.
const INJECTION_RESERVED: u32 = 0x7FFF_F000;

/// Whether a control word has every must-be-1 bit (bits 31:0 of its capability MSR) and no bit
/// outside the allowed-1 settings (bits 63:32) (SDM A.3–A.5).
fn allowed(value: u32, capability: u64) -> bool {
    let must_be_one = capability as u32;
    let may_be_one = (capability >> 32) as u32;
    value & must_be_one == must_be_one && value & !may_be_one == 0
}

/// The capability MSRs a control word is checked against: the TRUE ones where they exist.
struct ControlCaps {
    pin: u64,
    primary: u64,
    exit: u64,
    entry: u64,
}

impl ControlCaps {
    fn of(caps: &VmxCapabilities) -> Self {
        if caps.basic & BASIC_TRUE_CONTROLS != 0 {
            ControlCaps {
                pin: caps.true_pinbased,
                primary: caps.true_procbased,
                exit: caps.true_exit,
                entry: caps.true_entry,
            }
        } else {
            ControlCaps {
                pin: caps.pinbased,
                primary: caps.procbased,
                exit: caps.exit,
                entry: caps.entry,
            }
        }
    }
}

pub(super) fn controls_valid(
    v: &impl Vmcs,
    mem: &impl GuestMemory,
    ctx: &EntryContext<'_>,
) -> bool {
    let c = Controls::read(v);
    let raw = RawControls::read(v);
    let caps = ControlCaps::of(ctx.caps);
    execution_controls_valid(v, mem, ctx, &c, &raw, &caps)
        && allowed(raw.exit, caps.exit)
        // SDM 27.2.1.2: "save VMX-preemption timer value" only with the timer activated.
        && (c.pin.contains(PinbasedControls::VMX_PREEMPTION_TIMER)
            || !c.exit.contains(ExitControls::SAVE_VMX_PREEMPTION_TIMER))
        && msr_area_valid(
            v,
            control::VMEXIT_MSR_STORE_COUNT,
            control::VMEXIT_MSR_STORE_ADDR_FULL,
            ctx,
        )
        && msr_area_valid(
            v,
            control::VMEXIT_MSR_LOAD_COUNT,
            control::VMEXIT_MSR_LOAD_ADDR_FULL,
            ctx,
        )
        && allowed(raw.entry, caps.entry)
        && msr_area_valid(
            v,
            control::VMENTRY_MSR_LOAD_COUNT,
            control::VMENTRY_MSR_LOAD_ADDR_FULL,
            ctx,
        )
        && injection_valid(v, ctx, &c, &caps)
}

/// The event-injection rules alone (SDM 27.2.1.3), for an entry where only the injection fields
/// changed since vmcs12 last passed every check.
pub(super) fn injection_controls_valid(
    v: &impl Vmcs,
    ctx: &EntryContext<'_>,
    c: &Controls,
) -> bool {
    injection_valid(v, ctx, c, &ControlCaps::of(ctx.caps))
}

/// SDM 27.2.1.1.
fn execution_controls_valid(
    v: &impl Vmcs,
    mem: &impl GuestMemory,
    ctx: &EntryContext<'_>,
    c: &Controls,
    raw: &RawControls,
    caps: &ControlCaps,
) -> bool {
    let bits = ctx.phys_addr_bits;
    let page = |field| page_address_valid(v.read(field), bits);
    let cr3_targets_max = (ctx.caps.misc >> 16) & 0x1FF;
    let secondary_ok = !c.primary.contains(PrimaryControls::SECONDARY_CONTROLS)
        || allowed(raw.secondary, ctx.caps.procbased2);
    allowed(raw.pin, caps.pin)
        && allowed(raw.primary, caps.primary)
        && secondary_ok
        && v.read(control::CR3_TARGET_COUNT) <= cr3_targets_max
        && (!c.primary.contains(PrimaryControls::USE_IO_BITMAPS)
            || (page(control::IO_BITMAP_A_ADDR_FULL) && page(control::IO_BITMAP_B_ADDR_FULL)))
        && (!c.primary.contains(PrimaryControls::USE_MSR_BITMAPS)
            || page(control::MSR_BITMAPS_ADDR_FULL))
        && tpr_shadow_valid(v, mem, bits, c)
        && (c.pin.contains(PinbasedControls::NMI_EXITING)
            || !c.pin.contains(PinbasedControls::VIRTUAL_NMIS))
        && (c.pin.contains(PinbasedControls::VIRTUAL_NMIS)
            || !c.primary.contains(PrimaryControls::NMI_WINDOW_EXITING))
        && (!c.secondary.contains(SecondaryControls::VIRTUALIZE_APIC)
            || page(control::APIC_ACCESS_ADDR_FULL))
        && (!c.secondary.contains(SecondaryControls::ENABLE_VPID) || v.read(control::VPID) != 0)
        && (!c.ept() || eptp_valid(v.read(control::EPTP_FULL), ctx.caps.ept_vpid_cap, bits))
        && (!c.unrestricted_guest() || c.ept())
        && (!c.secondary.contains(SecondaryControls::VMCS_SHADOWING)
            || (page(control::VMREAD_BITMAP_ADDR_FULL) && page(control::VMWRITE_BITMAP_ADDR_FULL)))
}

/// "Use TPR shadow" (SDM 27.2.1.1), three rules and nothing more:
/// * the virtual-APIC address is 4-KiB aligned and within the physical-address width — VM entry
///   does not ask for RAM there (kvm-unit-tests places the page beyond RAM, with CR8 exiting so
///   that it is never used);
/// * without "virtual-interrupt delivery", TPR threshold bits 31:4 are 0;
/// * without "virtual-interrupt delivery" and without "virtualize APIC accesses", threshold bits
///   3:0 do not exceed VTPR bits 7:4. With "virtualize APIC accesses" (and no virtual-interrupt
///   delivery) the same comparison instead makes a TPR-below-threshold VM exit right after the
///   entry (SDM 27.7.7), which the processor makes on vmcs02 and which goes to the guest
///   hypervisor.
///
/// VTPR is read from the guest hypervisor's memory as the processor reads it: from a page that
/// is not RAM, all ones (class 15, which no threshold exceeds). l1-hv gives vmcs02 a page that
/// reads so at each entry (see [`super::super::L1Needs::virtual_apic_page`]), so the
/// processor's own check on vmcs02 agrees.
fn tpr_shadow_valid(v: &impl Vmcs, mem: &impl GuestMemory, bits: u8, c: &Controls) -> bool {
    if !c.primary.contains(PrimaryControls::USE_TPR_SHADOW) {
        return true;
    }
    let page = v.read(control::VIRT_APIC_ADDR_FULL);
    let threshold = v.read(control::TPR_THRESHOLD);
    let virtual_interrupts = c
        .secondary
        .contains(SecondaryControls::VIRTUAL_INTERRUPT_DELIVERY);
    page_address_valid(page, bits)
        && (virtual_interrupts || threshold >> 4 == 0)
        && (!reads_vtpr(c) || threshold & 0xF <= u64::from(vtpr_class(mem, page)))
}

/// Whether VM entry compares the TPR threshold with VTPR (SDM 27.2.1.1): "use TPR shadow" 1,
/// "virtualize APIC accesses" and "virtual-interrupt delivery" 0. The only control check that
/// reads memory.
pub(super) fn reads_vtpr(c: &Controls) -> bool {
    c.primary.contains(PrimaryControls::USE_TPR_SHADOW)
        && !c.secondary.intersects(
            SecondaryControls::VIRTUALIZE_APIC | SecondaryControls::VIRTUAL_INTERRUPT_DELIVERY,
        )
}

/// Bits 7:4 of VTPR in the virtual-APIC page at `page`, memory that is not RAM reading as all
/// ones.
fn vtpr_class(mem: &impl GuestMemory, page: u64) -> u8 {
    let mut vtpr = [0];
    mem.read_or_ones(page + VTPR_OFFSET, &mut vtpr);
    vtpr[0] >> 4
}

/// An MSR-load/store area: if the count is not 0, the address is 16-byte aligned and the last
/// byte lies within the physical-address width (SDM 27.2.1.2, 27.2.1.3).
fn msr_area_valid(v: &impl Vmcs, count: u32, address: u32, ctx: &EntryContext<'_>) -> bool {
    let count = v.read(count);
    let address = v.read(address);
    count == 0
        || (address & 0xF == 0
            && address
                .checked_add(count * MSR_ENTRY_BYTES - 1)
                .is_some_and(|last| within_width(last, ctx.phys_addr_bits)))
}

/// The VM-entry event-injection fields (SDM 27.2.1.3).
fn injection_valid(
    v: &impl Vmcs,
    ctx: &EntryContext<'_>,
    c: &Controls,
    caps: &ControlCaps,
) -> bool {
    let info = InterruptionInfo(v.read(control::VMENTRY_INTERRUPTION_INFO_FIELD) as u32);
    if !info.valid() {
        return true;
    }
    // Type 1 is reserved.
    let Some(kind) = info.interruption_type() else {
        return false;
    };
    let vector = info.vector();
    let vector_ok = match kind {
        InterruptionType::Nmi => vector == NONMASKABLE_INTERRUPT_VECTOR,
        InterruptionType::HardwareException => vector <= 31,
        // Pending MTF: only where the monitor trap flag exists.
        InterruptionType::OtherEvent => {
            let mtf = PrimaryControls::MONITOR_TRAP_FLAG.bits();
            vector == 0 && (caps.primary >> 32) as u32 & mtf == mtf
        }
        _ => true,
    };
    // With "unrestricted guest" the guest may start in real mode, where no error code is pushed;
    // without it the guest is in protected mode whatever CR0.PE says.
    let protected_mode = !c.unrestricted_guest() || v.read(guest::CR0) & CR0_PE != 0;
    // #CP pushes an error code only on processors with CET (CR4.CET allowed in VMX operation).
    let cet = ctx.caps.cr4_fixed1 & CR4_CET != 0;
    let has_error_code =
        vector_has_error_code(vector) && (vector != CONTROL_PROTECTION_VECTOR || cet);
    let error_code_expected =
        kind == InterruptionType::HardwareException && protected_mode && has_error_code;
    let error_code_ok =
        !info.deliver_error_code() || v.read(control::VMENTRY_EXCEPTION_ERR_CODE) >> 16 == 0;
    let length = v.read(control::VMENTRY_INSTRUCTION_LEN);
    let length_ok = !kind.is_software()
        || (1..=15).contains(&length)
        || (length == 0 && ctx.caps.misc & MISC_ZERO_LENGTH_INJECTION != 0);
    vector_ok
        && info.bits() & INJECTION_RESERVED == 0
        && info.deliver_error_code() == error_code_expected
        && error_code_ok
        && length_ok
}
