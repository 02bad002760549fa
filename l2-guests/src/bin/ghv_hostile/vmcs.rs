//! Running one operation: the probes in ghv-hostile itself, and the VM entries of a fresh VMCS
//! for L3 (controls, host and guest state written from scratch every time, so that no
//! operation inherits another's launch state or fields).

use crate::host::{self, HostTables, Op, Probed};
use crate::l3::{self, Ept, Payload, EPT_RWX};
use crate::ops::{Answer, Kind, Operand, Setup, Window};
use crate::{fresh_vmcs, probed_answer, vmx_answer};
use core::fmt;
use l1_vmx::capabilities::Capabilities;
use l1_vmx::current_vmcs::CurrentVmcs;
use l1_vmx::flat64::{self, FlatGuest, FlatHost};
use l1_vmx::instructions::{invept_all_contexts, vmclear, vmread, vmwrite};
use l1_vmx::{enter, vmx_exit, Entry, GuestRegisters, HostRsp};
use shadow_vmcs::Vmcs;
use x86::controlregs::{Cr0, Cr4};
use x86::vmx::vmcs::control::{
    self, EntryControls, ExitControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{guest, ro};

/// L3's VPID (not 0, SDM 27.2.1.1).
const VPID: u64 = 1;
/// EPTP: write-back paging structures, 4-level walk (SDM 25.6.11).
const EPTP_WB_4_LEVEL: u64 = 6 | 3 << 3;
/// Access rights for CPL 3 (SDM Table 25-2): 64-bit code DPL 3, data DPL 3.
const AR_USER_CODE64: u64 = 0xa0fb;
const AR_USER_DATA: u64 = 0xc0f3;
/// A non-canonical address (bit 63 set, bits 62:47 clear).
const NON_CANONICAL: u64 = 1 << 63;
/// Offset in the scratch page of the cell holding a VMPTRLD/VMCLEAR/VMXON pointer (INVEPT and
/// INVVPID descriptors, 16 zero bytes, are at offset 0).
const POINTER_CELL: u64 = 2048;
/// Offset of the cell holding an INVEPT/INVVPID descriptor with contents.
const DESCRIPTOR_CELL: u64 = 1024;
/// Where nothing is: 1 GiB, within the physical-address width, beyond any RAM ghv-hostile has.
const BEYOND_RAM: u64 = 1 << 30;

/// Everything an operation needs.
pub struct World {
    pub caps: Capabilities,
    pub host: &'static HostTables,
    /// The page tables ghv-hostile and L3 share.
    pub cr3: u64,
    pub ept: &'static mut Ept,
    pub vmxon: u64,
    pub vmcs: u64,
    pub wrong_revision: u64,
    /// A region marked as a shadow VMCS.
    pub shadow_vmcs: u64,
    pub scratch: u64,
    pub beyond_width: u64,
}

impl World {
    /// The address of `op`'s memory operand. VMPTRLD, VMCLEAR and VMXON read a 64-bit
    /// physical address from memory: `operand` is written into a cell of the scratch page and
    /// the cell is the operand, except for a non-canonical operand, which is the pointer itself.
    /// VMPTRST, INVEPT and INVVPID use `operand` as their memory (destination, descriptor).
    fn memory_operand(&self, op: Op, operand: Operand) -> u64 {
        if let Operand::Descriptor(low, high) = operand {
            let cell = self.scratch + DESCRIPTOR_CELL;
            // SAFETY: as below; 16 bytes at a 16-byte-aligned offset of the scratch page.
            unsafe { core::ptr::write_volatile(cell as *mut [u64; 2], [low, high]) };
            return cell;
        }
        let address = self.address(operand);
        if operand == Operand::NonCanonical || !matches!(op, Op::Vmptrld | Op::Vmclear | Op::Vmxon)
        {
            return address;
        }
        let cell = self.scratch + POINTER_CELL;
        // SAFETY: the scratch page is ghv-hostile's; nothing else uses the cell.
        unsafe { core::ptr::write_volatile(cell as *mut u64, address) };
        cell
    }

    fn address(&self, operand: Operand) -> u64 {
        match operand {
            Operand::VmxonRegion => self.vmxon,
            Operand::VmcsUnaligned => self.vmcs + 8,
            Operand::BeyondWidth => self.beyond_width,
            Operand::BeyondRam => BEYOND_RAM,
            Operand::WrongRevision => self.wrong_revision,
            Operand::Scratch => self.scratch,
            Operand::NonCanonical => NON_CANONICAL,
            Operand::Descriptor(..) => unreachable!("a descriptor is written by memory_operand"),
        }
    }
}

/// Exit details that are not part of the SDM's table but must match between bare and nested:
/// the instruction information and length of VMX-instruction exits, the guest-physical address
/// of EPT exits.
pub enum Detail {
    None,
    Instruction { info: Option<u64>, length: u64 },
    GuestPhysical(u64),
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::None => Ok(()),
            Self::Instruction {
                info: Some(info),
                length,
            } => write!(f, " insn_info={info:#x} insn_len={length}"),
            Self::Instruction { info: None, length } => write!(f, " insn_len={length}"),
            Self::GuestPhysical(gpa) => write!(f, " gpa={gpa:#x}"),
        }
    }
}

/// Runs one operation; `Err` when ghv-hostile itself cannot go on.
pub fn run(world: &mut World, kind: Kind) -> Result<(Answer, Detail), &'static str> {
    // SAFETY: VMX root operation, CPL 0; every region named is ghv-hostile's own.
    unsafe {
        match kind {
            Kind::Root(op, operand, field, value) => {
                fresh_vmcs(world.vmcs)?;
                let answer = probed_answer(host::probe(
                    op,
                    false,
                    world.memory_operand(op, operand),
                    field,
                    value,
                ));
                Ok((answer, Detail::None))
            }
            Kind::User(op, operand) => {
                fresh_vmcs(world.vmcs)?;
                let probed = host::probe(op, true, world.memory_operand(op, operand), 0, 0);
                if op == Op::Vmxoff && matches!(probed, Probed::Completed(_)) {
                    // VMX operation may be gone: nothing after this could be trusted.
                    return Err("VMXOFF at CPL 3 completed");
                }
                Ok((probed_answer(probed), Detail::None))
            }
            Kind::Launch(payload, setup) => {
                let mut vmcs = prepare(world, payload)?;
                let mut regs = GuestRegisters {
                    rsi: world.scratch - 8,
                    ..GuestRegisters::default()
                };
                match setup {
                    Setup::None => {}
                    Setup::Inject(info, error, length) => {
                        vmcs.write(control::VMENTRY_INTERRUPTION_INFO_FIELD, info.into());
                        vmcs.write(control::VMENTRY_EXCEPTION_ERR_CODE, error.into());
                        vmcs.write(control::VMENTRY_INSTRUCTION_LEN, length.into());
                    }
                    Setup::LinkPointer(operand) => {
                        vmcs.write(guest::LINK_PTR_FULL, world.address(operand))
                    }
                    Setup::EptWindow(window, gpa) => {
                        world.ept.set_window(match window {
                            Window::TableOutsideRam => BEYOND_RAM | EPT_RWX,
                            Window::LoopToPml4 => world.ept.root() | EPT_RWX,
                        });
                        invept_all_contexts().map_err(|_| "INVEPT failed")?;
                        regs.rsi = gpa - 8;
                    }
                }
                let result = enter_l3(&vmcs, &mut regs, false);
                world.ept.set_window(0);
                invept_all_contexts().map_err(|_| "INVEPT failed")?;
                result
            }
            Kind::LaunchTwice => {
                let vmcs = prepare(world, Payload::Vmcall)?;
                let mut regs = GuestRegisters::default();
                let (first, _) = enter_l3(&vmcs, &mut regs, false)?;
                if first != Answer::Exit(18, 0) {
                    return Err("the first VMLAUNCH did not reach L3's VMCALL");
                }
                enter_l3(&vmcs, &mut regs, false)
            }
            Kind::LaunchShadowVmcs => {
                let loaded = fresh_vmcs(world.shadow_vmcs);
                let answer = match loaded {
                    Err(_) => vmx_answer(l1_vmx::instructions::vmptrld(world.shadow_vmcs)),
                    Ok(()) => match enter(
                        &mut GuestRegisters::default(),
                        false,
                        &mut HostRsp::default(),
                    ) {
                        Entry::Failed(fail) => vmx_answer(Err(fail)),
                        Entry::Exited => return Err("a shadow VMCS was entered"),
                    },
                };
                fresh_vmcs(world.vmcs)?;
                Ok((answer, Detail::None))
            }
            Kind::AfterClearingCurrent(op, field) => {
                fresh_vmcs(world.vmcs)?;
                vmclear(world.vmcs).map_err(|_| "VMCLEAR of the current VMCS failed")?;
                let cell = world.scratch + POINTER_CELL;
                let probed = host::probe(op, false, cell, field, 0);
                let answer = match (op, probed_answer(probed)) {
                    (Op::Vmptrst, Answer::Succeed) => {
                        Answer::Value(core::ptr::read_volatile(cell as *const u64))
                    }
                    (_, answer) => answer,
                };
                fresh_vmcs(world.vmcs)?;
                Ok((answer, Detail::None))
            }
            Kind::StoreCurrentPointer => {
                fresh_vmcs(world.vmcs)?;
                let cell = world.scratch + POINTER_CELL;
                let answer = match probed_answer(host::probe(Op::Vmptrst, false, cell, 0, 0)) {
                    Answer::Succeed
                        if core::ptr::read_volatile(cell as *const u64) != world.vmcs =>
                    {
                        Answer::Value(core::ptr::read_volatile(cell as *const u64))
                    }
                    answer => answer,
                };
                Ok((answer, Detail::None))
            }
            Kind::RoundTrip(writes, read) => {
                fresh_vmcs(world.vmcs)?;
                for &(field, value) in writes {
                    let written = vmx_answer(vmwrite(field as u32, value));
                    if written != Answer::Succeed {
                        return Ok((written, Detail::None));
                    }
                }
                let answer = match vmread(read as u32) {
                    Ok(value) => Answer::Value(value),
                    Err(fail) => vmx_answer(Err(fail)),
                };
                Ok((answer, Detail::None))
            }
            Kind::ResumeClear => {
                let vmcs = prepare(world, Payload::Vmcall)?;
                enter_l3(&vmcs, &mut GuestRegisters::default(), true)
            }
        }
    }
}

/// VMLAUNCH (or VMRESUME) of the current VMCS: its failure, or L3's exit.
unsafe fn enter_l3(
    vmcs: &CurrentVmcs,
    regs: &mut GuestRegisters,
    resume: bool,
) -> Result<(Answer, Detail), &'static str> {
    // A fresh host-RSP cache: `prepare` rewrote the VMCS, so the stub writes host RSP again.
    if let Entry::Failed(fail) = enter(regs, resume, &mut HostRsp::default()) {
        return Ok((vmx_answer(Err(fail)), Detail::None));
    }
    let reason = vmcs.read(ro::EXIT_REASON);
    let qualification = vmcs.read(ro::EXIT_QUALIFICATION);
    if reason == 18 && regs.rax == l3::DONE {
        if regs.rdi == l3::NONE {
            return Err("L3 completed an instruction that must exit");
        }
        return Ok((Answer::L3Read(regs.rdi), Detail::None));
    }
    // SDM 28.2.5: the instruction length is defined for every instruction exit, the
    // instruction information only for VMX instructions with operands (not VMCALL, VMLAUNCH,
    // VMRESUME, VMXOFF, where Bochs leaves a stale value).
    let detail = match reason {
        18 | 20 | 24 | 26 => Detail::Instruction {
            info: None,
            length: vmcs.read(ro::VMEXIT_INSTRUCTION_LEN),
        },
        19 | 21..=23 | 25 | 27 | 50 | 53 => Detail::Instruction {
            info: Some(vmcs.read(ro::VMEXIT_INSTRUCTION_INFO)),
            length: vmcs.read(ro::VMEXIT_INSTRUCTION_LEN),
        },
        48 | 49 => Detail::GuestPhysical(vmcs.read(ro::GUEST_PHYSICAL_ADDR_FULL)),
        _ => Detail::None,
    };
    Ok((Answer::Exit(reason as u32, qualification), detail))
}

/// A clear, current VMCS, completely written: L3 at CPL 3 on `payload`, with the shared page
/// tables, an empty IDT, EPT, no exception interception.
unsafe fn prepare(world: &World, payload: Payload) -> Result<CurrentVmcs, &'static str> {
    fresh_vmcs(world.vmcs)?;
    // SAFETY: made current just above.
    let mut vmcs = CurrentVmcs::assume_loaded();
    let caps = &world.caps;
    let controls = (|| {
        Ok::<_, l1_vmx::capabilities::Unsupported>((
            caps.pin(0, 0)?,
            caps.primary(PrimaryControls::SECONDARY_CONTROLS.bits(), 0)?,
            caps.secondary(
                (SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits(),
                0,
            )?,
            caps.exit(ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(), 0)?,
            caps.entry(EntryControls::IA32E_MODE_GUEST.bits(), 0)?,
        ))
    })();
    let (pin, primary, secondary, exit, entry) =
        controls.map_err(|_| "a control ghv-hostile needs is missing")?;
    vmcs.write(control::PINBASED_EXEC_CONTROLS, pin.into());
    vmcs.write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary.into());
    vmcs.write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, secondary.into());
    vmcs.write(control::VMEXIT_CONTROLS, exit.into());
    vmcs.write(control::VMENTRY_CONTROLS, entry.into());
    vmcs.write(control::EPTP_FULL, world.ept.root() | EPTP_WB_4_LEVEL);
    vmcs.write(control::VPID, VPID);
    for field in [
        control::CR3_TARGET_COUNT,
        control::VMEXIT_MSR_STORE_COUNT,
        control::VMEXIT_MSR_LOAD_COUNT,
        control::VMENTRY_MSR_LOAD_COUNT,
        control::CR0_GUEST_HOST_MASK,
        control::CR4_GUEST_HOST_MASK,
        control::EXCEPTION_BITMAP,
        control::PAGE_FAULT_ERR_CODE_MASK,
        control::PAGE_FAULT_ERR_CODE_MATCH,
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
    ] {
        vmcs.write(field, 0);
    }
    flat64::write_host_state(
        &mut vmcs,
        &FlatHost {
            code_selector: host::CODE.bits(),
            data_selector: host::DATA.bits(),
            tr_selector: host::TSS.bits(),
            tr_base: world.host.tss_base(),
            gdt_base: world.host.gdt_base(),
            idt_base: world.host.idt_base(),
            rip: vmx_exit as *const () as u64,
        },
    );
    let cr0 = Cr0::CR0_PROTECTED_MODE
        | Cr0::CR0_EXTENSION_TYPE
        | Cr0::CR0_NUMERIC_ERROR
        | Cr0::CR0_ENABLE_PAGING;
    flat64::write_guest_state(
        &mut vmcs,
        &FlatGuest {
            cr0: caps.fix_cr0(cr0.bits() as u64),
            cr3: world.cr3,
            cr4: caps.fix_cr4(Cr4::CR4_ENABLE_PAE.bits() as u64),
            rip: payload.entry(),
            rsp: 0,
            rflags: 0x2,
            code_selector: host::USER_CODE.bits(),
            data_selector: host::USER_DATA.bits(),
            tr_selector: host::TSS.bits(),
            tr_base: world.host.tss_base(),
            gdtr: (world.host.gdt_base(), world.host.gdt_limit()),
            // Limit 0: no gate is reachable, so any exception in L3 ends in a triple fault.
            idtr: (0, 0),
        },
    );
    vmcs.write(guest::CS_ACCESS_RIGHTS, AR_USER_CODE64);
    for field in [
        guest::SS_ACCESS_RIGHTS,
        guest::DS_ACCESS_RIGHTS,
        guest::ES_ACCESS_RIGHTS,
        guest::FS_ACCESS_RIGHTS,
        guest::GS_ACCESS_RIGHTS,
    ] {
        vmcs.write(field, AR_USER_DATA);
    }
    Ok(vmcs)
}
