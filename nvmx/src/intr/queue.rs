//! The per-vCPU queue of NMIs and external interrupts waiting to be delivered.

use crate::event::{Event, InterruptionType};

/// NMIs and external interrupts raised for one vCPU and not yet delivered.
///
/// Interrupts are a 256-bit set, like a local APIC's IRR: one pending instance per vector, the
/// highest vector first. NMIs are edge-triggered and one is held pending while NMIs are blocked
/// (SDM 6.7.1), so a second NMI raised while one is pending merges with it.
///
/// An event handed back by [`PendingEvents::requeue`] had already been taken for delivery (an
/// interrupt acknowledged, an NMI accepted), so it is kept apart from what was raised since: the
/// processor redoes an interrupted delivery before it recognises new events (SDM 28.2.4,
/// IDT-vectoring information), and an interrupt raised again meanwhile is a second instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PendingEvents {
    irr: [u64; 4],
    nmi: bool,
    displaced_nmi: bool,
    displaced_interrupt: Option<u8>,
}

impl PendingEvents {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            irr: [0; 4],
            nmi: false,
            displaced_nmi: false,
            displaced_interrupt: None,
        }
    }

    /// Raises an external interrupt with `vector`; `false` if that vector was already pending
    /// and the two merged.
    pub fn raise_interrupt(&mut self, vector: u8) -> bool {
        let (word, bit) = (usize::from(vector / 64), 1u64 << (vector % 64));
        let new = self.irr[word] & bit == 0;
        self.irr[word] |= bit;
        new
    }

    /// Raises an NMI; `false` if one was already pending and the two merged.
    pub fn raise_nmi(&mut self) -> bool {
        !core::mem::replace(&mut self.nmi, true)
    }

    /// Queues again an NMI or external interrupt that was taken for delivery but not delivered:
    /// displaced by an exception (`InjectOutcome::Injected { requeue }`), or found in the
    /// IDT-vectoring information of an exit (see [`super::requeue_interrupted`]). Handing the
    /// same event back twice keeps one instance. Any other event is returned: re-executing the
    /// instruction regenerates an exception, and a pending MTF exit is the caller's to re-arm.
    pub fn requeue(&mut self, event: Event) -> Result<(), Event> {
        match event.kind {
            InterruptionType::Nmi => self.displaced_nmi = true,
            InterruptionType::ExternalInterrupt => match self.displaced_interrupt {
                None => self.displaced_interrupt = Some(event.vector),
                Some(vector) if vector == event.vector => {}
                // One VM entry injects one event, so two interrupts cannot be displaced at once;
                // should a caller do it, the second waits in the IRR rather than being lost.
                Some(_) => {
                    self.raise_interrupt(event.vector);
                }
            },
            _ => return Err(event),
        }
        Ok(())
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        !self.nmi_pending() && !self.interrupt_pending()
    }

    /// Whether an NMI is pending.
    pub fn nmi_pending(&self) -> bool {
        self.nmi || self.displaced_nmi
    }

    /// Whether an external interrupt is pending.
    pub fn interrupt_pending(&self) -> bool {
        self.next_interrupt().is_some()
    }

    /// The interrupt delivered next: a displaced one, else the highest pending vector.
    pub fn next_interrupt(&self) -> Option<u8> {
        self.displaced_interrupt.or_else(|| {
            let word = self.irr.iter().rposition(|&w| w != 0)?;
            Some((word * 64 + 63 - self.irr[word].leading_zeros() as usize) as u8)
        })
    }

    /// Removes one instance of `event` (an NMI, or the interrupt [`Self::next_interrupt`]
    /// names) for delivery, the displaced instance first.
    pub(super) fn take(&mut self, event: &Event) {
        match event.kind {
            InterruptionType::Nmi if self.displaced_nmi => self.displaced_nmi = false,
            InterruptionType::Nmi => self.nmi = false,
            _ if self.displaced_interrupt == Some(event.vector) => self.displaced_interrupt = None,
            _ => self.irr[usize::from(event.vector / 64)] &= !(1u64 << (event.vector % 64)),
        }
    }
}
