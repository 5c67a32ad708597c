//! Runs an RP2040 firmware ELF on `rp2040-emu`'s emulated dual Cortex-M0+ and reads its defmt
//! log out of emulated RAM: the Pico without a probe.
//!
//! Why a crate of its own, in `targets/rp2040/runner/` beside the board's other runner files:
//! the emulator, `object` and `defmt-decoder` are host-tooling dependencies that neither
//! `snapmap-core` nor the firmware may see, and that `xtask` (a thin, dependency-light driver)
//! should not compile either; `xtask` runs this crate's binary, and a benchmark can use the
//! library directly ([`Firmware`], [`Rp2040`], [`Log`]).
//!
//! - [`Firmware::load`]: an ELF's `PT_LOAD` segments by physical address (flash is
//!   `0x1000_0000..`) become one flash image; its symbols (`_SEGGER_RTT`, statics) are kept.
//! - [`Rp2040::new`]: `load_flash`, `reset`, `direct_boot_from_flash(0x100)` (there is no boot
//!   ROM image, so the firmware must not call into it: rp2040-hal's `disable-intrinsics`). Core 1
//!   starts when the firmware sends the SIO FIFO launch sequence.
//! - [`Rp2040::run`] emulates N cycles; [`Rp2040::take_rtt`] copies the new bytes of RTT
//!   up-buffer 0 out of SRAM; [`Log`] decodes them into defmt lines; [`Rp2040::halt`] says
//!   whether a core has stopped (see [`Halt`]).
//!
//! How a run ends (what a host sees): there is no semihosting, and `BKPT` with no debugger
//! attached raises a HardFault. So a core sitting in its HardFault handler (IPSR = 3) has ended
//! the run; the exception frame it stacked tells why. A stacked PC at a `BKPT` instruction is
//! [`Halt::Breakpoint`]: the firmware's deliberate success exit. Anything else (panic-probe's
//! `udf`, a bad access, a lockup) is [`Halt::Fault`]: failure.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use object::read::elf::{ElfFile32, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};
use rp2040_emu::{Config, Emulator, EmulatorBuilder};

/// Where XIP flash starts.
pub const FLASH_BASE: u32 = 0x1000_0000;
/// The 2 MiB flash window the emulator models.
pub const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// The vector table's offset in flash, after the 256-byte second-stage bootloader.
pub const VECTOR_TABLE_OFFSET: u32 = 0x100;
/// clk_sys after rp2040-hal's `init_clocks_and_plls` (what the firmware runs at).
pub const CLOCK_HZ: u64 = 125_000_000;
/// How many cycles [`Rp2040::step_quantum`] runs between peripheral ticks; the emulator's default.
pub const STEP_QUANTUM: u32 = 64;

/// The RTT control block symbol (defmt-rtt's).
const RTT_SYMBOL: &str = "_SEGGER_RTT";
/// Offset of up-buffer 0's descriptor in the control block: after the 16-byte id and the two
/// buffer counts. The descriptor: name, buffer, size, write offset, read offset, flags.
const RTT_UP0: u32 = 24;
/// The id the control block holds once the firmware has initialized it.
const RTT_ID: &[u8; 16] = b"SEGGER RTT\0\0\0\0\0\0";
/// The `flags` mode that makes defmt-rtt wait for the host when the buffer is full, as
/// `probe-rs run` sets it: nothing is dropped, whatever the chunk size.
const RTT_MODE_BLOCK_IF_FULL: u32 = 2;
const RTT_MODE_MASK: u32 = 3;

/// An error with a message for the user.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// A firmware ELF, ready to load: its flash image and its symbols.
pub struct Firmware {
    /// The ELF file itself (defmt's tables are read from it).
    pub elf: Vec<u8>,
    /// Flash contents from `FLASH_BASE` to the end of the last loaded byte.
    pub flash: Vec<u8>,
    symbols: HashMap<String, u32>,
}

impl Firmware {
    /// Reads an ELF from disk (see [`Firmware::parse`]).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let elf = std::fs::read(path)
            .map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(elf)
    }

    /// Builds the flash image from the ELF's `PT_LOAD` segments, each at its physical (load)
    /// address: `.data`'s initial values go to flash, where cortex-m-rt copies them from.
    pub fn parse(elf: Vec<u8>) -> Result<Self, Error> {
        let file = ElfFile32::<Endianness>::parse(&*elf)
            .map_err(|e| Error(format!("not a 32-bit ELF file: {e}")))?;
        let endian = file.endian();
        let mut flash = Vec::new();
        for header in file.elf_program_headers() {
            if header.p_type(endian) != object::elf::PT_LOAD || header.p_filesz(endian) == 0 {
                continue;
            }
            let data = header
                .data(endian, &*elf)
                .map_err(|()| Error("a load segment lies outside the file".to_owned()))?;
            // The physical (load) address: for `.data` that is flash, not RAM.
            let paddr = header.p_paddr(endian);
            let Some(offset) = paddr
                .checked_sub(FLASH_BASE)
                .map(|o| o as usize)
                .filter(|o| o + data.len() <= FLASH_SIZE)
            else {
                return err(format!(
                    "a loadable segment at {paddr:#010x} ({} bytes) is not in flash \
                     ({FLASH_BASE:#010x}, 2 MiB): is this an RP2040 ELF?",
                    data.len()
                ));
            };
            if flash.len() < offset + data.len() {
                flash.resize(offset + data.len(), 0xFF);
            }
            flash[offset..offset + data.len()].copy_from_slice(data);
        }
        if flash.len() < (VECTOR_TABLE_OFFSET + 8) as usize {
            return err("the ELF has no vector table at 0x10000100: not an RP2040 image");
        }
        let symbols = file
            .symbols()
            .filter_map(|s| Some((s.name().ok()?.to_owned(), s.address() as u32)))
            .filter(|(name, _)| !name.is_empty())
            .collect();
        Ok(Self {
            elf,
            flash,
            symbols,
        })
    }

    /// The address of symbol `name` (a static, a function), if the ELF has it.
    pub fn symbol(&self, name: &str) -> Option<u32> {
        self.symbols.get(name).copied()
    }
}

/// Why a core stopped running the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// It executed `BKPT` at `pc` (and, with no debugger, took a HardFault there): the
    /// firmware's own "done, passed" exit.
    Breakpoint { core: usize, pc: u32 },
    /// It took a HardFault for any other reason (panic-probe's `udf`, a bad access, ...), with
    /// `pc` the faulting instruction as stacked, or locked up (a fault in the fault handler).
    Fault { core: usize, pc: u32 },
}

impl Halt {
    /// Whether this is the firmware's success exit.
    pub fn passed(&self) -> bool {
        matches!(self, Halt::Breakpoint { .. })
    }
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Breakpoint { core, pc } => {
                write!(f, "core {core} stopped at BKPT, pc={pc:#010x}")
            }
            Halt::Fault { core, pc } => write!(f, "core {core} HardFault, pc={pc:#010x}"),
        }
    }
}

/// An emulated RP2040 running one firmware (serial execution model: one host thread, the two
/// cores interleaved one instruction each, each core's cycles counted on its own).
pub struct Rp2040 {
    emu: Emulator,
    rtt: Option<u32>,
    rtt_ready: bool,
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
            rtt: firmware.symbol(RTT_SYMBOL),
            rtt_ready: false,
        })
    }

    /// Emulates at least `cycles` cycles of the shared clock (a quantum more at most) or until
    /// both cores sleep with nothing to wake them; returns the cycles run.
    ///
    /// One quantum at a time, and after each a core sleeping in `wfe` with an enabled interrupt
    /// pending is woken, as the M0+ is (see [`wake_on_interrupt`](Self::wake_on_interrupt)):
    /// rp2040-emu 0.1.5 wakes `wfe` only on an event (`sev`, the SIO FIFO), so a due TIMER alarm
    /// left embassy's executor (which sleeps in `wfe`) asleep forever.
    pub fn run(&mut self, cycles: u64) -> Result<u64, Error> {
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

    /// Cycles of the shared clock since boot.
    pub fn cycles(&self) -> u64 {
        self.emu.cycles()
    }

    /// Cycles core `core` (0 or 1) has spent executing since boot: the figure to trust for
    /// timing code on that core.
    pub fn core_cycles(&self, core: usize) -> u64 {
        self.emu.core_cycles(core as u8)
    }

    /// The 32-bit word at `addr` (aligned), read without bus timing.
    pub fn peek(&self, addr: u32) -> u32 {
        self.emu.peek(addr)
    }

    /// Writes the word at `addr`, without bus timing.
    pub fn poke(&mut self, addr: u32, value: u32) {
        self.emu.poke(addr, value)
    }

    /// `len` bytes from `addr`, read word by word.
    pub fn read_bytes(&self, addr: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 4);
        let start = addr & !3;
        let mut word = start;
        while (word as u64) < addr as u64 + len as u64 {
            out.extend_from_slice(&self.peek(word).to_le_bytes());
            word = word.wrapping_add(4);
        }
        let skip = (addr - start) as usize;
        out[skip..skip + len].to_vec()
    }

    /// The program counter of core `core`.
    pub fn pc(&self, core: usize) -> u32 {
        self.emu.core(core).regs.r[15]
    }

    /// Whether core 1 has been launched and is running (or sleeping in `wfe`/`wfi`).
    pub fn core1_running(&self) -> bool {
        !self.emu.core(1).is_halted()
    }

    /// Whether a core has stopped, and why; `None` while both run (core 1 parked before its
    /// launch counts as running). A fault on either core wins over a breakpoint on the other:
    /// core 0 passing while core 1 crashed is a failure.
    pub fn halt(&self) -> Option<Halt> {
        let halts = [self.halt_of(0), self.halt_of(1)];
        let fault = halts.iter().flatten().find(|h| !h.passed());
        fault.or(halts.iter().flatten().next()).copied()
    }

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

    /// Where the exception entry of core `core` stacked its frame (r0-r3, r12, lr, pc, xpsr).
    ///
    /// The handler may have pushed registers on top (cortex-m-rt's `HardFault_` keeps a frame
    /// pointer: `push {r7, lr}`), so look for the `EXC_RETURN` value such a push stores right
    /// below the frame, within a few words of SP; else the frame is at SP. A candidate counts
    /// only if its stacked xPSR has the Thumb bit.
    fn exception_frame(&self, core: usize) -> Option<u32> {
        const EXC_RETURN: [u32; 3] = [0xFFFF_FFF1, 0xFFFF_FFF9, 0xFFFF_FFFD];
        const SEARCH_WORDS: u32 = 16;
        let regs = &self.emu.core(core).regs;
        let sp = regs.r[13];
        let valid = |frame: u32| self.peek(frame.wrapping_add(28)) & (1 << 24) != 0;
        let pushed = (0..SEARCH_WORDS)
            .map(|i| sp.wrapping_add(4 * i))
            .filter_map(|at| match self.peek(at) {
                // Thread mode on the process stack: the frame went there.
                0xFFFF_FFFD => Some(regs.psp),
                value if EXC_RETURN.contains(&value) => Some(at.wrapping_add(4)),
                _ => None,
            });
        pushed.chain([sp]).find(|&frame| valid(frame))
    }

    /// The bytes the firmware wrote to RTT up-buffer 0 since the last call (none before it set
    /// the control block up, or if the ELF has no `_SEGGER_RTT`). Marks them read, so a
    /// firmware in blocking mode can go on writing.
    pub fn take_rtt(&mut self) -> Vec<u8> {
        let Some(block) = self.rtt else {
            return Vec::new();
        };
        if !self.rtt_ready {
            if self.read_bytes(block, RTT_ID.len()) != RTT_ID {
                return Vec::new();
            }
            // Block when full, as probe-rs does: a log line is never dropped between chunks.
            let flags = block + RTT_UP0 + 20;
            let mode = self.peek(flags);
            self.poke(flags, (mode & !RTT_MODE_MASK) | RTT_MODE_BLOCK_IF_FULL);
            self.rtt_ready = true;
        }
        let desc = block + RTT_UP0;
        let (buffer, size) = (self.peek(desc + 4), self.peek(desc + 8));
        let (write, read) = (self.peek(desc + 12), self.peek(desc + 16));
        if size == 0 || write >= size || read >= size || write == read {
            return Vec::new();
        }
        let mut bytes = if write > read {
            self.read_bytes(buffer + read, (write - read) as usize)
        } else {
            let mut wrapped = self.read_bytes(buffer + read, (size - read) as usize);
            wrapped.extend(self.read_bytes(buffer, write as usize));
            wrapped
        };
        bytes.shrink_to_fit();
        self.poke(desc + 16, write);
        bytes
    }

    /// The emulator itself, for anything this wrapper does not cover.
    pub fn emulator(&mut self) -> &mut Emulator {
        &mut self.emu
    }
}

/// Decodes a firmware's defmt frames into lines of text, as `defmt-print` would show them
/// (`LEVEL message`, or the message alone for `println!`).
pub struct Log {
    decoder: Box<dyn defmt_decoder::StreamDecoder + Send + Sync>,
}

impl Log {
    /// The decoder for `firmware`'s defmt table; `None` if the ELF has no defmt data.
    pub fn new(firmware: &Firmware) -> Result<Option<Self>, Error> {
        let Some(table) = defmt_decoder::Table::parse(&firmware.elf)
            .map_err(|e| Error(format!("cannot read the ELF's defmt table: {e}")))?
        else {
            return Ok(None);
        };
        // The stream decoder borrows its table for as long as it lives; one table per loaded
        // firmware, for the life of the process, so leaking it is the simple way to own both.
        let table: &'static defmt_decoder::Table = Box::leak(Box::new(table));
        Ok(Some(Self {
            decoder: table.new_stream_decoder(),
        }))
    }

    /// Feeds `bytes` (from [`Rp2040::take_rtt`]) and returns the lines completed so far. A
    /// malformed frame becomes a line saying so (the decoder resynchronizes on the next one).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.decoder.received(bytes);
        let mut lines = Vec::new();
        loop {
            match self.decoder.decode() {
                Ok(frame) => lines.push(match frame.level() {
                    Some(level) => format!(
                        "{:<5} {}",
                        level.as_str().to_uppercase(),
                        frame.display_message()
                    ),
                    // `defmt::println!`: the message alone, as defmt-print shows it.
                    None => frame.display_message().to_string(),
                }),
                Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                Err(defmt_decoder::DecodeError::Malformed) => {
                    lines.push("ERROR (a malformed defmt frame)".to_owned());
                }
            }
        }
        lines
    }
}

/// What [`run_to_end`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Why the run stopped; `None` if the cycle budget ran out first.
    pub halt: Option<Halt>,
    /// Cycles of the shared clock run.
    pub cycles: u64,
    /// Cycles each core spent executing.
    pub core_cycles: [u64; 2],
}

/// Runs `rp2040` in chunks of `chunk` cycles until a core halts or `budget` cycles have run,
/// handing each decoded log line to `line` as it arrives.
pub fn run_to_end(
    rp2040: &mut Rp2040,
    mut log: Option<&mut Log>,
    budget: u64,
    chunk: u64,
    mut line: impl FnMut(&str),
) -> Result<Outcome, Error> {
    let mut drain = |rp2040: &mut Rp2040, log: &mut Option<&mut Log>| {
        let bytes = rp2040.take_rtt();
        if let Some(log) = log.as_deref_mut() {
            for text in log.push(&bytes) {
                line(&text);
            }
        }
    };
    let mut halt = None;
    while rp2040.cycles() < budget {
        let ran = rp2040.run(chunk.min(budget - rp2040.cycles()))?;
        drain(rp2040, &mut log);
        halt = rp2040.halt();
        if halt.is_some() {
            break;
        }
        if ran == 0 {
            return err(format!(
                "both cores are asleep with nothing to wake them (pc {:#010x}, {:#010x})",
                rp2040.pc(0),
                rp2040.pc(1)
            ));
        }
    }
    // A core in blocking RTT mode may have more to say once its buffer was emptied; a stopped
    // firmware has nothing more, but read once more for what the last chunk left.
    drain(rp2040, &mut log);
    Ok(Outcome {
        halt,
        cycles: rp2040.cycles(),
        core_cycles: [rp2040.core_cycles(0), rp2040.core_cycles(1)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flash image: vector table at 0x100 (SP, reset, NMI, HardFault), `code` at 0x200 (the
    /// reset handler), and a HardFault handler at 0x300 that pushes a frame pointer first, as
    /// cortex-m-rt's does (`push {r7, lr}; add r7, sp, #0; b .`).
    fn firmware(code: &[u16]) -> Firmware {
        let mut flash = vec![0xFF; 0x400];
        let words = [0x2000_1000u32, 0x1000_0201, 0x1000_0301, 0x1000_0301];
        for (i, word) in words.iter().enumerate() {
            flash[0x100 + 4 * i..0x104 + 4 * i].copy_from_slice(&word.to_le_bytes());
        }
        let put = |flash: &mut Vec<u8>, at: usize, halfwords: &[u16]| {
            for (i, h) in halfwords.iter().enumerate() {
                flash[at + 2 * i..at + 2 * i + 2].copy_from_slice(&h.to_le_bytes());
            }
        };
        put(&mut flash, 0x200, code);
        put(&mut flash, 0x300, &[0xB580, 0xAF00, 0xE7FE]);
        Firmware {
            elf: Vec::new(),
            flash,
            symbols: HashMap::new(),
        }
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
        assert!(Firmware::parse(b"not an ELF".to_vec()).is_err());
        assert!(Firmware::parse(Vec::new()).is_err());
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
        fw.flash[vector..vector + 4].copy_from_slice(&0x1000_0381u32.to_le_bytes());
        for (i, h) in [0x6341u16, 0x4770].iter().enumerate() {
            fw.flash[0x380 + 2 * i..0x382 + 2 * i].copy_from_slice(&h.to_le_bytes());
        }
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
