//! The guest hypervisor's linear-address translation for VMX-instruction memory operands:
//! 4-level paging with 2 MiB and 1 GiB pages (SDM 4.5), the access checked as the processor
//! checks a supervisor or user data access (SDM 4.6), a fault as the #PF it raises (SDM 4.7).

use super::guest::GuestMemory;
use super::outcome::Fault;
use x86::bits64::paging::{PDFlags, PTFlags};
use x86::controlregs::Cr0;
use x86::irq::PageFaultError;

const PRESENT: u64 = PTFlags::P.bits();
const WRITABLE: u64 = PTFlags::RW.bits();
const USER: u64 = PTFlags::US.bits();
const PAGE_SIZE: u64 = PDFlags::PS.bits();
/// Bits 51:12 of a paging-structure entry: the next table or the page (SDM 4.5; the `x86`
/// crate keeps its mask private).
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const CR0_WP: u64 = Cr0::CR0_WRITE_PROTECT.bits() as u64;
const CR0_PE: u64 = Cr0::CR0_PROTECTED_MODE.bits() as u64;
const CR0_PG: u64 = Cr0::CR0_ENABLE_PAGING.bits() as u64;
const PF_PRESENT: u32 = PageFaultError::P.bits();
const PF_WRITE: u32 = PageFaultError::WR.bits();
const PF_USER: u32 = PageFaultError::US.bits();

/// The paging state a translation uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// CR0 (PE, PG: paging on; WP: supervisor writes to read-only pages fault).
    pub cr0: u64,
    /// CR3: the PML4 table.
    pub cr3: u64,
    /// A user-mode access (CPL 3).
    pub user: bool,
}

/// Translates `linear` for a read (or a `write`) through the guest's paging structures in `mem`;
/// without paging (CR0.PE or PG clear) linear is physical. A table outside RAM faults as not
/// present.
pub fn translate(
    mem: &impl GuestMemory,
    paging: &Paging,
    linear: u64,
    write: bool,
) -> Result<u64, Fault> {
    if paging.cr0 & (CR0_PE | CR0_PG) != (CR0_PE | CR0_PG) {
        return Ok(linear);
    }
    let fault = |present: bool| Fault::Pf {
        linear,
        error_code: if present { PF_PRESENT } else { 0 }
            | if write { PF_WRITE } else { 0 }
            | if paging.user { PF_USER } else { 0 },
    };
    let mut table = paging.cr3 & ADDRESS_MASK;
    let (mut writable, mut user_ok) = (true, true);
    for level in (0..4).rev() {
        let index = (linear >> (12 + 9 * level)) & 0x1ff;
        let mut entry = [0u8; 8];
        mem.read(table + index * 8, &mut entry)
            .map_err(|_| fault(false))?;
        let entry = u64::from_le_bytes(entry);
        if entry & PRESENT == 0 {
            return Err(fault(false));
        }
        writable &= entry & WRITABLE != 0;
        user_ok &= entry & USER != 0;
        let leaf = level == 0 || (level < 3 && entry & PAGE_SIZE != 0);
        if leaf {
            let page_bits = 12 + 9 * level;
            let denied = (paging.user && !user_ok)
                || (write && !writable && (paging.user || paging.cr0 & CR0_WP != 0));
            if denied {
                return Err(fault(true));
            }
            let frame = entry & ADDRESS_MASK & !((1 << page_bits) - 1);
            return Ok(frame | (linear & ((1 << page_bits) - 1)));
        }
        table = entry & ADDRESS_MASK;
    }
    unreachable!("level 0 is always a leaf")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nested::test_support::Ram;

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;
    const PAGING: u64 = 0x8000_0011;

    /// 0x40_0000 → a 4 KiB page at 0x9000 (user, read-only); 0x60_0000 → a 2 MiB page at 0.
    fn tables() -> Ram {
        let mut ram = Ram::new();
        ram.put_u64(PML4, PDPT | PRESENT | WRITABLE | USER);
        ram.put_u64(PDPT, PD | PRESENT | WRITABLE | USER);
        ram.put_u64(PD + 2 * 8, PT | PRESENT | WRITABLE | USER);
        ram.put_u64(PT, 0x9000 | PRESENT | USER);
        ram.put_u64(PD + 3 * 8, PRESENT | WRITABLE | PAGE_SIZE);
        ram
    }

    fn paging(cr0: u64, user: bool) -> Paging {
        Paging {
            cr0,
            cr3: PML4,
            user,
        }
    }

    #[test]
    fn without_paging_linear_is_physical() {
        assert_eq!(
            translate(&tables(), &paging(0x11, false), 0x1234, true),
            Ok(0x1234)
        );
    }

    #[test]
    fn four_kib_and_two_mib_pages_translate() {
        let ram = tables();
        assert_eq!(
            translate(&ram, &paging(PAGING, false), 0x40_0123, false),
            Ok(0x9123)
        );
        assert_eq!(
            translate(&ram, &paging(PAGING, false), 0x61_2345, true),
            Ok(0x1_2345)
        );
    }

    #[test]
    fn faults_carry_the_processor_error_code() {
        let ram = tables();
        let not_present = translate(&ram, &paging(PAGING, true), 0x80_0000, true);
        assert_eq!(
            not_present,
            Err(Fault::Pf {
                linear: 0x80_0000,
                error_code: PF_WRITE | PF_USER
            })
        );
        // A user access to a supervisor page; a write to a read-only page with CR0.WP.
        let supervisor = translate(&ram, &paging(PAGING, true), 0x60_0000, false);
        assert_eq!(
            supervisor,
            Err(Fault::Pf {
                linear: 0x60_0000,
                error_code: PF_PRESENT | PF_USER
            })
        );
        let wp = translate(&ram, &paging(PAGING | CR0_WP, false), 0x40_0000, true);
        assert_eq!(
            wp,
            Err(Fault::Pf {
                linear: 0x40_0000,
                error_code: PF_PRESENT | PF_WRITE
            })
        );
        // Without CR0.WP a supervisor write to a read-only page goes through.
        assert_eq!(
            translate(&ram, &paging(PAGING, false), 0x40_0000, true),
            Ok(0x9000)
        );
    }
}
