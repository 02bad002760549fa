//! The machine's interrupt hardware as l1-hv touches it on behalf of a kernel guest that owns
//! it (passed through): raising an emulated device's ISA interrupt the way the guest programmed
//! the I/O APIC, and putting the hardware back to quiet when such a guest ends, so that the
//! next guest does not inherit its timers and pending interrupts.
//!
//! Addresses are the PC's architectural defaults (local APIC base from IA32_APIC_BASE; I/O APIC
//! at 0xFEC00000, HPET at 0xFED00000 as Bochs', QEMU's and most firmware's ACPI tables say).

use core::ptr::{read_volatile, write_volatile};
use x86::msr::{rdmsr, wrmsr, IA32_APIC_BASE};

const IOAPIC_BASE: u64 = 0xfec0_0000;
/// I/O APIC register select (IOREGSEL) and window (IOWIN) offsets (82093AA datasheet 3.0).
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const IOAPIC_VERSION: u32 = 0x01;
const IOAPIC_REDIRECTION: u32 = 0x10;
/// Redirection-entry bits: mask (16), delivery mode (10:8), vector (7:0).
const RTE_MASKED: u32 = 1 << 16;
const RTE_DELIVERY_MODE: u32 = 0x700;
const RTE_LOWEST_PRIORITY: u32 = 0x100;
const HPET_BASE: u64 = 0xfed0_0000;
/// HPET general configuration register, ENABLE_CNF bit (HPET spec 2.3.5).
const HPET_CONFIG: u64 = 0x10;
/// IA32_APIC_BASE: x2APIC mode enable (bit 10), APIC global enable (bit 11), base (51:12).
const APIC_X2APIC: u64 = 1 << 10;
const APIC_ENABLED: u64 = 1 << 11;
const APIC_BASE_MASK: u64 = 0x000f_ffff_ffff_f000;
/// xAPIC register offsets (SDM Table 11-1); the x2APIC MSR is 0x800 + offset / 16.
const APIC_EOI: u32 = 0xb0;
const APIC_SPIV: u32 = 0xf0;
const APIC_ISR: u32 = 0x100;
const APIC_ICR_LOW: u32 = 0x300;
const APIC_LVT_TIMER: u32 = 0x320;
const APIC_TIMER_INITIAL: u32 = 0x380;
/// ICR: fixed delivery to self (destination shorthand 01, SDM 11.6.1).
const ICR_SELF_FIXED: u32 = 1 << 18;
const LVT_MASKED: u32 = 1 << 16;
/// SPIV after a global disable: software disabled, spurious vector 0xFF.
const SPIV_AFTER_DISABLE: u32 = 0xff;

/// The local APIC, in whichever mode the guest left it.
struct LocalApic {
    base: u64,
    x2apic: bool,
}

impl LocalApic {
    /// The enabled local APIC, or `None` if it is globally disabled.
    fn current() -> Option<Self> {
        // SAFETY: IA32_APIC_BASE exists on every processor with VMX.
        let msr = unsafe { rdmsr(IA32_APIC_BASE) };
        (msr & APIC_ENABLED != 0).then_some(Self {
            base: msr & APIC_BASE_MASK,
            x2apic: msr & APIC_X2APIC != 0,
        })
    }

    fn read(&self, offset: u32) -> u32 {
        // SAFETY: the APIC page is identity-mapped (l1-hv maps the low 4 GiB) and its registers
        // have no read side effects; the x2APIC MSRs exist in x2APIC mode.
        unsafe {
            match self.x2apic {
                true => rdmsr(0x800 + offset / 16) as u32,
                false => read_volatile((self.base + u64::from(offset)) as *const u32),
            }
        }
    }

    fn write(&self, offset: u32, value: u32) {
        // SAFETY: as for `read`; the callers write architecturally defined values.
        unsafe {
            match self.x2apic {
                true => wrmsr(0x800 + offset / 16, value.into()),
                false => write_volatile((self.base + u64::from(offset)) as *mut u32, value),
            }
        }
    }
}

/// Raises ISA interrupt `irq` (an edge) the way the guest routed it: the vector of its I/O APIC
/// redirection entry, sent as a fixed interrupt to this (only) CPU. Nothing happens when the
/// entry is masked, as on hardware. The guest's IOREGSEL is preserved: it may be between
/// selecting a register and reading it.
pub fn raise_isa_irq(irq: u8) {
    let Some(apic) = LocalApic::current() else {
        return;
    };
    let entry = with_ioapic(|io| io.read(IOAPIC_REDIRECTION + 2 * u32::from(irq)));
    let mode = entry & RTE_DELIVERY_MODE;
    if entry & RTE_MASKED != 0 || (mode != 0 && mode != RTE_LOWEST_PRIORITY) {
        return;
    }
    apic.write(APIC_ICR_LOW, ICR_SELF_FIXED | (entry & 0xff));
}

/// Quiets the interrupt hardware a kernel guest programmed: every I/O APIC entry and both 8259s
/// masked, the local APIC timer stopped and every in-service interrupt ended, the HPET halted.
pub fn quiesce() {
    crate::arch::mask_legacy_pic();
    with_ioapic(|io| {
        let entries = ((io.read(IOAPIC_VERSION) >> 16) & 0xff) + 1;
        for pin in 0..entries {
            let low = IOAPIC_REDIRECTION + 2 * pin;
            io.write(low, io.read(low) | RTE_MASKED);
        }
    });
    if let Some(apic) = LocalApic::current() {
        apic.write(APIC_LVT_TIMER, LVT_MASKED);
        apic.write(APIC_TIMER_INITIAL, 0);
        // One EOI per in-service vector (at most 256), highest first, as the APIC retires them.
        for _ in 0..256 {
            if (0..8).all(|i| apic.read(APIC_ISR + 16 * i) == 0) {
                break;
            }
            apic.write(APIC_EOI, 0);
        }
    }
    // SAFETY: the HPET's registers are identity-mapped; clearing ENABLE_CNF stops its counter
    // and every timer interrupt (a machine without an HPET ignores the write).
    unsafe {
        let config = (HPET_BASE + HPET_CONFIG) as *mut u64;
        write_volatile(config, read_volatile(config) & !1);
    }
}

/// A kernel guest cleared its APIC's global enable (kept as its view, `devices::apic_base`):
/// the real APIC is software-disabled instead, SPIV at its value after a global disable
/// (SDM 11.4.7.2), so that the guest can enable it again on a machine that cannot re-enable a
/// globally disabled APIC.
pub fn software_disable_apic() {
    if let Some(apic) = LocalApic::current() {
        apic.write(APIC_SPIV, SPIV_AFTER_DISABLE);
    }
}

/// Writes a kernel guest's IA32_APIC_BASE to the real MSR (checked by `devices::apic_base`);
/// `false` if the machine cannot make that transition: from x2APIC back to xAPIC mode, which
/// needs the global disable l1-hv only emulates.
pub fn set_apic_base(value: u64) -> bool {
    // SAFETY: IA32_APIC_BASE exists on every processor with VMX.
    let current = unsafe { rdmsr(IA32_APIC_BASE) };
    if current & APIC_X2APIC != 0 && value & APIC_X2APIC == 0 {
        return false;
    }
    if current != value {
        // SAFETY: the value passed the processor's own checks (reserved bits, transitions).
        unsafe { wrmsr(IA32_APIC_BASE, value) };
    }
    true
}

/// Ends the interrupt l1-hv acknowledged on a VM exit for a guest that does not take
/// interrupts (a test image): the vector is dropped.
pub fn end_of_interrupt() {
    if let Some(apic) = LocalApic::current() {
        apic.write(APIC_EOI, 0);
    }
}

struct IoApic;

impl IoApic {
    fn read(&self, register: u32) -> u32 {
        // SAFETY: the I/O APIC window is identity-mapped MMIO.
        unsafe {
            write_volatile((IOAPIC_BASE + IOREGSEL) as *mut u32, register);
            read_volatile((IOAPIC_BASE + IOWIN) as *const u32)
        }
    }

    fn write(&self, register: u32, value: u32) {
        // SAFETY: as for `read`.
        unsafe {
            write_volatile((IOAPIC_BASE + IOREGSEL) as *mut u32, register);
            write_volatile((IOAPIC_BASE + IOWIN) as *mut u32, value);
        }
    }
}

/// Runs `f` on the I/O APIC with the guest's register selection restored afterwards.
fn with_ioapic<T>(f: impl FnOnce(&IoApic) -> T) -> T {
    // SAFETY: IOREGSEL is readable and identity-mapped.
    let selected = unsafe { read_volatile((IOAPIC_BASE + IOREGSEL) as *const u32) };
    let result = f(&IoApic);
    // SAFETY: as above.
    unsafe { write_volatile((IOAPIC_BASE + IOREGSEL) as *mut u32, selected) };
    result
}

/// What the firmware's ACPI tables say about the machine's power and reset ports, found once at
/// boot (identity-mapped host memory; the same tables kernel guests read).
pub struct Platform {
    /// The FADT's power ports, or why they could not be found (then only the exit port and the
    /// legacy reset ports end a guest).
    pub power: Result<devices::acpi::PowerPorts, devices::acpi::AcpiError>,
}

/// PM1a control of the PIIX4 power-management function at Bochs' and QEMU's default base, for
/// a machine whose ACPI tables could not be read.
const PM1A_CONTROL_DEFAULT: u16 = 0xb004;

impl Platform {
    /// The port whose SLP_EN write powers the machine off.
    pub fn pm1a_control(&self) -> u16 {
        self.power
            .as_ref()
            .map_or(PM1A_CONTROL_DEFAULT, |p| p.pm1a_control)
    }

    /// The FADT's reset register, when it is an I/O port.
    pub fn reset_register(&self) -> Option<devices::acpi::IoResetRegister> {
        self.power.as_ref().ok()?.reset?.io()
    }

    /// Reads the ACPI tables below 4 GiB.
    pub fn discover() -> Self {
        let read = |address: u64, buf: &mut [u8]| {
            let fits = address
                .checked_add(buf.len() as u64)
                .is_some_and(|end| end <= 4 << 30);
            if fits {
                // SAFETY: l1-hv identity-maps the low 4 GiB; firmware tables are plain memory.
                let source =
                    unsafe { core::slice::from_raw_parts(address as *const u8, buf.len()) };
                buf.copy_from_slice(source);
            }
            fits
        };
        Self {
            power: devices::acpi::find_power_ports(read),
        }
    }
}

impl core::fmt::Display for Platform {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match &self.power {
            Ok(ports) => match ports.reset.and_then(|r| r.io()) {
                Some(reset) => write!(
                    f,
                    "ACPI: PM1a control at port {:#x}, reset register port {:#x} value {:#x}",
                    ports.pm1a_control, reset.port, reset.value
                ),
                None => write!(f, "ACPI: PM1a control at port {:#x}, no I/O reset register", ports.pm1a_control),
            },
            Err(e) => write!(f, "ACPI: no power ports ({e:?}); PM1a control assumed at port {PM1A_CONTROL_DEFAULT:#x}"),
        }
    }
}
