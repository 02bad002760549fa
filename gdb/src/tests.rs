//! The stub against a fake guest: RAM in a Vec with 4-level page tables, registers in a struct,
//! a run that replays scripted outcomes; gdb's packets from a scripted connection.

extern crate std;

use super::*;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use std::string::String;

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
/// Guest-virtual 0xffff_8000_0000_0000 + 4 KiB pages from PT; 2 MiB at 0x20_0000 identity.
const HIGH: u64 = 0xffff_8000_0000_0000;

struct FakeGuest {
    ram: Vec<u8>,
    regs: X86_64CoreRegs,
    paging: Paging,
    state: DebugState,
    debug_registers: ([u64; 4], u64),
    script: VecDeque<Ran>,
    resumes: Vec<Resume>,
}

impl FakeGuest {
    /// 1 MiB... 4 MiB of RAM; HIGH+0x0000 → 0x10_0000, HIGH+0x1000 → 0x10_3000 (not
    /// contiguous), HIGH+0x2000 not present; 0x20_0000 (2 MiB page) → itself.
    fn new() -> Self {
        let mut guest = Self {
            ram: vec![0; 4 << 20],
            regs: X86_64CoreRegs::default(),
            paging: Paging {
                cr0: 1 << 31 | 1,
                cr3: PML4,
                cr4: 1 << 5,
                efer: 1 << 10 | 1 << 8,
            },
            state: DebugState::default(),
            debug_registers: ([0; 4], 0),
            script: VecDeque::new(),
            resumes: Vec::new(),
        };
        guest.put(PML4 + 256 * 8, PDPT | 3); // HIGH
        guest.put(PML4, PDPT | 3); // low half shares the PDPT
        guest.put(PDPT, PD | 3);
        guest.put(PD, PT | 3);
        guest.put(PD + 8, 0x20_0000 | 0x83);
        guest.put(PT, 0x10_0000 | 3);
        guest.put(PT + 8, 0x10_3000 | 3);
        guest
    }

    fn put(&mut self, gpa: u64, value: u64) {
        self.ram[gpa as usize..gpa as usize + 8].copy_from_slice(&value.to_le_bytes());
    }
}

impl Debuggee for FakeGuest {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) {
        *regs = self.regs.clone();
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> Result<(), SegmentChanged> {
        if regs.segments != self.regs.segments {
            return Err(SegmentChanged);
        }
        self.regs = regs.clone();
        Ok(())
    }

    fn paging(&mut self) -> Paging {
        self.paging
    }

    fn read_phys(&mut self, gpa: u64, buf: &mut [u8]) -> bool {
        let Some(bytes) = self.ram.get(gpa as usize..gpa as usize + buf.len()) else {
            return false;
        };
        buf.copy_from_slice(bytes);
        true
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> bool {
        let Some(bytes) = self.ram.get_mut(gpa as usize..gpa as usize + data.len()) else {
            return false;
        };
        bytes.copy_from_slice(data);
        true
    }

    fn state(&mut self) -> &mut DebugState {
        &mut self.state
    }

    fn load_debug_registers(&mut self, addrs: [u64; 4], dr7: u64) {
        self.debug_registers = (addrs, dr7);
    }

    fn run(&mut self, resume: Resume) -> Ran {
        self.resumes.push(resume);
        self.script.pop_front().unwrap_or(Ran::Ended { code: 0 })
    }
}

/// gdb's side of the link: scripted input, everything the stub wrote.
struct Wire {
    input: VecDeque<u8>,
    output: Vec<u8>,
}

#[derive(Debug)]
struct Closed;

impl Wire {
    fn new(packets: &[&str]) -> Self {
        let mut input = VecDeque::new();
        for p in packets {
            input.extend(frame(p).bytes());
        }
        Self {
            input,
            output: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

fn frame(body: &str) -> String {
    if body.as_bytes()[0] == 0x03 || body == "+" {
        return body.into();
    }
    let sum = body.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    std::format!("${body}#{sum:02x}")
}

impl Connection for Wire {
    type Error = Closed;
    fn write(&mut self, byte: u8) -> Result<(), Closed> {
        self.output.push(byte);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Closed> {
        Ok(())
    }
}

impl ConnectionExt for Wire {
    fn read(&mut self) -> Result<u8, Closed> {
        self.input.pop_front().ok_or(Closed)
    }
    fn peek(&mut self) -> Result<Option<u8>, Closed> {
        Ok(self.input.front().copied())
    }
}

#[test]
fn walk_four_level_pages_and_errors() {
    let mut g = FakeGuest::new();
    let p = g.paging;
    struct R<'a>(&'a mut FakeGuest);
    impl walk::ReadEntry for R<'_> {
        fn read_entry(&mut self, gpa: u64, width: usize) -> Option<u64> {
            let mut b = [0; 8];
            self.0
                .read_phys(gpa, &mut b[..width])
                .then(|| u64::from_le_bytes(b))
        }
    }
    let mut r = R(&mut g);
    assert_eq!(walk::translate(&p, &mut r, HIGH + 0x123), Ok(0x10_0123));
    assert_eq!(walk::translate(&p, &mut r, HIGH + 0x1ff8), Ok(0x10_3ff8));
    assert_eq!(
        walk::translate(&p, &mut r, HIGH + 0x2000),
        Err(WalkError::NotPresent { level: 1 })
    );
    assert_eq!(walk::translate(&p, &mut r, 0x21_2345), Ok(0x21_2345));
    assert_eq!(
        walk::translate(&p, &mut r, 0x4000_0000),
        Err(WalkError::NotPresent { level: 3 })
    );
    assert_eq!(
        walk::translate(&p, &mut r, 0x0000_8000_0000_0000),
        Err(WalkError::NonCanonical)
    );
    let off = Paging { cr0: 1, ..p };
    assert_eq!(walk::translate(&off, &mut r, 0xdead), Ok(0xdead));
}

#[test]
fn walk_legacy_modes() {
    let mut g = FakeGuest::new();
    // 32-bit paging: PD at 0x5000, a 4 MiB page (PSE) for 0x0040_0000 → 0x0080_0000, a 4 KiB
    // page for 0x0000_1000 through a page table at 0x6000.
    g.ram[0x5004..0x5008].copy_from_slice(&(0x0080_0083u32).to_le_bytes());
    g.ram[0x5000..0x5004].copy_from_slice(&(0x6003u32).to_le_bytes());
    g.ram[0x6004..0x6008].copy_from_slice(&(0x0030_0003u32).to_le_bytes());
    let p32 = Paging {
        cr0: 1 << 31 | 1,
        cr3: 0x5000,
        cr4: 1 << 4,
        efer: 0,
    };
    // PAE: four PDPTEs at 0x7000, the first → PD at 0x3000 (shared with the 4-level tables).
    g.put(0x7000, PD | 1);
    let pae = Paging {
        cr0: 1 << 31 | 1,
        cr3: 0x7000,
        cr4: 1 << 5,
        efer: 0,
    };
    struct R<'a>(&'a mut FakeGuest);
    impl walk::ReadEntry for R<'_> {
        fn read_entry(&mut self, gpa: u64, width: usize) -> Option<u64> {
            let mut b = [0; 8];
            self.0
                .read_phys(gpa, &mut b[..width])
                .then(|| u64::from_le_bytes(b))
        }
    }
    let mut r = R(&mut g);
    assert_eq!(walk::translate(&p32, &mut r, 0x0041_2345), Ok(0x0081_2345));
    assert_eq!(walk::translate(&p32, &mut r, 0x1abc), Ok(0x30_0abc));
    assert_eq!(
        walk::translate(&p32, &mut r, 0x0080_0000),
        Err(WalkError::NotPresent { level: 2 })
    );
    assert_eq!(walk::translate(&pae, &mut r, 0x21_0000), Ok(0x21_0000));
    assert_eq!(walk::translate(&pae, &mut r, 0x0fff), Ok(0x10_0fff));
    assert_eq!(
        walk::translate(&pae, &mut r, 0x4000_0000),
        Err(WalkError::NotPresent { level: 3 })
    );
}

#[test]
fn memory_crosses_discontiguous_pages_and_reports_holes() {
    let mut g = FakeGuest::new();
    write_virtual(&mut g, HIGH + 0xffc, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    assert_eq!(&g.ram[0x10_0ffc..0x10_1000], &[1, 2, 3, 4]);
    assert_eq!(&g.ram[0x10_3000..0x10_3004], &[5, 6, 7, 8]);
    let mut buf = [0; 8];
    read_virtual(&mut g, HIGH + 0xffc, &mut buf).unwrap();
    assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
    // A write running into an unmapped page changes nothing.
    assert_eq!(
        write_virtual(&mut g, HIGH + 0x1ffe, &[9, 9, 9, 9]),
        Err(MemoryError::Unmapped(WalkError::NotPresent { level: 1 }))
    );
    assert_eq!(&g.ram[0x10_3ffe..0x10_4000], &[0, 0]);
    // A page-table entry pointing past guest RAM.
    g.put(PT + 16, 0x8000_0000 | 3);
    assert_eq!(
        read_virtual(&mut g, HIGH + 0x2000, &mut buf),
        Err(MemoryError::OutsideRam { gpa: 0x8000_0000 })
    );
}

#[test]
fn debug_registers_encode_dr7() {
    let mut s = DebugState::default();
    assert!(s.add_hw(HwSlot {
        addr: 0x1000,
        kind: HwKind::Execute,
        len: 1
    }));
    assert!(s.add_hw(HwSlot {
        addr: 0x2008,
        kind: HwKind::Write,
        len: 8
    }));
    assert!(s.add_hw(HwSlot {
        addr: 0x3004,
        kind: HwKind::ReadWrite,
        len: 4
    }));
    // Misaligned and impossible lengths are refused, as is a fifth register.
    assert!(!s.add_hw(HwSlot {
        addr: 0x2004,
        kind: HwKind::Write,
        len: 8
    }));
    assert!(!s.add_hw(HwSlot {
        addr: 0x2000,
        kind: HwKind::Write,
        len: 3
    }));
    assert!(s.add_hw(HwSlot {
        addr: 0x4000,
        kind: HwKind::Write,
        len: 2
    }));
    assert!(!s.add_hw(HwSlot {
        addr: 0x5000,
        kind: HwKind::Write,
        len: 1
    }));
    let (addrs, dr7) = s.debug_registers();
    assert_eq!(addrs, [0x1000, 0x2008, 0x3004, 0x4000]);
    // L0..L3, LE|GE, bit 10; slot 1 W/8 bytes (01,10), slot 2 RW/4 (11,11), slot 3 W/2 (01,01).
    assert_eq!(dr7, 0x55 | 0x300 | 0x400 | 0b0101_1111_1001_0000 << 16);
    assert_eq!(s.hit(0b0100), Some((2, s.hw[2].unwrap())));
    assert!(s.remove_hw(HwSlot {
        addr: 0x3004,
        kind: HwKind::ReadWrite,
        len: 4
    }));
    assert_eq!(s.hit(0b0100), None);
}

#[test]
fn session_breakpoint_continue_step_detach() {
    let mut g = FakeGuest::new();
    g.ram[0x10_0010] = 0x55;
    g.regs.rip = HIGH + 0x10;
    g.script.extend([Ran::Tick, Ran::Breakpoint, Ran::Stepped]);
    let mut session = Session::new(g);
    let mut wire = Wire::new(&[
        "+",
        "?",
        "Z0,ffff800000000010,1",
        "mffff800000000010,1",
        "c",
        "s",
        "mffff800000002000,4",
        "D",
    ]);
    let end = serve(&mut session, &mut wire);
    let out = wire.text();
    assert_eq!(end, SessionEnd::Detached);
    assert!(out.contains("$S05#b8"), "{out}");
    // gdb sees its breakpoint's memory as INT3 while it is set.
    assert!(out.contains("$cc#"), "{out}");
    assert!(out.contains("swbreak"), "{out}");
    assert!(out.contains("$E0e#"), "unmapped read gets EFAULT: {out}");
    let g = session.into_inner();
    // Detach put the original byte back; the Tick resumed the same way.
    assert_eq!(g.ram[0x10_0010], 0x55);
    assert!(g.state.sw.is_empty());
    assert_eq!(g.resumes.len(), 3);
    assert!(!g.resumes[1].step && g.resumes[2].step);
}

#[test]
fn ctrl_c_while_running_stops_with_sigint() {
    let mut g = FakeGuest::new();
    g.script.extend([Ran::Tick, Ran::Tick]);
    let mut session = Session::new(g);
    let mut wire = Wire::new(&["c"]);
    wire.input.push_back(0x03);
    wire.input.extend(frame("k").bytes());
    let end = serve(&mut session, &mut wire);
    assert!(wire.text().contains("$S02#"), "{}", wire.text());
    assert_eq!(end, SessionEnd::Killed);
}

#[test]
fn watchpoint_and_hardware_breakpoint_stop_reasons() {
    let mut g = FakeGuest::new();
    g.script.extend([
        Ran::Debug { dr6: 0b10 },
        Ran::Debug { dr6: 0b01 },
        Ran::Stepped,
    ]);
    let mut session = Session::new(g);
    let mut wire = Wire::new(&[
        "Z1,200000,1",
        "Z2,200108,8",
        "c",
        "c",
        "s",
        "z2,200108,8",
        "D",
    ]);
    serve(&mut session, &mut wire);
    let out = wire.text();
    assert!(out.contains("watch:200108"), "{out}");
    assert!(out.contains("hwbreak"), "{out}");
    let g = session.into_inner();
    // The step after the instruction breakpoint enters with RF so it does not fire again.
    assert_eq!(
        g.resumes[2],
        Resume {
            step: true,
            resume_flag: true
        }
    );
    assert!(!g.resumes[1].resume_flag);
    // Detach freed the debug registers.
    assert_eq!(g.debug_registers.1, 0x400);
}

#[test]
fn malformed_packets_get_an_error_reply_and_the_session_goes_on() {
    let mut session = Session::new(FakeGuest::new());
    let mut wire = Wire::new(&["mzz,qq", "Z0,nothex", "m200000,2"]);
    // A packet with a wrong checksum.
    wire.input.extend(b"$g#00".iter().copied());
    wire.input.extend(frame("D").bytes());
    let end = serve(&mut session, &mut wire);
    let out = wire.text();
    assert_eq!(out.matches("$E01#a6").count(), 3, "{out}");
    // Two zero bytes, run-length encoded ("0" repeated 3 more times).
    assert!(out.contains("$0* #7a"), "{out}");
    assert_eq!(end, SessionEnd::Detached);
}

#[test]
fn register_writes_keep_segments() {
    let mut g = FakeGuest::new();
    g.regs.segments.cs = 0x08;
    let mut session = Session::new(g);
    let mut regs = X86_64CoreRegs::default();
    assert!(SingleThreadBase::read_registers(&mut session, &mut regs).is_ok());
    regs.regs[0] = 0x1234;
    assert!(SingleThreadBase::write_registers(&mut session, &regs).is_ok());
    regs.segments.cs = 0x10;
    assert!(SingleThreadBase::write_registers(&mut session, &regs).is_err());
    assert_eq!(session.into_inner().regs.regs[0], 0x1234);
}
