//! Just enough of ELF32 (little-endian, as every Cortex-M image is) to report section sizes,
//! check where sections landed, and turn load segments into a UF2 image.

use std::fmt;

/// `sh_type` of a section that takes no space in the file (`.bss`).
const SHT_NOBITS: u32 = 8;
/// `sh_flags` bits.
const SHF_WRITE: u32 = 0x1;
const SHF_ALLOC: u32 = 0x2;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;

/// A section header, with its name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub kind: u32,
    pub flags: u32,
    pub addr: u32,
    pub size: u32,
}

/// A loadable segment's bytes and where they go in the target's memory (its physical, i.e. load,
/// address: for `.data` that is flash, not RAM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub load_addr: u32,
    pub bytes: &'a [u8],
}

/// A parsed image, borrowing the file's bytes.
pub struct Elf<'a> {
    data: &'a [u8],
    pub sections: Vec<Section>,
    pub segments: Vec<Segment<'a>>,
}

/// Why a file is not an image we can read.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfError(String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a usable ELF32 image: {}", self.0)
    }
}

impl std::error::Error for ElfError {}

fn bad(what: impl Into<String>) -> ElfError {
    ElfError(what.into())
}

/// Berkeley-style sizes, as `size` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Allocated, read-only: code, vectors, constants (flash).
    pub text: u32,
    /// Allocated, writable, with contents: initialized statics (flash and RAM).
    pub data: u32,
    /// Allocated, writable, zero-filled (RAM only).
    pub bss: u32,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(bad("no ELF magic"));
        }
        if data.get(4) != Some(&1) || data.get(5) != Some(&1) {
            return Err(bad("not 32-bit little-endian"));
        }
        let elf = Elf {
            data,
            sections: Vec::new(),
            segments: Vec::new(),
        };
        let (phoff, shoff) = (elf.u32(0x1C)?, elf.u32(0x20)?);
        let (phentsize, phnum) = (elf.u16(0x2A)?, elf.u16(0x2C)?);
        let (shentsize, shnum, shstrndx) = (elf.u16(0x2E)?, elf.u16(0x30)?, elf.u16(0x32)?);

        let mut segments = Vec::new();
        for i in 0..phnum {
            let at = offset(phoff, i, phentsize)?;
            if elf.u32(at)? != PT_LOAD {
                continue;
            }
            let (file_offset, paddr, filesz) =
                (elf.u32(at + 4)?, elf.u32(at + 12)?, elf.u32(at + 16)?);
            if filesz == 0 {
                continue;
            }
            let bytes = elf.bytes(file_offset, filesz)?;
            segments.push(Segment {
                load_addr: paddr,
                bytes,
            });
        }

        let mut raw = Vec::new();
        for i in 0..shnum {
            let at = offset(shoff, i, shentsize)?;
            raw.push((
                elf.u32(at)?,
                Section {
                    name: String::new(),
                    kind: elf.u32(at + 4)?,
                    flags: elf.u32(at + 8)?,
                    addr: elf.u32(at + 12)?,
                    size: elf.u32(at + 20)?,
                },
                elf.u32(at + 16)?,
            ));
        }
        let names_at = raw
            .get(usize::from(shstrndx))
            .map(|(_, _, file_offset)| *file_offset)
            .ok_or_else(|| bad("no section name table"))?;
        let mut sections = Vec::new();
        for (name_offset, mut section, _) in raw {
            section.name = elf.c_str(names_at.saturating_add(name_offset))?;
            sections.push(section);
        }
        Ok(Elf {
            data,
            sections,
            segments,
        })
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// `len` bytes of the image at load address `addr`, if one segment holds them all.
    pub fn read(&self, addr: u32, len: usize) -> Option<&'a [u8]> {
        self.segments.iter().find_map(|segment| {
            let start = usize::try_from(addr.checked_sub(segment.load_addr)?).ok()?;
            segment.bytes.get(start..start.checked_add(len)?)
        })
    }

    pub fn sizes(&self) -> Sizes {
        let mut sizes = Sizes::default();
        for s in self.sections.iter().filter(|s| s.flags & SHF_ALLOC != 0) {
            if s.kind == SHT_NOBITS {
                sizes.bss += s.size;
            } else if s.flags & SHF_WRITE != 0 {
                sizes.data += s.size;
            } else {
                sizes.text += s.size;
            }
        }
        sizes
    }

    fn bytes(&self, at: u32, len: u32) -> Result<&'a [u8], ElfError> {
        let start = at as usize;
        let end = start
            .checked_add(len as usize)
            .ok_or_else(|| bad("offset overflow"))?;
        self.data
            .get(start..end)
            .ok_or_else(|| bad(format!("truncated at {start:#x}..{end:#x}")))
    }

    fn u16(&self, at: u32) -> Result<u16, ElfError> {
        let b = self.bytes(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, at: u32) -> Result<u32, ElfError> {
        let b = self.bytes(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn c_str(&self, at: u32) -> Result<String, ElfError> {
        let rest = self
            .data
            .get(at as usize..)
            .ok_or_else(|| bad("section name out of bounds"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("unterminated section name"))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

/// File offset of table entry `index`.
fn offset(table: u32, index: u16, entry_size: u16) -> Result<u32, ElfError> {
    u32::from(index)
        .checked_mul(u32::from(entry_size))
        .and_then(|o| o.checked_add(table))
        .ok_or_else(|| bad("table offset overflow"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF32 image: one PT_LOAD segment with `payload` at `load_addr`, and sections
    /// `.text` (alloc, at `load_addr`), `.data` (alloc+write, 8 bytes), `.bss` (nobits, 16 bytes)
    /// and the name table.
    pub(crate) fn image(load_addr: u32, payload: &[u8]) -> Vec<u8> {
        let names = b"\0.text\0.data\0.bss\0.shstrtab\0";
        let payload_at = 0x34 + 0x20;
        let names_at = payload_at + payload.len();
        let shoff = (names_at + names.len()).next_multiple_of(4);
        let mut f = vec![0u8; shoff + 5 * 40];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        let put =
            |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put16 =
            |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
        put(&mut f, 0x1C, 0x34);
        put(&mut f, 0x20, shoff as u32);
        put16(&mut f, 0x2A, 0x20);
        put16(&mut f, 0x2C, 1);
        put16(&mut f, 0x2E, 40);
        put16(&mut f, 0x30, 5);
        put16(&mut f, 0x32, 4);
        // Program header.
        put(&mut f, 0x34, PT_LOAD);
        put(&mut f, 0x38, payload_at as u32);
        put(&mut f, 0x3C, load_addr);
        put(&mut f, 0x40, load_addr);
        put(&mut f, 0x44, payload.len() as u32);
        put(&mut f, 0x48, payload.len() as u32);
        f[payload_at..payload_at + payload.len()].copy_from_slice(payload);
        f[names_at..names_at + names.len()].copy_from_slice(names);
        // Sections: null, .text, .data, .bss, .shstrtab.
        let sections: [(u32, u32, u32, u32, u32, u32); 5] = [
            (0, 0, 0, 0, 0, 0),
            (
                1,
                1,
                SHF_ALLOC,
                load_addr,
                payload_at as u32,
                payload.len() as u32,
            ),
            (7, 1, SHF_ALLOC | SHF_WRITE, 0x2000_0000, 0, 8),
            (13, SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 0x2000_0008, 0, 16),
            (18, 3, 0, 0, names_at as u32, names.len() as u32),
        ];
        for (i, (name, kind, flags, addr, off, size)) in sections.into_iter().enumerate() {
            let at = shoff + i * 40;
            put(&mut f, at, name);
            put(&mut f, at + 4, kind);
            put(&mut f, at + 8, flags);
            put(&mut f, at + 12, addr);
            put(&mut f, at + 16, off);
            put(&mut f, at + 20, size);
        }
        f
    }

    #[test]
    fn reads_sections_sizes_and_segments() {
        let file = image(0x1000_0000, &[1, 2, 3, 4, 5]);
        let elf = Elf::parse(&file).unwrap();
        assert_eq!(
            elf.section(".text").map(|s| (s.addr, s.size)),
            Some((0x1000_0000, 5))
        );
        assert_eq!(
            elf.sizes(),
            Sizes {
                text: 5,
                data: 8,
                bss: 16
            }
        );
        assert_eq!(elf.read(0x1000_0001, 3), Some([2, 3, 4].as_slice()));
        assert_eq!(elf.read(0x1000_0003, 3), None);
        assert_eq!(elf.read(0x0FFF_FFFF, 1), None);
        assert_eq!(
            elf.segments,
            [Segment {
                load_addr: 0x1000_0000,
                bytes: &[1, 2, 3, 4, 5]
            }]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Elf::parse(b"").is_err());
        assert!(Elf::parse(b"\x7fELF\x02\x01").is_err());
        let mut file = image(0, &[0; 4]);
        file.truncate(0x40);
        assert!(Elf::parse(&file).is_err());
        let mut file = image(0, &[0; 4]);
        file[0x20] = 0xFF; // section table offset out of the file
        assert!(Elf::parse(&file).is_err());
    }
}
