//! What the two emulated Picos' runners share: the chip-independent half of running a firmware
//! ELF on an emulator and reading its defmt log out of emulated RAM.
//!
//! `targets/rp2040/runner` (`rp2040-emu`) and `targets/rp2350/runner` (`rp2350-emu`) each keep
//! their chip's own parts (the emulator, the boot, how a halt is recognized); this crate holds
//! the rest, so both read an ELF, an RTT buffer and a log the same way:
//!
//! - [`Firmware`]: an ELF's `PT_LOAD` segments by physical address become one flash image (a
//!   runner may rewrite instructions in the copy first); its symbols (`_SEGGER_RTT`) are kept.
//! - [`Chip`]: what a runner's emulated chip offers; it provides [`Chip::take_rtt`] (the new
//!   bytes of RTT up-buffer 0) and [`Chip::halt`] (a fault on either core wins).
//! - [`Log`] decodes the RTT bytes into defmt lines; [`run_to_end`] runs a chip in chunks until
//!   it halts or its cycle budget runs out.
//! - [`cli`]: the runners' shared command line, exit statuses and last line.

pub mod cli;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use object::read::elf::{ElfFile32, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

/// The RTT control block symbol (defmt-rtt's).
pub const RTT_SYMBOL: &str = "_SEGGER_RTT";
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

/// `Err(Error(message))`.
pub fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// Where a chip's flash is, for [`Firmware::parse`].
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The chip's name, for messages ("RP2040").
    pub chip: &'static str,
    /// Where XIP flash starts.
    pub base: u32,
    /// The flash size the emulator models, in bytes.
    pub size: usize,
    /// The vector table's offset from `base`.
    pub vector_table: u32,
}

/// A firmware ELF, ready to load: its flash image and its symbols.
pub struct Firmware {
    /// The ELF file as built (defmt's tables are read from it).
    pub elf: Vec<u8>,
    /// Flash contents from the layout's base to the end of the last loaded byte.
    pub flash: Vec<u8>,
    /// Where `flash` starts.
    pub base: u32,
    symbols: HashMap<String, u32>,
}

impl Firmware {
    /// Reads an ELF from disk (see [`Firmware::parse`]).
    pub fn load(
        path: &Path,
        layout: &Layout,
        patch: impl FnOnce(&ElfFile32<'_, Endianness>, &mut [u8]),
    ) -> Result<Self, Error> {
        let elf = std::fs::read(path)
            .map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(elf, layout, patch)
    }

    /// Builds the flash image from the ELF's `PT_LOAD` segments, each at its physical (load)
    /// address: `.data`'s initial values go to flash, where cortex-m-rt copies them from. The
    /// segments are taken from a copy of the file that `patch` may rewrite first (`elf` itself
    /// is kept as built).
    pub fn parse(
        elf: Vec<u8>,
        layout: &Layout,
        patch: impl FnOnce(&ElfFile32<'_, Endianness>, &mut [u8]),
    ) -> Result<Self, Error> {
        let file = ElfFile32::<Endianness>::parse(&*elf)
            .map_err(|e| Error(format!("not a 32-bit ELF file: {e}")))?;
        let endian = file.endian();
        let mut patched = elf.clone();
        patch(&file, &mut patched);

        let mut flash = Vec::new();
        for header in file
            .elf_header()
            .program_headers(endian, &*elf)
            .unwrap_or(&[])
        {
            if header.p_type(endian) != object::elf::PT_LOAD || header.p_filesz(endian) == 0 {
                continue;
            }
            let (offset, size) = header.file_range(endian);
            let data = patched
                .get(offset as usize..(offset + size) as usize)
                .ok_or_else(|| Error("a load segment lies outside the file".to_owned()))?;
            // The physical (load) address: for `.data` that is flash, not RAM.
            let paddr = header.p_paddr(endian);
            let Some(at) = paddr
                .checked_sub(layout.base)
                .map(|o| o as usize)
                .filter(|o| o + data.len() <= layout.size)
            else {
                return err(format!(
                    "a loadable segment at {paddr:#010x} ({} bytes) is not in flash \
                     ({:#010x}, {} MiB): is this an {} ELF?",
                    data.len(),
                    layout.base,
                    layout.size >> 20,
                    layout.chip
                ));
            };
            if flash.len() < at + data.len() {
                flash.resize(at + data.len(), 0xFF);
            }
            flash[at..at + data.len()].copy_from_slice(data);
        }
        if flash.len() < (layout.vector_table + 8) as usize {
            return err(format!(
                "the ELF has no vector table at {:#010x}: not an {} image",
                layout.base + layout.vector_table,
                layout.chip
            ));
        }
        let symbols = file
            .symbols()
            .filter_map(|s| Some((s.name().ok()?.to_owned(), s.address() as u32)))
            .filter(|(name, _)| !name.is_empty() && !name.starts_with('$'))
            .collect();
        Ok(Self {
            elf,
            flash,
            base: layout.base,
            symbols,
        })
    }

    /// A flash image at `base` with no ELF and no symbols (for tests).
    pub fn from_flash(base: u32, flash: Vec<u8>) -> Self {
        Self {
            elf: Vec::new(),
            flash,
            base,
            symbols: HashMap::new(),
        }
    }

    /// A tiny image for a runner's tests, at `base`: a vector table at offset `vector_table`
    /// (SP `0x2000_1000`, reset, NMI, HardFault), `code` (the reset handler) 0x100 bytes after
    /// it, and 0x200 bytes after it a HardFault handler that pushes a frame pointer first, as
    /// cortex-m-rt's does (`push {r7, lr}; add r7, sp, #0; b .`); `0xFF` elsewhere.
    pub fn test_image(base: u32, vector_table: usize, code: &[u16]) -> Self {
        let (reset, fault) = (vector_table + 0x100, vector_table + 0x200);
        let mut image = Self::from_flash(base, vec![0xFF; vector_table + 0x300]);
        let thumb = |offset: usize| base + offset as u32 + 1;
        for (i, word) in [0x2000_1000, thumb(reset), thumb(fault), thumb(fault)]
            .into_iter()
            .enumerate()
        {
            image.put(vector_table + 4 * i, &[word as u16, (word >> 16) as u16]);
        }
        image.put(reset, code);
        image.put(fault, &[0xB580, 0xAF00, 0xE7FE]);
        image
    }

    /// Writes `halfwords` into the flash image at offset `at` (for tests).
    pub fn put(&mut self, at: usize, halfwords: &[u16]) {
        for (i, h) in halfwords.iter().enumerate() {
            self.flash[at + 2 * i..at + 2 * i + 2].copy_from_slice(&h.to_le_bytes());
        }
    }

    /// The address of symbol `name` (a static, a function), if the ELF has it.
    pub fn symbol(&self, name: &str) -> Option<u32> {
        self.symbols.get(name).copied()
    }

    /// The little-endian word of the flash image at `addr`, if the image holds it.
    pub fn word(&self, addr: u32) -> Option<u32> {
        let at = addr.checked_sub(self.base)? as usize;
        let bytes = self.flash.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// Why a core stopped running the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// It executed `BKPT` at `pc`: the firmware's own "done, passed" exit.
    Breakpoint { core: usize, pc: u32 },
    /// It took a HardFault for any other reason (panic-probe's `udf`, a bad access, ...), with
    /// `pc` the faulting instruction as stacked, or locked up.
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

/// Where the firmware's RTT control block is, and whether the host has set it up yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rtt {
    block: Option<u32>,
    ready: bool,
}

impl Rtt {
    /// The reader for `firmware`'s `_SEGGER_RTT` (none if the ELF has no such symbol).
    pub fn new(firmware: &Firmware) -> Self {
        Self {
            block: firmware.symbol(RTT_SYMBOL),
            ready: false,
        }
    }
}

/// An emulated two-core chip running one firmware, as a runner sees it.
pub trait Chip {
    /// Emulates at least `cycles` cycles of the shared clock (a quantum more at most); returns
    /// the cycles run (0 if both cores sleep with nothing to wake them).
    fn run(&mut self, cycles: u64) -> Result<u64, Error>;
    /// Cycles of the shared clock since boot.
    fn cycles(&self) -> u64;
    /// Cycles core `core` (0 or 1) has spent since boot.
    fn core_cycles(&self, core: usize) -> u64;
    /// The program counter of core `core`.
    fn pc(&self, core: usize) -> u32;
    /// The 32-bit word at `addr` (aligned), read without bus timing.
    fn peek(&self, addr: u32) -> u32;
    /// Writes the word at `addr`, without bus timing.
    fn poke(&mut self, addr: u32, value: u32);
    /// The chip's RTT reader state.
    fn rtt(&mut self) -> &mut Rtt;
    /// Whether core `core` has stopped, and why; `None` while it runs.
    fn halt_of(&self, core: usize) -> Option<Halt>;

    /// Whether a core has stopped, and why; `None` while both run. A fault on either core
    /// wins over a breakpoint on the other: core 0 passing while core 1 crashed is a failure.
    fn halt(&self) -> Option<Halt> {
        let halts = [self.halt_of(0), self.halt_of(1)];
        let fault = halts.iter().flatten().find(|h| !h.passed());
        fault.or(halts.iter().flatten().next()).copied()
    }

    /// `len` bytes from `addr`, read word by word.
    fn read_bytes(&self, addr: u32, len: usize) -> Vec<u8> {
        let start = addr & !3;
        let mut out = Vec::with_capacity(len + 8);
        let mut word = start;
        while u64::from(word) < u64::from(addr) + len as u64 {
            out.extend_from_slice(&self.peek(word).to_le_bytes());
            word = word.wrapping_add(4);
        }
        let skip = (addr - start) as usize;
        out[skip..skip + len].to_vec()
    }

    /// The bytes the firmware wrote to RTT up-buffer 0 since the last call (none before it set
    /// the control block up, or if the ELF has no `_SEGGER_RTT`). Marks them read, so a
    /// firmware in blocking mode can go on writing.
    fn take_rtt(&mut self) -> Vec<u8> {
        let Some(block) = self.rtt().block else {
            return Vec::new();
        };
        if !self.rtt().ready {
            if self.read_bytes(block, RTT_ID.len()) != RTT_ID {
                return Vec::new();
            }
            // Block when full, as probe-rs does: a log line is never dropped between chunks.
            let flags = block + RTT_UP0 + 20;
            let mode = self.peek(flags);
            self.poke(flags, (mode & !RTT_MODE_MASK) | RTT_MODE_BLOCK_IF_FULL);
            self.rtt().ready = true;
        }
        let desc = block + RTT_UP0;
        let (buffer, size) = (self.peek(desc + 4), self.peek(desc + 8));
        let (write, read) = (self.peek(desc + 12), self.peek(desc + 16));
        if size == 0 || write >= size || read >= size || write == read {
            return Vec::new();
        }
        let bytes = if write > read {
            self.read_bytes(buffer + read, (write - read) as usize)
        } else {
            let mut wrapped = self.read_bytes(buffer + read, (size - read) as usize);
            wrapped.extend(self.read_bytes(buffer, write as usize));
            wrapped
        };
        self.poke(desc + 16, write);
        bytes
    }
}

/// Where a core's exception entry stacked its frame (r0-r3, r12, lr, pc, xpsr), given the
/// core's SP and PSP in its handler.
///
/// The handler may have pushed registers on top (cortex-m-rt's `HardFault_` keeps a frame
/// pointer: `push {r7, lr}`), so look for the `EXC_RETURN` value such a push stores right below
/// the frame, within a few words of SP (`is_exc_return` says which values are one; bit 2 set:
/// the frame went to the process stack); else the frame is at SP. A candidate counts only if
/// its stacked xPSR has the Thumb bit.
pub fn exception_frame(
    chip: &(impl Chip + ?Sized),
    sp: u32,
    psp: u32,
    is_exc_return: impl Fn(u32) -> bool,
) -> Option<u32> {
    const SEARCH_WORDS: u32 = 16;
    let valid = |frame: u32| chip.peek(frame.wrapping_add(28)) & (1 << 24) != 0;
    let pushed = (0..SEARCH_WORDS)
        .map(|i| sp.wrapping_add(4 * i))
        .filter_map(|at| {
            let value = chip.peek(at);
            is_exc_return(value).then(|| {
                if value & (1 << 2) != 0 {
                    psp
                } else {
                    at.wrapping_add(4)
                }
            })
        });
    pushed.chain([sp]).find(|&frame| valid(frame))
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

    /// Feeds `bytes` (from [`Chip::take_rtt`]) and returns the lines completed so far. A
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

/// Runs `chip` in chunks of `chunk` cycles until a core halts or `budget` cycles have run,
/// handing each decoded log line to `line` as it arrives.
pub fn run_to_end(
    chip: &mut impl Chip,
    mut log: Option<&mut Log>,
    budget: u64,
    chunk: u64,
    mut line: impl FnMut(&str),
) -> Result<Outcome, Error> {
    let mut halt = None;
    while chip.cycles() < budget {
        let ran = chip.run(chunk.min(budget - chip.cycles()))?;
        drain(chip, &mut log, &mut line);
        halt = chip.halt();
        if halt.is_some() {
            break;
        }
        if ran == 0 {
            return err(format!(
                "both cores are asleep with nothing to wake them (pc {:#010x}, {:#010x})",
                chip.pc(0),
                chip.pc(1)
            ));
        }
    }
    // A core in blocking RTT mode may have more to say once its buffer was emptied; a stopped
    // firmware has nothing more, but read once more for what the last chunk left.
    drain(chip, &mut log, &mut line);
    Ok(Outcome {
        halt,
        cycles: chip.cycles(),
        core_cycles: [chip.core_cycles(0), chip.core_cycles(1)],
    })
}

/// Reads what `chip` wrote to RTT and hands each completed log line to `line`.
fn drain(chip: &mut impl Chip, log: &mut Option<&mut Log>, line: &mut impl FnMut(&str)) {
    let bytes = chip.take_rtt();
    if let Some(log) = log.as_deref_mut() {
        for text in log.push(&bytes) {
            line(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory and nothing else: enough for the RTT reader and the halt rule.
    #[derive(Default)]
    struct Fake {
        words: HashMap<u32, u32>,
        rtt: Rtt,
        halts: [Option<Halt>; 2],
    }

    impl Chip for Fake {
        fn run(&mut self, _: u64) -> Result<u64, Error> {
            Ok(0)
        }
        fn cycles(&self) -> u64 {
            0
        }
        fn core_cycles(&self, _: usize) -> u64 {
            0
        }
        fn pc(&self, _: usize) -> u32 {
            0
        }
        fn peek(&self, addr: u32) -> u32 {
            self.words.get(&addr).copied().unwrap_or(0)
        }
        fn poke(&mut self, addr: u32, value: u32) {
            self.words.insert(addr, value);
        }
        fn rtt(&mut self) -> &mut Rtt {
            &mut self.rtt
        }
        fn halt_of(&self, core: usize) -> Option<Halt> {
            self.halts[core]
        }
    }

    const BLOCK: u32 = 0x2000_0000;
    const BUFFER: u32 = 0x2000_0100;

    /// A control block at `BLOCK` with an 8-byte up-buffer at `BUFFER` holding `bytes` (from
    /// offset 0), the write offset at `write` and the read offset at `read`.
    fn fake(bytes: &[u8], write: u32, read: u32) -> Fake {
        let mut chip = Fake {
            rtt: Rtt {
                block: Some(BLOCK),
                ready: false,
            },
            ..Fake::default()
        };
        for (i, word) in RTT_ID.chunks(4).enumerate() {
            chip.poke(
                BLOCK + 4 * i as u32,
                u32::from_le_bytes(word.try_into().unwrap()),
            );
        }
        let desc = BLOCK + RTT_UP0;
        for (at, value) in [(4, BUFFER), (8, 8), (12, write), (16, read), (20, 0)] {
            chip.poke(desc + at, value);
        }
        for (i, word) in bytes.chunks(4).enumerate() {
            let mut padded = [0; 4];
            padded[..word.len()].copy_from_slice(word);
            chip.poke(BUFFER + 4 * i as u32, u32::from_le_bytes(padded));
        }
        chip
    }

    #[test]
    fn rtt_bytes_are_read_once_across_the_wrap_and_blocking_mode_is_set() {
        let mut chip = fake(b"89abcd67", 2, 6);
        assert_eq!(chip.take_rtt(), b"6789");
        assert_eq!(chip.peek(BLOCK + RTT_UP0 + 16), 2, "marked read");
        assert_eq!(chip.peek(BLOCK + RTT_UP0 + 20), RTT_MODE_BLOCK_IF_FULL);
        assert_eq!(chip.take_rtt(), b"");
        let mut chip = fake(b"01234567", 5, 1);
        assert_eq!(chip.take_rtt(), b"1234");
    }

    #[test]
    fn rtt_is_not_read_before_the_firmware_set_it_up() {
        let mut chip = fake(b"01234567", 5, 1);
        chip.poke(BLOCK, 0);
        assert_eq!(chip.take_rtt(), b"");
        assert_eq!(chip.peek(BLOCK + RTT_UP0 + 20), 0);
        chip.rtt = Rtt::default();
        assert_eq!(chip.take_rtt(), b"");
    }

    #[test]
    fn a_fault_on_either_core_wins_over_a_breakpoint() {
        let pass = Halt::Breakpoint { core: 0, pc: 4 };
        let fault = Halt::Fault { core: 1, pc: 8 };
        let chip = |halts| Fake {
            halts,
            ..Fake::default()
        };
        assert_eq!(chip([Some(pass), Some(fault)]).halt(), Some(fault));
        assert_eq!(chip([Some(pass), None]).halt(), Some(pass));
        assert_eq!(chip([None, None]).halt(), None);
    }

    #[test]
    fn a_chip_with_nothing_to_do_is_an_error() {
        let mut chip = Fake::default();
        assert!(run_to_end(&mut chip, None, 1_000, 100, |_| {}).is_err());
    }

    #[test]
    fn what_is_not_an_elf_is_an_error_and_an_image_reads_words() {
        let layout = Layout {
            chip: "test",
            base: 0x1000_0000,
            size: 1 << 20,
            vector_table: 0,
        };
        assert!(Firmware::parse(b"not an ELF".to_vec(), &layout, |_, _| {}).is_err());
        let image = Firmware::from_flash(0x1000_0000, vec![1, 2, 3, 4, 5]);
        assert_eq!(image.word(0x1000_0000), Some(0x0403_0201));
        assert_eq!(image.word(0x1000_0002), None);
        assert_eq!(image.word(0x0FFF_FFFC), None);
        assert_eq!(image.symbol(RTT_SYMBOL), None);
        let image = Firmware::test_image(0x1000_0000, 0x100, &[0xBE00]);
        assert_eq!(image.word(0x1000_0104), Some(0x1000_0201), "reset vector");
        assert_eq!(
            image.word(0x1000_010C),
            Some(0x1000_0301),
            "HardFault vector"
        );
        assert_eq!(image.word(0x1000_0200), Some(0xFFFF_BE00), "code");
        assert_eq!(image.word(0x1000_0300), Some(0xAF00_B580), "handler");
    }
}
