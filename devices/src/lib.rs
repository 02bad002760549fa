//! The I/O ports l1-hv owns while a Linux guest runs (docs/devices.md).
//!
//! Everything else of the machine (PIC, PIT, IOAPIC, HPET, local APIC, PCI, ACPI tables) is
//! passed through to the guest; l1-hv traps only the ports listed by
//! [`bus::PortBus::trapped_ranges`] and hands each trapped access to [`bus::PortBus::access`]:
//!
//! - [`uart`]: the guest's COM1, an emulated 16550A whose output l1-hv relays line by line;
//! - [`power`]: power-off (ACPI PM1a control), QEMU's exit device, and the reset requests;
//! - [`acpi`]: finds the PM1a control port and the FADT reset register in the firmware's tables;
//! - [`bus`]: the trapped ports and the dispatch of one access to a typed outcome;
//! - [`apic_base`]: the guest's view of IA32_APIC_BASE (the one local-APIC MSR l1-hv keeps).
//!
//! `no_std` and allocation-free, so that the kernel links it as is; tested on the host.
#![no_std]

pub mod acpi;
pub mod apic_base;
pub mod bus;
pub mod power;
pub mod uart;
