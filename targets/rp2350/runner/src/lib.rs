//! Runs a Raspberry Pi Pico 2 (RP2350) firmware ELF on `rp2350-emu`'s two emulated Cortex-M33
//! and reads its defmt log out of emulated RAM: the Pico 2 without a probe.
//!
//! The emulator ships no boot ROM (and Raspberry Pi's is not vendored here), so this runner
//! does the three things the chip's ROM and decoder would, and the firmware stays the ELF a
//! board runs:
//!
//! - **Boot.** [`load`] and [`Rp2350::new`] load the ELF's `PT_LOAD` segments by physical address into
//!   flash, loads a tiny ROM of this crate's own ([`SYNTHETIC_ROM`]: a `b .` loop, `udf`
//!   elsewhere, so a call into a missing ROM function faults instead of running on), resets,
//!   and starts core 0 from the vector table at `0x1000_0000` (VTOR, MSP and PC from it). The
//!   `IMAGE_DEF` block a real ROM looks for is not checked.
//! - **Core 1's launch.** Core 1 spins in the ROM's `b .` (so its cycle count keeps up with the
//!   clock) while the runner plays the ROM's side of the SIO FIFO launch handshake that
//!   rp235x-hal's `Multicore::spawn` sends (`0, 0, 1, vector table, stack pointer, entry`, each
//!   word echoed back); after the sixth word it sets core 1's VTOR, MSP and PC, as the ROM
//!   would. See [`Launch`].
//! - **Acquire/release instructions**, which the emulator does not decode, are rewritten in the
//!   loaded image to plain ones of the same size ([`patch`]; sound there, see that module).
//!
//! And two corrections of the emulator's clock model:
//!
//! - its TICKS block counts clk_sys where the chip counts clk_ref, so the 1 µs tick the firmware
//!   programs (`CYCLES` = clk_ref in MHz, 12) would run 12.5 times too fast; the runner scales
//!   `CYCLES` of TIMER0 and TIMER1 by clk_sys/clk_ref whenever the firmware writes it
//!   ([`Rp2350::run`] checks between quanta until core 1 is launched, then between chunks);
//! - its SysTick misses an underflow when a quantum's advance ends with the counter exactly at 0
//!   (a gap its source notes): the chip pends SysTick on that decrement, the emulator only when
//!   an advance runs past 0, and its reload from 0 at the next advance rightly pends nothing.
//!   So, depending on where the quanta fall, a periodic SysTick lost from a few ticks in 6,000
//!   to one in eight. The runner pends those itself after each quantum ([`Rp2350::run`]).
//!
//! What it shares with the RP2040's runner (ELF loading, the RTT reader, the log, the command
//! line) is in `targets/pico-runner`.
//!
//! How a run ends: `bkpt` halts a core as a debugger would (no HardFault, unlike on
//! `rp2040-emu`): [`Halt::Breakpoint`], the firmware's success exit. A core in its HardFault
//! handler (panic-probe's `udf`, a bad access) or locked up is [`Halt::Fault`].

pub mod patch;

use std::path::Path;

use object::read::elf::{ElfFile32, SectionHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SectionFlags, SectionIndex};
use rp2350_emu::{Config, Emulator, EmulatorBuilder};

use pico_runner::{err, Rtt};
pub use pico_runner::{run_to_end, Chip, Error, Firmware, Halt, Layout, Log, Outcome};

pub use patch::Rewrites;

/// Where XIP flash starts; the vector table is there (no second-stage bootloader on RP2350).
pub const FLASH_BASE: u32 = 0x1000_0000;
/// The Pico 2's 4 MiB flash.
pub const FLASH_SIZE: usize = 4 * 1024 * 1024;
/// clk_sys after rp235x-hal's `init_clocks_and_plls` (what the firmware runs at).
pub const CLOCK_HZ: u64 = 150_000_000;
/// clk_ref: the Pico 2's 12 MHz crystal.
pub const REF_HZ: u64 = 12_000_000;
/// The emulator's default quantum: each core runs this many cycles in turn.
pub const DEFAULT_QUANTUM: u32 = 64;

/// SysTick's control bits (SYST_CSR) and the SysTick pend bit of ICSR (ARMv8-M).
const SYST_CSR_ENABLE: u32 = 1 << 0;
const SYST_CSR_TICKINT: u32 = 1 << 1;
const SYST_CSR_COUNTFLAG: u32 = 1 << 16;

/// SIO: the FIFO status and data registers (each core sees its own ends).
const SIO_FIFO_ST: u32 = 0xD000_0050;
const SIO_FIFO_WR: u32 = 0xD000_0054;
const SIO_FIFO_RD: u32 = 0xD000_0058;
const FIFO_ST_VLD: u32 = 1 << 0;
/// TICKS: the TIMER0 and TIMER1 domains' `CYCLES` registers.
const TICKS_TIMER_CYCLES: [u32; 2] = [0x4010_8000 + 0x18 + 4, 0x4010_8000 + 0x24 + 4];

/// A ROM of this crate's own (never Raspberry Pi's): SP 0, reset at `0x10` (`b .`, where core
/// 1 waits), and `udf #0` everywhere else, so a firmware that calls into the ROM (flash
/// programming, reboot) faults at once. The ROM function table pointer at `0x14` reads
/// `0xDE00`, outside the ROM: no function is found there.
pub const SYNTHETIC_ROM: [u8; 256] = synthetic_rom();
const ROM_SPIN: u32 = 0x10;

const fn synthetic_rom() -> [u8; 256] {
    let mut rom = [0u8; 256];
    let mut at = 8;
    while at < rom.len() {
        // udf #0
        rom[at] = 0x00;
        rom[at + 1] = 0xDE;
        at += 2;
    }
    // Word 0: the initial SP (unused: the runner sets each core's). Word 1: reset, Thumb.
    let reset = (ROM_SPIN | 1).to_le_bytes();
    rom[4] = reset[0];
    rom[5] = reset[1];
    rom[6] = reset[2];
    rom[7] = reset[3];
    // b . (0xE7FE)
    rom[ROM_SPIN as usize] = 0xFE;
    rom[ROM_SPIN as usize + 1] = 0xE7;
    rom
}

/// The Pico 2's flash, for [`Firmware::parse`].
pub const LAYOUT: Layout = Layout {
    chip: "RP2350",
    base: FLASH_BASE,
    size: FLASH_SIZE,
    vector_table: 0,
};

/// Reads a Pico 2 firmware ELF: its flash image (acquire/release instructions rewritten, see
/// [`patch`]) and symbols, and what was rewritten.
pub fn load(path: &Path) -> Result<(Firmware, Rewrites), Error> {
    let mut rewrites = Rewrites::default();
    let firmware = Firmware::load(path, &LAYOUT, |file, image| {
        rewrite(file, image, &mut rewrites)
    })?;
    Ok((firmware, rewrites))
}

/// [`load`], from the ELF's bytes.
pub fn parse(elf: Vec<u8>) -> Result<(Firmware, Rewrites), Error> {
    let mut rewrites = Rewrites::default();
    let firmware = Firmware::parse(elf, &LAYOUT, |file, image| {
        rewrite(file, image, &mut rewrites)
    })?;
    Ok((firmware, rewrites))
}

/// Rewrites the code's acquire/release instructions in `image`, a copy of `file`.
fn rewrite(file: &ElfFile32<'_, Endianness>, image: &mut [u8], rewrites: &mut Rewrites) {
    for (start, end) in code_ranges(file) {
        patch::rewrite_code(&mut image[start..end], rewrites);
    }
}

/// The file ranges holding Thumb instructions: each executable section, split by the ARM
/// mapping symbols `$t` (code follows) and `$d` (data follows); a section with none is code.
fn code_ranges(file: &ElfFile32<'_, Endianness>) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let endian = file.endian();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            continue;
        };
        let header = section.elf_section_header();
        if sh_flags & u64::from(object::elf::SHF_EXECINSTR) == 0
            || header.sh_type(endian) != object::elf::SHT_PROGBITS
        {
            continue;
        }
        let Some((offset, size)) = section.file_range() else {
            continue;
        };
        let (base, index) = (section.address(), section.index());
        let mut marks: Vec<(u64, bool)> = file
            .symbols()
            .filter(|s| s.section_index() == Some(index))
            .filter_map(|s| {
                let name = s.name().ok()?;
                let kind = name.strip_prefix('$')?;
                let code = match kind.split('.').next()? {
                    "t" => true,
                    "d" | "a" => false,
                    _ => return None,
                };
                Some((s.address(), code))
            })
            .collect();
        marks.sort_unstable();
        if marks.first().map(|m| m.0) != Some(base) {
            marks.insert(0, (base, marks.is_empty() || index == SectionIndex(0)));
        }
        for (i, &(addr, code)) in marks.iter().enumerate() {
            let end = marks.get(i + 1).map_or(base + size, |m| m.0);
            if code && end > addr {
                let start = (offset + (addr - base)) as usize;
                ranges.push((start, start + (end - addr) as usize));
            }
        }
    }
    ranges
}

/// The boot ROM's side of core 1's launch handshake, played by the host.
///
/// The sequence rp235x-hal (and the Pico SDK) send on the FIFO: `0, 0, 1`, then the vector
/// table, the stack pointer and the entry point; the ROM echoes every word, and starts over
/// when one of the first three is not what it expects.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    received: Vec<u32>,
    /// `(vector table, stack pointer, entry)` once core 1 was started.
    pub started: Option<(u32, u32, u32)>,
}

impl Launch {
    /// Takes one word core 0 sent; returns the launch triple when it completes the sequence.
    pub fn receive(&mut self, word: u32) -> Option<(u32, u32, u32)> {
        const PREAMBLE: [u32; 3] = [0, 0, 1];
        let seen = self.received.len();
        if seen < PREAMBLE.len() && word != PREAMBLE[seen] {
            self.received.clear();
            return None;
        }
        self.received.push(word);
        if let [_, _, _, vtor, sp, entry] = self.received[..] {
            self.received.clear();
            self.started = Some((vtor, sp, entry));
            return self.started;
        }
        None
    }
}

/// An emulated RP2350 running one firmware (serial model: one host thread; each quantum, core
/// 0 runs its share of cycles, then core 1).
pub struct Rp2350 {
    emu: Emulator,
    rtt: Rtt,
    launch: Launch,
    /// The TICKS `CYCLES` values the runner last wrote (TIMER0, TIMER1).
    scaled_ticks: [u32; 2],
    /// Each core's SysTick current value at the end of the last quantum, 0 while disabled.
    systick_values: [u32; 2],
}

impl Rp2350 {
    /// Loads `firmware` and starts core 0 at its reset vector; core 1 waits for its launch.
    /// `quantum`: cycles each core runs in turn (1 = the cores alternate instruction by
    /// instruction; the emulator's default is [`DEFAULT_QUANTUM`]).
    pub fn new(firmware: &Firmware, quantum: u32) -> Result<Self, Error> {
        let mut emu = EmulatorBuilder::new(Config::default())
            .step_quantum(quantum.max(1))
            .build()
            .map_err(|e| Error(format!("cannot build the emulator: {e}")))?;
        emu.load_bootrom(&SYNTHETIC_ROM);
        emu.load_flash(&firmware.flash);
        emu.reset();
        let (Some(sp), Some(reset)) = (firmware.word(FLASH_BASE), firmware.word(FLASH_BASE + 4))
        else {
            return err("no vector table at 0x10000000");
        };
        start_core(&mut emu, 0, FLASH_BASE, sp, reset);
        let mut rp2350 = Self {
            emu,
            rtt: Rtt::new(firmware),
            launch: Launch::default(),
            scaled_ticks: [0; 2],
            systick_values: [0; 2],
        };
        rp2350.scale_ticks();
        Ok(rp2350)
    }

    /// Reads what core 0 sent core 1 and answers as the ROM's wait loop would.
    fn serve_launch(&mut self) {
        while self.emu.bus.read32(SIO_FIFO_ST, 1) & FIFO_ST_VLD != 0 {
            let word = self.emu.bus.read32(SIO_FIFO_RD, 1);
            // Written as core 1: the bus raises core 0's event, which wakes its `wfe`.
            self.emu.bus.write32(SIO_FIFO_WR, word, 1);
            if let Some((vtor, sp, entry)) = self.launch.receive(word) {
                start_core(&mut self.emu, 1, vtor, sp, entry);
                break;
            }
        }
    }

    /// Scales the TIMER0/TIMER1 tick dividers the firmware wrote (clk_ref cycles per µs) to
    /// the clk_sys cycles the emulator counts.
    fn scale_ticks(&mut self) {
        for (i, &register) in TICKS_TIMER_CYCLES.iter().enumerate() {
            let written = self.emu.mmio_read32(register);
            if written != 0 && written != self.scaled_ticks[i] {
                let scaled = (u64::from(written) * CLOCK_HZ / REF_HZ) as u32;
                self.emu.mmio_write32(register, scaled);
                self.scaled_ticks[i] = scaled;
            }
        }
    }

    /// Pends the SysTick underflows of the quantum just run that the emulator missed (see the
    /// crate docs): an enabled counter that was above 0 at the end of the last quantum and is at
    /// 0 now counted down to 0 in this one. (Writing SYST_CVR also zeroes it, but the firmware
    /// here writes it only while SysTick is disabled.)
    fn pend_missed_systicks(&mut self) {
        for (core, last) in self.systick_values.iter_mut().enumerate() {
            let ppb = &mut self.emu.core_mut(core).ppb;
            let enabled = ppb.syst_csr & SYST_CSR_ENABLE != 0;
            if enabled && ppb.syst_cvr == 0 && *last != 0 {
                ppb.syst_csr |= SYST_CSR_COUNTFLAG;
                if ppb.syst_csr & SYST_CSR_TICKINT != 0 {
                    ppb.pend_systick();
                }
            }
            *last = if enabled { ppb.syst_cvr } else { 0 };
        }
    }

    /// Core 1's launch, once it happened: `(vector table, stack pointer, entry)`.
    pub fn core1_launch(&self) -> Option<(u32, u32, u32)> {
        self.launch.started
    }

    /// Where the HardFault entry of `core` stacked its frame (see
    /// [`pico_runner::exception_frame`]; an `EXC_RETURN` here is any `0xFFxx_xxxx`).
    fn exception_frame(&self, core: usize) -> Option<u32> {
        let regs = &self.emu.core(core).regs;
        pico_runner::exception_frame(self, regs.r[13], regs.psp, |value| value >> 24 == 0xFF)
    }

    /// The emulator itself, for anything this wrapper does not cover.
    pub fn emulator(&mut self) -> &mut Emulator {
        &mut self.emu
    }
}

impl Chip for Rp2350 {
    /// Emulates at least `cycles` cycles of the shared clock (a quantum more at most); returns
    /// the cycles run. It goes one quantum at a time, pending the SysTick underflows the
    /// emulator missed after each; until core 1 is launched, it also answers the launch
    /// handshake between quanta.
    fn run(&mut self, cycles: u64) -> Result<u64, Error> {
        let start = self.emu.cycles();
        let target = start + cycles;
        while self.emu.cycles() < target {
            self.emu
                .step()
                .map_err(|e| Error(format!("the emulator stopped: {e}")))?;
            self.pend_missed_systicks();
            if self.launch.started.is_none() {
                self.serve_launch();
                self.scale_ticks();
            }
        }
        self.scale_ticks();
        Ok(self.emu.cycles() - start)
    }

    fn cycles(&self) -> u64 {
        self.emu.cycles()
    }

    /// Cycles core `core` (0 or 1) has spent since reset (core 1: in the ROM loop too).
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

    fn halt_of(&self, core: usize) -> Option<Halt> {
        const IPSR_HARDFAULT: u32 = 3;
        let cpu = self.emu.core(core);
        let in_hardfault = cpu.regs.xpsr & 0x1FF == IPSR_HARDFAULT;
        let pc = cpu.regs.r[15];
        if in_hardfault {
            let stacked = self.exception_frame(core).map(|f| self.peek(f + 24));
            return Some(Halt::Fault {
                core,
                pc: stacked.unwrap_or(pc),
            });
        }
        if core == 1 && self.launch.started.is_none() {
            return (pc & !1 != ROM_SPIN).then_some(Halt::Fault { core, pc });
        }
        // `bkpt` halts the core with PC past it; `wfi` halts it too, with no bkpt before PC.
        let before = pc.wrapping_sub(2);
        let is_bkpt = self.read_bytes(before, 2)[1] == 0xBE;
        (cpu.is_halted() && is_bkpt).then_some(Halt::Breakpoint { core, pc: before })
    }
}

/// Points core `core` at an image as the ROM would: VTOR, MSP (and SP) and PC, Thumb state,
/// thread mode on the main stack.
fn start_core(emu: &mut Emulator, core: usize, vtor: u32, sp: u32, entry: u32) {
    let cpu = emu.core_mut(core);
    cpu.ppb.vtor = vtor & !0x7F;
    cpu.regs.msp = sp;
    cpu.regs.r[13] = sp;
    cpu.regs.control = 0;
    cpu.regs.xpsr = 1 << 24;
    cpu.regs.set_pc(entry & !1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ICSR.PENDSTSET: SysTick is pending.
    const ICSR_PENDSTSET: u32 = 1 << 26;

    /// A flash image: vector table at 0, `code` after it, a HardFault handler after that.
    fn firmware(code: &[u16]) -> Firmware {
        Firmware::test_image(FLASH_BASE, 0, code)
    }

    fn run(code: &[u16]) -> Outcome {
        let mut rp2350 = Rp2350::new(&firmware(code), DEFAULT_QUANTUM).unwrap();
        run_to_end(&mut rp2350, None, 100_000, 1_000, |_| {}).unwrap()
    }

    #[test]
    fn bkpt_is_the_success_exit() {
        // movs r0, #1; nop; bkpt #0
        let outcome = run(&[0x2001, 0xBF00, 0xBE00]);
        assert_eq!(
            outcome.halt,
            Some(Halt::Breakpoint {
                core: 0,
                pc: 0x1000_0104
            })
        );
    }

    #[test]
    fn udf_and_bad_accesses_are_failures() {
        let udf = run(&[0xDE00]).halt.unwrap();
        assert_eq!(
            udf,
            Halt::Fault {
                core: 0,
                pc: 0x1000_0100
            }
        );
        // movs r0, #0; blx r0: a call into the ROM (address 0), which has no such function.
        let rom_call = run(&[0x2000, 0x4780]).halt.unwrap();
        assert!(!rom_call.passed(), "{rom_call}");
    }

    #[test]
    fn a_loop_runs_out_of_budget_with_core_1_waiting_in_the_rom() {
        let outcome = run(&[0xE7FE]); // b .
        assert_eq!(outcome.halt, None);
        assert!(outcome.cycles >= 100_000);
        // Core 1 spins in the ROM loop, keeping up with the clock.
        assert!(outcome.core_cycles[1] >= 90_000, "{outcome:?}");
    }

    #[test]
    fn the_launch_handshake_restarts_on_a_wrong_preamble() {
        let mut launch = Launch::default();
        for word in [0, 0, 7, 0, 0, 1, 0x1000_0000, 0x2000_1000] {
            assert_eq!(launch.receive(word), None);
        }
        assert_eq!(
            launch.receive(0x1000_0201),
            Some((0x1000_0000, 0x2000_1000, 0x1000_0201))
        );
    }

    #[test]
    fn a_systick_quantum_ending_on_zero_pends_the_underflow() {
        // b . on core 0, its SysTick enabled by hand. A quantum's length in core cycles varies a
        // little (the last instruction overshoots), so the counter is set to the length of the
        // last one until a quantum ends with it exactly at 0.
        let mut rp2350 = Rp2350::new(&firmware(&[0xE7FE]), DEFAULT_QUANTUM).unwrap();
        let ppb = &mut rp2350.emu.core_mut(0).ppb;
        ppb.syst_rvr = 100_000;
        ppb.syst_csr = SYST_CSR_ENABLE | SYST_CSR_TICKINT;
        rp2350.run(1).unwrap();
        let mut hits = 0;
        for _ in 0..100 {
            let (before, previous) = (rp2350.core_cycles(0), rp2350.emu.core(0).ppb.syst_cvr);
            rp2350.run(1).unwrap();
            let last_quantum = (rp2350.core_cycles(0) - before) as u32;
            let ppb = &rp2350.emu.core(0).ppb;
            let pended = ppb.icsr & ICSR_PENDSTSET != 0;
            if ppb.syst_cvr == 0 {
                hits += 1;
                assert!(pended, "an underflow to 0 was not pended");
                assert_ne!(ppb.syst_csr & SYST_CSR_COUNTFLAG, 0);
            } else {
                // The emulator's own underflows (past 0, then reloading) pend; nothing else
                // does, the reload from 0 after an underflow to 0 included.
                let underflowed = previous != 0 && ppb.syst_cvr > previous;
                assert_eq!(pended, underflowed, "at {}", ppb.syst_cvr);
            }
            let ppb = &mut rp2350.emu.core_mut(0).ppb;
            ppb.icsr &= !ICSR_PENDSTSET;
            ppb.syst_csr &= !SYST_CSR_COUNTFLAG;
            if ppb.syst_cvr > last_quantum + 1 {
                ppb.syst_cvr = last_quantum;
                rp2350.systick_values[0] = last_quantum;
            }
        }
        assert!(hits > 0, "no quantum ended with SysTick at 0");
    }

    #[test]
    fn what_is_not_an_rp2350_elf_is_an_error() {
        assert!(parse(b"not an ELF".to_vec()).is_err());
    }
}
