//! Power-off, exit and reset requests: what a guest writes to end or restart itself.
//!
//! Each decoder takes a write the bus routed to it and says whether it asks for a
//! [`PowerEvent`]; `None` means the write is something else (e.g. the i8042 driver's ordinary
//! commands on port 0x64), which the bus passes on to the hardware.

use bitflags::bitflags;

/// QEMU's `isa-debug-exit` device at its usual base (kvm-unit-tests' `-device
/// isa-debug-exit,iobase=0xf4,iosize=4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Reset Control Register (Intel PCH/ICH datasheets, "RST_CNT—Reset Control Register", I/O
/// 0xcf9; PIIX3/PIIX4 have it too). Shares the dword at 0xcf8 with PCI's CONFIG_ADDRESS.
pub const RESET_CONTROL_PORT: u16 = 0xcf9;
/// The 8042 keyboard controller's command port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// System Control Port A (PS/2 "port 92h": bit 0 fast CPU reset, bit 1 A20 gate).
pub const SYSTEM_CONTROL_A_PORT: u16 = 0x92;
/// Bochs' shutdown port: writing the string "Shutdown" byte by byte ends the emulator.
pub const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;
/// Bochs' debugger/instrumentation command port (a 16-bit write of 0x8ae0 stops the emulator at
/// its debugger prompt) and the byte port after it.
pub const BOCHS_COMMAND_PORT: u16 = 0x8a00;

/// A request to end or restart the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerEvent {
    /// SLP_EN written to PM1a control with this SLP_TYP (bits 12:10). Which value means S5 is
    /// in the DSDT's `\_S5` package, which l1-hv does not interpret: the guest cannot put the
    /// real machine to sleep either way, so every sleep request ends it.
    PoweredOff { sleep_type: u8 },
    /// A write to QEMU's exit device: `status` is `(value << 1) | 1`, the status QEMU exits
    /// with (kvm-unit-tests writes 0 on success: status 1).
    Exited { status: u32 },
    /// A reset request.
    Reset { how: ResetMethod },
}

/// How the guest asked to be reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetMethod {
    /// Port 0xcf9 with RST_CPU; `full` when SYS_RST asked for a hard (platform) reset rather
    /// than a CPU-only one.
    ResetControl { full: bool },
    /// The 8042 "pulse output port" command with the reset line's bit clear (0xfe).
    KeyboardController,
    /// Port 0x92 bit 0 (fast reset).
    SystemControlPortA,
    /// The FADT's RESET_REG written with RESET_VALUE (ACPI 6.5 §4.8.3.6).
    AcpiResetRegister,
}

bitflags! {
    /// PM1 control register bits (ACPI 6.5 §4.8.3.2.1, "PM1 Control Registers").
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Pm1Control: u16 {
        /// SLP_TYP: the sleeping state to enter when SLP_EN is written 1.
        const SLEEP_TYPE = 0b111 << 10;
        /// SLP_EN: write-only, enters the state in SLP_TYP.
        const SLEEP_ENABLE = 1 << 13;
        const _ = !0;
    }

    /// Reset Control Register at 0xcf9 (Intel PCH datasheets, RST_CNT).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ResetControl: u8 {
        /// SYS_RST: a hard reset (platform) instead of a soft (CPU INIT-like) one.
        const SYSTEM_RESET = 1 << 1;
        /// RST_CPU: starts the reset of the type SYS_RST selects.
        const RESET_CPU = 1 << 2;
        const _ = !0;
    }
}

/// A write of `value` (already placed at its bit position in the 16-bit register) to PM1a
/// control.
pub fn pm1_control_write(value: Pm1Control) -> Option<PowerEvent> {
    value
        .contains(Pm1Control::SLEEP_ENABLE)
        .then(|| PowerEvent::PoweredOff {
            sleep_type: ((value & Pm1Control::SLEEP_TYPE).bits() >> 10) as u8,
        })
}

/// A write of `value` (of the access's size) to the exit device: always an exit.
pub fn debug_exit_write(value: u32) -> PowerEvent {
    PowerEvent::Exited {
        status: (value << 1) | 1,
    }
}

/// A byte written to port 0xcf9: a reset when RST_CPU is set. Without it (e.g. Linux's first
/// write, SYS_RST alone, which picks the reset type) the write is for the hardware.
pub fn reset_control_write(value: u8) -> Option<PowerEvent> {
    let value = ResetControl::from_bits_retain(value);
    value
        .contains(ResetControl::RESET_CPU)
        .then_some(PowerEvent::Reset {
            how: ResetMethod::ResetControl {
                full: value.contains(ResetControl::SYSTEM_RESET),
            },
        })
}

/// A command byte written to the 8042's port 0x64. Commands 0xf0–0xff pulse the output-port
/// lines whose bits (3:0) are 0, and line 0 is the CPU reset; so 0xfe, and every other even
/// pulse command, resets. Passing those to the hardware would reset l1-hv's machine.
pub fn i8042_command(value: u8) -> Option<PowerEvent> {
    (value & 0xf0 == 0xf0 && value & 1 == 0).then_some(PowerEvent::Reset {
        how: ResetMethod::KeyboardController,
    })
}

/// A byte written to port 0x92: bit 0 resets. A guest keeps it 0 in its read-modify-write of
/// the A20 bit (the real register reads 0 there, or the machine would have reset).
pub fn system_control_a_write(value: u8) -> Option<PowerEvent> {
    (value & 1 != 0).then_some(PowerEvent::Reset {
        how: ResetMethod::SystemControlPortA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pm1_control_powers_off_only_with_slp_en() {
        // SLP_EN with SLP_TYP 0, and with SLP_TYP 5 and SCI_EN (bit 0).
        assert_eq!(
            pm1_control_write(Pm1Control::from_bits_retain(0x2000)),
            Some(PowerEvent::PoweredOff { sleep_type: 0 })
        );
        assert_eq!(
            pm1_control_write(Pm1Control::from_bits_retain(0x3401)),
            Some(PowerEvent::PoweredOff { sleep_type: 5 })
        );
        // SLP_TYP without SLP_EN, or SCI_EN alone: not a power-off.
        assert_eq!(
            pm1_control_write(Pm1Control::from_bits_retain(0x1c01)),
            None
        );
        assert_eq!(
            pm1_control_write(Pm1Control::from_bits_retain(0x0001)),
            None
        );
    }

    #[test]
    fn debug_exit_status_follows_qemu() {
        assert_eq!(debug_exit_write(0), PowerEvent::Exited { status: 1 });
        assert_eq!(debug_exit_write(1), PowerEvent::Exited { status: 3 });
        assert_eq!(debug_exit_write(0x7f), PowerEvent::Exited { status: 0xff });
        assert_eq!(
            debug_exit_write(0x8000_0000),
            PowerEvent::Exited { status: 1 }
        );
    }

    #[test]
    fn reset_control_needs_rst_cpu() {
        assert_eq!(
            reset_control_write(0x02),
            None,
            "SYS_RST alone selects the type"
        );
        assert_eq!(
            reset_control_write(0x06),
            Some(PowerEvent::Reset {
                how: ResetMethod::ResetControl { full: true }
            })
        );
        assert_eq!(
            reset_control_write(0x04),
            Some(PowerEvent::Reset {
                how: ResetMethod::ResetControl { full: false }
            })
        );
        assert_eq!(reset_control_write(0x00), None);
    }

    #[test]
    fn keyboard_controller_resets_on_pulse_commands_with_bit_0_clear() {
        let reset = Some(PowerEvent::Reset {
            how: ResetMethod::KeyboardController,
        });
        assert_eq!(i8042_command(0xfe), reset);
        assert_eq!(i8042_command(0xf0), reset);
        assert_eq!(i8042_command(0xff), None, "pulses nothing");
        assert_eq!(i8042_command(0xfd), None, "pulses line 1 only");
        // Ordinary driver commands: read config, write config, self-test, disable/enable port.
        for command in [0x20, 0x60, 0xaa, 0xad, 0xae, 0xd4] {
            assert_eq!(i8042_command(command), None, "{command:#x}");
        }
    }

    #[test]
    fn port_92_resets_on_bit_0() {
        assert_eq!(system_control_a_write(0x02), None, "A20 on");
        assert_eq!(
            system_control_a_write(0x03),
            Some(PowerEvent::Reset {
                how: ResetMethod::SystemControlPortA
            })
        );
    }
}
