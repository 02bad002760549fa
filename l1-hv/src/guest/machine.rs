//! The machine a kernel guest runs on: the ports l1-hv emulates (its I/O bitmaps and device
//! bus), the NMIs and interrupts waiting for the guest, and what l1-hv forwarded. Everything
//! else of the PC is the real one, passed through (docs/machine.md).

use super::inject_host::VcpuInjectHost;
use super::platform::Platform;
use crate::arch::idt;
use crate::memory::PhysPages;
use devices::apic_base::ApicBase;
use devices::bus::{BusConfig, PortBus};
use nvmx::event::{Event, InterruptionType};
use nvmx::intr::{self, AssistOutcome, PendingEvents};
use shadow_vmcs::Vmcs;

/// The events l1-hv re-injected into a guest, counted as it re-injects them.
pub struct Forwarded {
    /// Exceptions by vector.
    pub exceptions: [u32; 32],
    /// External interrupts by vector.
    pub interrupts: [u32; 256],
    /// NMIs.
    pub nmis: u32,
}

impl Forwarded {
    /// Counts one injected event.
    pub fn count(&mut self, event: &Event) {
        match event.kind {
            InterruptionType::ExternalInterrupt => self.interrupts[usize::from(event.vector)] += 1,
            InterruptionType::Nmi => self.nmis += 1,
            _ => {
                if let Some(count) = self.exceptions.get_mut(usize::from(event.vector)) {
                    *count += 1;
                }
            }
        }
    }
}

/// A kernel guest's machine.
pub struct Machine {
    /// The emulated ports.
    pub bus: PortBus,
    /// NMIs and interrupts waiting to be delivered.
    pub events: PendingEvents,
    /// What l1-hv forwarded.
    pub forwarded: Forwarded,
    /// The guest's IA32_APIC_BASE.
    pub apic_base: ApicBase,
    /// I/O bitmaps A (ports 0–0x7fff) and B (0x8000–0xffff), SDM 25.6.4.
    io_bitmaps: [PhysPages; 2],
    /// Whether the last assist armed an interrupt or NMI window (it must run again to clear it).
    windows_armed: bool,
    /// The VMX-preemption timer value that brings the guest back to l1-hv while console output
    /// is queued (`None`: the processor has no such timer).
    drain_timer: Option<u64>,
    /// Whether that timer is armed now.
    drain_armed: bool,
}

impl Machine {
    /// The machine for one guest: its bus traps the ports `platform` names; `None` when memory
    /// is exhausted.
    pub fn new(platform: &Platform, drain_timer: Option<u64>) -> Option<Self> {
        let bus = PortBus::new(BusConfig {
            pm1a_control: platform.pm1a_control(),
            reset_register: platform.reset_register(),
            com2_reserved: true,
        });
        let mut io_bitmaps = [PhysPages::page()?, PhysPages::page()?];
        for port in bus.trapped_ranges().flatten() {
            let (bitmap, bit) = (usize::from(port >> 15), usize::from(port & 0x7fff));
            io_bitmaps[bitmap].bytes_mut()[bit / 8] |= 1 << (bit % 8);
        }
        Some(Self {
            bus,
            events: PendingEvents::new(),
            forwarded: Forwarded {
                exceptions: [0; 32],
                interrupts: [0; 256],
                nmis: 0,
            },
            // SAFETY: IA32_APIC_BASE exists on every processor with VMX.
            apic_base: ApicBase::new(unsafe { x86::msr::rdmsr(x86::msr::IA32_APIC_BASE) }),
            io_bitmaps,
            windows_armed: false,
            drain_timer,
            drain_armed: false,
        })
    }

    /// The I/O bitmaps' physical addresses.
    pub fn io_bitmaps(&self) -> (u64, u64) {
        (self.io_bitmaps[0].phys(), self.io_bitmaps[1].phys())
    }

    /// Just before VM entry: an NMI that arrived while l1-hv ran is the guest's; l1-hv's queued
    /// console output goes out (with the drain timer armed, unless L3 runs, whose own exits come
    /// often, or an attached debugger polls with the timer); then the pending events go in as
    /// the guest can take them (nvmx's assist; for L3 that is `l3_exit::deliver_pending`).
    pub fn before_entry(
        &mut self,
        vmcs: &mut impl Vmcs,
        host: &mut VcpuInjectHost,
        in_l3: bool,
        debugging: bool,
    ) {
        if idt::take_guest_nmi() {
            self.events.raise_nmi();
        }
        if in_l3 || debugging {
            crate::console::pump();
        } else {
            self.drain_console(vmcs);
        }
        if in_l3 {
            return;
        }
        // An empty queue with no window armed needs no VMCS access at all.
        if self.events.is_empty() && !self.windows_armed {
            return;
        }
        let windows = match intr::assist(vmcs, host, &mut self.events) {
            AssistOutcome::Injected { event, windows } => {
                self.forwarded.count(&event);
                windows
            }
            AssistOutcome::WindowRequested(windows) => windows,
            AssistOutcome::Nothing => Default::default(),
        };
        self.windows_armed = windows.interrupt || windows.nmi;
    }
}

impl Machine {
    /// Sends the console output the UART takes now; while some stays queued, the VMX-preemption
    /// timer brings the guest back to send more (a guest that owns its devices may otherwise run
    /// for seconds without an exit, holding back the lines it printed).
    fn drain_console(&mut self, vmcs: &mut impl Vmcs) {
        use x86::vmx::vmcs::control::{PinbasedControls, PINBASED_EXEC_CONTROLS};
        let queued = crate::console::pump();
        let Some(ticks) = self.drain_timer.filter(|_| queued != self.drain_armed) else {
            return;
        };
        let timer = u64::from(PinbasedControls::VMX_PREEMPTION_TIMER.bits());
        let pin = vmcs.read(PINBASED_EXEC_CONTROLS);
        vmcs.write(
            PINBASED_EXEC_CONTROLS,
            if queued { pin | timer } else { pin & !timer },
        );
        vmcs.write(x86::vmx::vmcs::guest::VMX_PREEMPTION_TIMER_VALUE, ticks);
        self.drain_armed = queued;
    }
}
