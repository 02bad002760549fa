//! A guest's configuration: what kind of image it boots, its memory, what l1-hv intercepts.
//! Parsed from the words of its multiboot2 module line (the harness takes the words that are
//! about judging the run, such as `expect=`, before handing the rest here):
//! `[boot=abi|auto] [mem=SIZE] [forward=none|all] [exceptions=none|all|pf|0xMASK]
//! [shadowing=on|off] [gdb=com2]`. Unknown words are errors: a typo must not silently change a run.

use l2_abi::RAM_SIZE as ABI_RAM_SIZE;

/// How the image is booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// One of l1-hv's test images (`l2-guests`): ELF64 entered in 64-bit mode, hypercall ABI.
    Abi,
    /// A kernel: Linux bzImage, multiboot2 or multiboot1, detected from its headers and entered
    /// in 32-bit protected mode as its boot protocol says, on a machine with devices.
    Kernel,
}

/// Which events l1-hv intercepts and forwards (re-injects) for a kernel guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Only what l1-hv must: the guest takes its exceptions, interrupts and NMIs directly.
    None,
    /// Every exception (bitmap all ones, PFEC mask/match 0/0), external interrupt and NMI
    /// exits to l1-hv and is re-injected through `nvmx::inject`.
    All,
}

/// Where l1-hv serves gdb for a guest (docs/debugging.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugPort {
    /// The second serial port (0x2f8), which guests never see.
    Com2,
}

/// Default RAM of a kernel guest.
const KERNEL_RAM: u64 = 256 << 20;
/// Guest RAM is mapped with 2 MiB EPT pages, so its size is a multiple of that.
const RAM_GRANULE: u64 = 2 << 20;

/// One guest's configuration.
#[derive(Clone, Copy, Debug)]
pub struct GuestConfig<'a> {
    /// The run's name (the first word of the module line).
    pub name: &'a str,
    /// How the image is booted.
    pub boot: Boot,
    /// Bytes of RAM at guest-physical 0.
    pub ram_size: u64,
    /// What l1-hv forwards (kernel guests).
    pub forward: Forward,
    /// The exception bitmap l1-hv sets for its own interception (SDM 25.6.3).
    pub exception_bitmap: u32,
    /// Whether l1-hv uses hardware VMCS shadowing for a guest hypervisor's VMREAD/VMWRITE (when
    /// the CPU has it): off makes every VMREAD/VMWRITE exit.
    pub shadowing: bool,
    /// The kernel's command line (the words after `--`).
    pub cmdline: &'a str,
    /// Serve gdb for this guest on this port, stopped at its first instruction.
    pub debugger: Option<DebugPort>,
}

impl<'a> GuestConfig<'a> {
    /// The defaults for a run called `name` with kernel command line `cmdline`.
    pub fn new(name: &'a str, cmdline: &'a str) -> Self {
        Self {
            name,
            boot: Boot::Abi,
            ram_size: ABI_RAM_SIZE,
            forward: Forward::None,
            exception_bitmap: 0,
            shadowing: true,
            cmdline,
            debugger: None,
        }
    }

    /// Applies one `KEY=VALUE` word; `Err` if it is not one of these options.
    pub fn apply(&mut self, word: &'a str) -> Result<(), &'a str> {
        match word.split_once('=').ok_or(word)? {
            ("boot", "abi") => self.boot = Boot::Abi,
            ("boot", "auto") => {
                self.boot = Boot::Kernel;
                if self.ram_size == ABI_RAM_SIZE {
                    self.ram_size = KERNEL_RAM;
                }
            }
            ("mem", size) => self.ram_size = parse_size(size).ok_or(word)?,
            ("forward", "none") => self.forward = Forward::None,
            ("forward", "all") => self.forward = Forward::All,
            ("exceptions", value) => self.exception_bitmap = parse_bitmap(value).ok_or(word)?,
            ("shadowing", "on") => self.shadowing = true,
            ("shadowing", "off") => self.shadowing = false,
            ("gdb", "com2") => self.debugger = Some(DebugPort::Com2),
            _ => return Err(word),
        }
        Ok(())
    }

    /// The exception bitmap to run with: everything when forwarding all events.
    pub fn effective_exception_bitmap(&self) -> u32 {
        match self.forward {
            Forward::All => u32::MAX,
            Forward::None => self.exception_bitmap,
        }
    }
}

/// `SIZE` as `N`, `NK`, `NM` or `NG` bytes, a non-zero multiple of 2 MiB below 4 GiB (guest
/// RAM lies below the 32-bit MMIO hole, and l1-hv maps it with 2 MiB pages).
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let bytes = digits.parse::<u64>().ok()?.checked_shl(shift)?;
    (bytes > 0 && bytes % RAM_GRANULE == 0 && bytes <= 3 << 30).then_some(bytes)
}

fn parse_bitmap(value: &str) -> Option<u32> {
    match value {
        "none" => Some(0),
        "all" => Some(u32::MAX),
        "pf" => Some(1 << 14),
        _ => u32::from_str_radix(value.strip_prefix("0x")?, 16).ok(),
    }
}
