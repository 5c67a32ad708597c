//! Runs an RP2040 firmware ELF on `rp2040-emu`'s emulated dual Cortex-M0+ and reads its defmt
//! log out of emulated RAM: the Pico without a probe.
//!
//! Why a crate of its own, in `targets/rp2040/runner/` beside the board's other runner files:
//! the emulator, `object` and `defmt-decoder` are host-tooling dependencies that neither
//! `snapmap-core` nor the firmware may see, and that `xtask` (a thin, dependency-light driver)
//! should not compile either; `xtask` runs this crate's binary, and a benchmark can use the
//! library directly ([`load`], [`Rp2040`], [`Log`]). What it shares with the RP2350's runner
//! (ELF loading, the RTT reader, the log, the command line) is in `targets/pico-runner`.
//!
//! - [`load`]: an ELF's `PT_LOAD` segments by physical address (flash is `0x1000_0000..`)
//!   become one flash image; its symbols (`_SEGGER_RTT`, statics) are kept.
//! - [`Rp2040::new`]: `load_flash`, `reset`, `direct_boot_from_flash(0x100)` (there is no boot
//!   ROM image, so the firmware must not call into it: rp2040-hal's `disable-intrinsics`). Core 1
//!   starts when the firmware sends the SIO FIFO launch sequence.
//! - [`Chip::run`] emulates N cycles; [`Chip::take_rtt`] copies the new bytes of RTT
//!   up-buffer 0 out of SRAM; [`Log`] decodes them into defmt lines; [`Chip::halt`] says
//!   whether a core has stopped (see [`Halt`]).
//!
//! How a run ends (what a host sees): there is no semihosting, and `BKPT` with no debugger
//! attached raises a HardFault. So a core sitting in its HardFault handler (IPSR = 3) has ended
//! the run; the exception frame it stacked tells why. A stacked PC at a `BKPT` instruction is
//! [`Halt::Breakpoint`]: the firmware's deliberate success exit. Anything else (panic-probe's
//! `udf`, a bad access, a lockup) is [`Halt::Fault`]: failure.

use std::path::Path;

use rp2040_emu::{Config, Emulator, EmulatorBuilder};

use pico_runner::Rtt;
pub use pico_runner::{run_to_end, Chip, Error, Firmware, Halt, Layout, Log, Outcome};

/// Where XIP flash starts.
pub const FLASH_BASE: u32 = 0x1000_0000;
/// The 2 MiB flash window the emulator models.
pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// The vector table's offset in flash, after the 256-byte second-stage bootloader.
pub const VECTOR_TABLE_OFFSET: u32 = 0x100;
/// clk_sys after rp2040-hal's `init_clocks_and_plls` (what the firmware runs at).
pub const CLOCK_HZ: u64 = 125_000_000;
/// How many cycles [`Rp2040::run`] runs between peripheral ticks; the emulator's default.
pub const STEP_QUANTUM: u32 = 64;

/// The RP2040's flash, for [`Firmware::parse`].
pub const LAYOUT: Layout = Layout {
    chip: "RP2040",
    base: FLASH_BASE,
    size: FLASH_SIZE,
    vector_table: VECTOR_TABLE_OFFSET,
};

/// Reads an RP2040 firmware ELF: its flash image and symbols (see [`Firmware::parse`]).
pub fn load(path: &Path) -> Result<Firmware, Error> {
    Firmware::load(path, &LAYOUT, |_, _| {})
}

/// [`load`], from the ELF's bytes.
pub fn parse(elf: Vec<u8>) -> Result<Firmware, Error> {
    Firmware::parse(elf, &LAYOUT, |_, _| {})
}

/// An emulated RP2040 running one firmware (serial execution model: one host thread, the two
/// cores interleaved one instruction each, each core's cycles counted on its own).
pub struct Rp2040 {
    emu: Emulator,
    rtt: Rtt,
}

impl Rp2040 {
    /// Loads `firmware` into flash and boots it as boot2 would: SP, VTOR and PC from the vector
    /// table at `0x1000_0100`; core 1 waits for the firmware to launch it.
    pub fn new(firmware: &Firmware) -> Result<Self, Error> {
        let mut emu = EmulatorBuilder::new(Config::default())
            .step_quantum(STEP_QUANTUM)
            .build()
            .map_err(|e| Error(format!("cannot build the emulator: {e}")))?;
        emu.load_flash(&firmware.flash);
        emu.reset();
        emu.direct_boot_from_flash(VECTOR_TABLE_OFFSET);
        Ok(Self {
            emu,
            rtt: Rtt::new(firmware),
        })
    }

    /// Wakes each core that sleeps in `wfe` while one of its enabled interrupts is pending and
    /// PRIMASK lets it be taken: on the M0+ the exception entry is a wake-up event (ARMv6-M
    /// ARM, "WFE wake-up events"). A core in `wfi` the emulator wakes itself. Returns whether it
    /// woke one. Its latency here: up to one quantum ([`STEP_QUANTUM`] cycles) after the
    /// interrupt became pending. (A `wfe` in a handler would need the priority check too; none
    /// of this project's firmware sleeps in one.)
    pub fn wake_on_interrupt(&mut self) -> bool {
        let mut woke = false;
        for core in 0..2 {
            let takeable = self.emu.bus.nvics[core].pending_and_enabled() != 0
                && self.emu.cores[core].regs.primask & 1 == 0;
            if self.emu.bus.wfe_waiting[core] && takeable {
                self.emu.bus.wfe_waiting[core] = false;
                woke = true;
            }
        }
        woke
    }

    /// Whether core 1 has been launched and is running (or sleeping in `wfe`/`wfi`).
    pub fn core1_running(&self) -> bool {
        !self.emu.core(1).is_halted()
    }

    /// Where the exception entry of core `core` stacked its frame (see
    /// [`pico_runner::exception_frame`]; an `EXC_RETURN` here is one of the M0+'s three).
    fn exception_frame(&self, core: usize) -> Option<u32> {
        const EXC_RETURN: [u32; 3] = [0xFFFF_FFF1, 0xFFFF_FFF9, 0xFFFF_FFFD];
        let regs = &self.emu.core(core).regs;
        pico_runner::exception_frame(self, regs.r[13], regs.psp, |value| {
            EXC_RETURN.contains(&value)
        })
    }

    /// The emulator itself, for anything this wrapper does not cover.
    pub fn emulator(&mut self) -> &mut Emulator {
        &mut self.emu
    }
}

impl Chip for Rp2040 {
    /// Emulates at least `cycles` cycles of the shared clock (a quantum more at most) or until
    /// both cores sleep with nothing to wake them; returns the cycles run.
    ///
    /// One quantum at a time, and after each a core sleeping in `wfe` with an enabled interrupt
    /// pending is woken, as the M0+ is (see [`wake_on_interrupt`](Self::wake_on_interrupt)):
    /// rp2040-emu 0.1.5 wakes `wfe` only on an event (`sev`, the SIO FIFO), so a due TIMER alarm
    /// left embassy's executor (which sleeps in `wfe`) asleep forever.
    fn run(&mut self, cycles: u64) -> Result<u64, Error> {
        let start = self.emu.cycles();
        while self.emu.cycles() - start < cycles {
            let ran = self
                .emu
                .run_quantum()
                .map_err(|e| Error(format!("the emulator stopped: {e}")))?;
            let woke = self.wake_on_interrupt();
            if ran == 0 && !woke {
                break;
            }
        }
        Ok(self.emu.cycles() - start)
    }

    fn cycles(&self) -> u64 {
        self.emu.cycles()
    }

    /// Cycles core `core` (0 or 1) has spent executing since boot: the figure to trust for
    /// timing code on that core.
    fn core_cycles(&self, core: usize) -> u64 {
        self.emu.core_cycles(core as u8)
    }

    fn pc(&self, core: usize) -> u32 {
        self.emu.core(core).regs.r[15]
    }

    fn peek(&self, addr: u32) -> u32 {
        self.emu.peek(addr)
    }

    fn poke(&mut self, addr: u32, value: u32) {
        self.emu.poke(addr, value)
    }

    fn rtt(&mut self) -> &mut Rtt {
        &mut self.rtt
    }

    /// Core 1 parked before its launch counts as running.
    fn halt_of(&self, core: usize) -> Option<Halt> {
        let cpu = self.emu.core(core);
        let in_hardfault = cpu.is_in_hardfault();
        // Core 0 is never halted by the emulator except on lockup; core 1 is halted until its
        // launch, which is not a stop.
        let locked_up = cpu.is_halted() && (core == 0 || in_hardfault);
        if !in_hardfault && !locked_up {
            return None;
        }
        let frame = self.exception_frame(core);
        let (pc, thumb_frame) = match frame {
            Some(frame) => (self.peek(frame + 24), true),
            None => (cpu.regs.r[15], false),
        };
        let instruction = self.read_bytes(pc & !1, 2);
        let is_bkpt = instruction.get(1) == Some(&0xBE);
        Some(if in_hardfault && !locked_up && thumb_frame && is_bkpt {
            Halt::Breakpoint { core, pc }
        } else {
            Halt::Fault { core, pc }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flash image: vector table at 0x100, `code` after it, a HardFault handler after that.
    fn firmware(code: &[u16]) -> Firmware {
        Firmware::test_image(FLASH_BASE, 0x100, code)
    }

    fn run(code: &[u16]) -> Outcome {
        let mut rp2040 = Rp2040::new(&firmware(code)).unwrap();
        run_to_end(&mut rp2040, None, 100_000, 1_000, |_| {}).unwrap()
    }

    #[test]
    fn bkpt_is_the_success_exit() {
        // movs r0, #1; nop; bkpt #0
        let outcome = run(&[0x2001, 0xBF00, 0xBE00]);
        assert_eq!(
            outcome.halt,
            Some(Halt::Breakpoint {
                core: 0,
                pc: 0x1000_0204
            })
        );
        assert!(outcome.halt.unwrap().passed());
    }

    #[test]
    fn udf_and_bad_accesses_are_failures() {
        // udf #0
        let udf = run(&[0xDE00]).halt.unwrap();
        assert_eq!(
            udf,
            Halt::Fault {
                core: 0,
                pc: 0x1000_0200
            }
        );
        assert!(!udf.passed());
        // movs r0, #1; ldr r1, [r0] (unaligned word load)
        let unaligned = run(&[0x2001, 0x6801]).halt.unwrap();
        assert!(!unaligned.passed(), "{unaligned}");
    }

    #[test]
    fn what_is_not_an_rp2040_elf_is_an_error() {
        assert!(parse(b"not an ELF".to_vec()).is_err());
        assert!(parse(Vec::new()).is_err());
    }

    /// Core 0 enables TIMER_IRQ_0 in its NVIC, arms alarm 0 a few microseconds ahead and sleeps
    /// in `wfe` (PRIMASK clear): the due alarm must wake it, so that it takes the interrupt and
    /// reaches its `bkpt` (without the wake-up: "both cores are asleep", an error).
    #[test]
    fn a_due_timer_alarm_wakes_a_core_sleeping_in_wfe() {
        // r0 = TIMER base 0x40054000, r1 = NVIC ISER 0xE000E100.
        let code = [
            0x4805, // ldr r0, [pc, #20]  -> TIMER
            0x2101, // movs r1, #1
            0x6381, // str r1, [r0, #0x38] (INTE = alarm 0)
            0x6a82, // ldr r2, [r0, #0x28] (TIMERAWL)
            0x3214, // adds r2, #20
            0x6102, // str r2, [r0, #0x10] (ALARM0)
            0x4a03, // ldr r2, [pc, #12]  -> NVIC ISER
            0x6011, // str r1, [r2]        (enable IRQ 0)
            0xBF20, // wfe
            0xBE00, // bkpt (reached only once woken; the IRQ handler returns here)
            0xE7FE, // b .
            0xBF00, // nop (align)
            0x4000, 0x4005, // .word 0x40054000
            0xE100, 0xE000, // .word 0xE000E100
        ];
        let mut fw = firmware(&code);
        // IRQ 0's vector (entry 16) -> a handler that clears the alarm's interrupt and returns:
        // r0 = TIMER, r1 = 1; str r1, [r0, #0x34] (INTR); bx lr.
        let vector = 0x100 + 4 * 16;
        fw.put(vector, &[0x0381, 0x1000]); // 0x1000_0381
        fw.put(0x380, &[0x6341, 0x4770]);
        let mut rp2040 = Rp2040::new(&fw).unwrap();
        // Every peripheral out of reset, as a HAL's start-up leaves them (RESETS.RESET = 0).
        rp2040.emu.mmio_write32(0x4000_C000, 0);
        let outcome = run_to_end(&mut rp2040, None, 1_000_000, 1_000, |_| {}).unwrap();
        assert!(
            matches!(outcome.halt, Some(Halt::Breakpoint { core: 0, .. })),
            "{:?}",
            outcome.halt
        );
    }

    #[test]
    fn a_loop_runs_out_of_budget() {
        let outcome = run(&[0xE7FE]); // b .
        assert_eq!(outcome.halt, None);
        assert!(outcome.cycles >= 100_000);
        assert!(outcome.core_cycles[0] > 0 && outcome.core_cycles[1] == 0);
    }
}
