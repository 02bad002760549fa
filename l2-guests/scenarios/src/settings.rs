//! The interception settings each scenario runs under: the exception bitmap and, for #PF, the
//! page-fault error-code mask and match (SDM 25.2: a #PF exits iff `(ec & mask) == match`
//! equals bitmap bit 14).

use crate::action::{Action, Kind};
use crate::env::Env;

/// The governing hypervisor's interception controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    /// Exception bitmap.
    pub exception_bitmap: u32,
    /// Page-fault error-code mask.
    pub pfec_mask: u32,
    /// Page-fault error-code match.
    pub pfec_match: u32,
}

const fn bitmap(exception_bitmap: u32) -> Controls {
    Controls {
        exception_bitmap,
        pfec_mask: 0,
        pfec_match: 0,
    }
}

const ALL: u32 = u32::MAX;
const PF: u32 = 1 << 14;

/// #PF classes: bitmap bit 14 clear and set, each with "all match" and, for each error-code
/// bit the scenarios produce (P, W, U, RSVD, I/D), mask = the bit with match = the bit.
const PFEC_CLASSES: [(u32, u32); 8] = [
    (0, 0),
    (1, 0),
    (1, 1),
    (2, 0),
    (2, 2),
    (4, 4),
    (8, 8),
    (0x10, 0x10),
];

/// l1-hv's own exception bitmap in the transparency mode (its `exceptions=` module option):
/// every exception, none, #PF only, the contributory ones and #PF, #DF only, all but #PF.
pub const L1HV_SETTINGS: &[&str] = &["all", "none", "pf", "0x7c01", "0x100", "0xffffbfff"];

/// The most settings one (action, world) pair has.
const MAX: usize = 2 * PFEC_CLASSES.len() + 1;

/// The settings for one (action, world) pair.
///
/// * #PF in the intact world: every PFEC class with bit 14 clear and set, and everything
///   intercepted.
/// * Other events in the intact world: nothing, the event's own bit, everything, everything
///   but its own bit (`INT n` above 31 has no bit: nothing and everything).
/// * A broken world: those four, #DF only, and the delivery faults' vectors (#NP, #GP, #PF).
pub fn for_case(action: Action, env: Env) -> impl Iterator<Item = Controls> {
    let first = action.raised();
    let mut list = [bitmap(0); MAX];
    let mut len = 0;
    let mut push = |c: Controls| {
        list[len] = c;
        len += 1;
    };
    if env == Env::INTACT && first.kind == Kind::Hardware && first.vector == 14 {
        for (mask, r#match) in PFEC_CLASSES {
            for bit in [0, PF] {
                push(Controls {
                    exception_bitmap: bit,
                    pfec_mask: mask,
                    pfec_match: r#match,
                });
            }
        }
        push(bitmap(ALL));
    } else if first.vector >= 32 {
        push(bitmap(0));
        push(bitmap(ALL));
    } else {
        let own = 1 << first.vector;
        for b in [0, own, ALL, ALL & !own] {
            push(bitmap(b));
        }
        if env != Env::INTACT {
            push(bitmap(1 << 8));
            push(bitmap(1 << 11 | 1 << 13 | 1 << 14));
        }
    }
    list.into_iter().take(len)
}
