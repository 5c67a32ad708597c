//! What xtask needs from a firmware ELF, read with the `object` crate: section sizes (as `size`
//! prints them), where a section landed, and the load segments a UF2 image is made of.

use object::read::elf::{ElfFile32, ProgramHeader};
use object::{Endianness, Object, ObjectSection, SectionFlags, SectionKind};

/// A loadable segment's bytes and where they go in the target's memory (its physical, i.e. load,
/// address: for `.data` that is flash, not RAM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub load_addr: u32,
    pub bytes: &'a [u8],
}

/// A section's address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub addr: u32,
    pub size: u32,
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

/// Why a file is not an image we can read.
#[derive(Debug)]
pub struct ElfError(String);

impl std::fmt::Display for ElfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a usable ELF32 image: {}", self.0)
    }
}

impl std::error::Error for ElfError {}

/// A parsed 32-bit ELF image (every Cortex-M image is one), borrowing the file's bytes.
pub struct Elf<'a> {
    file: ElfFile32<'a, Endianness>,
    pub segments: Vec<Segment<'a>>,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        let file = ElfFile32::<Endianness>::parse(data).map_err(|e| ElfError(e.to_string()))?;
        let endian = file.endian();
        let mut segments = Vec::new();
        for header in file.elf_program_headers() {
            if header.p_type(endian) != object::elf::PT_LOAD || header.p_filesz(endian) == 0 {
                continue;
            }
            let bytes = header
                .data(endian, data)
                .map_err(|()| ElfError("a load segment lies outside the file".to_owned()))?;
            segments.push(Segment {
                load_addr: header.p_paddr(endian),
                bytes,
            });
        }
        Ok(Self { file, segments })
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<Section> {
        let section = self.file.section_by_name(name)?;
        Some(Section {
            addr: section.address() as u32,
            size: section.size() as u32,
        })
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
        for section in self.file.sections() {
            let SectionFlags::Elf { sh_flags } = section.flags() else {
                continue;
            };
            if sh_flags & u64::from(object::elf::SHF_ALLOC) == 0 {
                continue;
            }
            let size = section.size() as u32;
            if section.kind() == SectionKind::UninitializedData {
                sizes.bss += size;
            } else if sh_flags & u64::from(object::elf::SHF_WRITE) != 0 {
                sizes.data += size;
            } else {
                sizes.text += size;
            }
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::FIRMWARE_TARGET_DIR;
    use crate::util::workspace_root;

    const SHT_NOBITS: u32 = 8;
    const SHF_WRITE: u32 = 0x1;
    const SHF_ALLOC: u32 = 0x2;
    const PT_LOAD: u32 = 1;

    fn image(load_addr: u32, payload: &[u8]) -> Vec<u8> {
        let names = b"\0.text\0.data\0.bss\0.shstrtab\0";
        let payload_at = 0x34 + 0x20;
        let names_at = payload_at + payload.len();
        let shoff = (names_at + names.len()).next_multiple_of(4);
        let mut f = vec![0u8; shoff + 5 * 40];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1; // ELFCLASS32
        f[5] = 1; // little-endian
        f[6] = 1; // EV_CURRENT
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
            elf.section(".text"),
            Some(Section {
                addr: 0x1000_0000,
                size: 5
            })
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
        assert!(Elf::parse(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0]).is_err());
    }

    /// On a real image, when one has been built (`cargo xtask demo --board rp2040 --build-only`).
    #[test]
    fn reads_the_rp2040_demo_when_built() {
        let path = workspace_root()
            .join(FIRMWARE_TARGET_DIR)
            .join("thumbv6m-none-eabi/release/demo");
        let Ok(bytes) = std::fs::read(&path) else {
            println!("skipped: {} not built", path.display());
            return;
        };
        let elf = Elf::parse(&bytes).unwrap();
        let boot2 = elf.section(".boot2").unwrap();
        assert_eq!((boot2.addr, boot2.size), (0x1000_0000, 256));
        assert_eq!(elf.read(0x1000_0000, 256).map(<[u8]>::len), Some(256));
        assert!(elf.read(0x0FFF_FFFF, 1).is_none());
        let sizes = elf.sizes();
        assert!(sizes.text > 1024 && sizes.bss > 0, "{sizes:?}");
        assert!(elf.segments.iter().all(|s| s.load_addr >= 0x1000_0000));
    }
}
