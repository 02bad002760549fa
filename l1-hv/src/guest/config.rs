//! A guest run's configuration, from its multiboot2 module command line:
//! `NAME [exceptions=none|all|pf|0xMASK] [expect=done|triple-fault|stopped|refused]
//! [shadowing=on|off]`.
//! Unknown words are errors: a typo must not silently change what a run tests.

/// How a run is expected to end; the verdict compares the real end with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The guest reports success with the `Done` hypercall.
    Done,
    /// The guest ends in a triple fault that l1-hv contains.
    TripleFault,
    /// l1-hv stops the guest for something it does not handle (an unhandled exit).
    Stopped,
    /// l1-hv refuses the image (malformed or oversized) and runs nothing.
    Refused,
}

/// One guest run.
#[derive(Clone, Copy, Debug)]
pub struct GuestConfig<'a> {
    /// The image's name (compared across runs: runs of one image must observe the same events).
    pub name: &'a str,
    /// The exception bitmap l1-hv sets for its own interception (SDM 25.6.3).
    pub exception_bitmap: u32,
    /// How the run should end.
    pub expect: Expect,
    /// Whether l1-hv uses hardware VMCS shadowing for the guest's VMREAD/VMWRITE (when the CPU
    /// has it): off makes every VMREAD/VMWRITE of a guest hypervisor exit.
    pub shadowing: bool,
}

impl<'a> GuestConfig<'a> {
    /// Parses a module command line.
    pub fn parse(cmdline: &'a str) -> Result<Self, &'a str> {
        let mut words = cmdline.split_ascii_whitespace();
        let name = words.next().ok_or("empty module command line (a guest needs a name)")?;
        let mut config = GuestConfig { name, exception_bitmap: 0, expect: Expect::Done, shadowing: true };
        for word in words {
            match word.split_once('=') {
                Some(("exceptions", value)) => config.exception_bitmap = parse_bitmap(value).ok_or(word)?,
                Some(("shadowing", "on")) => config.shadowing = true,
                Some(("shadowing", "off")) => config.shadowing = false,
                Some(("expect", "done")) => config.expect = Expect::Done,
                Some(("expect", "triple-fault")) => config.expect = Expect::TripleFault,
                Some(("expect", "stopped")) => config.expect = Expect::Stopped,
                Some(("expect", "refused")) => config.expect = Expect::Refused,
                _ => return Err(word),
            }
        }
        Ok(config)
    }
}

fn parse_bitmap(value: &str) -> Option<u32> {
    match value {
        "none" => Some(0),
        "all" => Some(u32::MAX),
        "pf" => Some(1 << 14),
        _ => u32::from_str_radix(value.strip_prefix("0x")?, 16).ok(),
    }
}
