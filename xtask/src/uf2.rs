//! UF2, the format the RP2040's boot ROM accepts over USB mass storage (hold BOOTSEL, plug in,
//! copy the file to the `RPI-RP2` drive): 512-byte blocks, each carrying 256 bytes for one
//! flash address. Spec: <https://github.com/microsoft/uf2>.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::elf::Segment;

const MAGIC_START0: u32 = 0x0A32_4655;
const MAGIC_START1: u32 = 0x9E5D_5157;
const MAGIC_END: u32 = 0x0AB1_6F30;
/// `flags`: the `file size` field holds a family ID.
const FLAG_FAMILY_ID_PRESENT: u32 = 0x0000_2000;
/// The RP2040's family ID.
pub const RP2040_FAMILY_ID: u32 = 0xE48B_FF56;
/// The RP2040's flash, as the boot ROM maps it (execute-in-place window, up to 16 MiB).
pub const RP2040_FLASH: Range<u32> = 0x1000_0000..0x1100_0000;
/// Bytes of payload per block (the boot ROM wants exactly 256, 256-aligned).
const PAGE: u32 = 256;
const BLOCK: usize = 512;

/// The UF2 image of `segments` (by load address), which must all lie in `flash`: pages of 256
/// bytes, zero-filled where no segment covers them, in address order.
pub fn from_segments(
    segments: &[Segment<'_>],
    flash: Range<u32>,
    family_id: u32,
) -> Result<Vec<u8>, String> {
    let mut pages: BTreeMap<u32, [u8; PAGE as usize]> = BTreeMap::new();
    for segment in segments {
        let start = segment.load_addr;
        let end = u32::try_from(segment.bytes.len())
            .ok()
            .and_then(|len| start.checked_add(len))
            .ok_or_else(|| format!("segment at {start:#010x} overflows the address space"))?;
        if start < flash.start || end > flash.end {
            return Err(format!(
                "segment {start:#010x}..{end:#010x} is outside flash {:#010x}..{:#010x}: \
                 it cannot be written by the boot ROM",
                flash.start, flash.end
            ));
        }
        for (addr, &byte) in (start..end).zip(segment.bytes) {
            let page = pages
                .entry(addr & !(PAGE - 1))
                .or_insert([0; PAGE as usize]);
            page[(addr % PAGE) as usize] = byte;
        }
    }
    let count = u32::try_from(pages.len()).map_err(|_| "image too large".to_owned())?;
    let mut out = Vec::with_capacity(pages.len() * BLOCK);
    for (index, (addr, payload)) in (0u32..).zip(&pages) {
        let header = [
            MAGIC_START0,
            MAGIC_START1,
            FLAG_FAMILY_ID_PRESENT,
            *addr,
            PAGE,
            index,
            count,
            family_id,
        ];
        let start = out.len();
        for word in header {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out.resize(start + BLOCK - 4, 0);
        out.extend_from_slice(&MAGIC_END.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(block: &[u8], index: usize) -> u32 {
        u32::from_le_bytes(block[index * 4..index * 4 + 4].try_into().unwrap())
    }

    #[test]
    fn pages_blocks_and_headers() {
        let boot2 = [0xAA; 256];
        let code = [0xBB; 300];
        let segments = [
            Segment {
                load_addr: 0x1000_0100,
                bytes: &code,
            },
            Segment {
                load_addr: 0x1000_0000,
                bytes: &boot2,
            },
        ];
        let uf2 = from_segments(&segments, RP2040_FLASH, RP2040_FAMILY_ID).unwrap();
        // 256 + 300 bytes from 0x1000_0000: three pages.
        assert_eq!(uf2.len(), 3 * BLOCK);
        let blocks: Vec<&[u8]> = uf2.chunks(BLOCK).collect();
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(word(block, 0), MAGIC_START0);
            assert_eq!(word(block, 1), MAGIC_START1);
            assert_eq!(word(block, 2), FLAG_FAMILY_ID_PRESENT);
            assert_eq!(word(block, 3), 0x1000_0000 + 256 * i as u32);
            assert_eq!(word(block, 4), 256);
            assert_eq!((word(block, 5), word(block, 6)), (i as u32, 3));
            assert_eq!(word(block, 7), RP2040_FAMILY_ID);
            assert_eq!(word(block, 127), MAGIC_END);
        }
        assert_eq!(blocks[0][32], 0xAA, "boot2 first, at 0x1000_0000");
        assert_eq!(blocks[1][32], 0xBB);
        assert_eq!(blocks[2][32 + 43], 0xBB);
        assert_eq!(blocks[2][32 + 44], 0, "the last page is zero-filled");
    }

    #[test]
    fn outside_flash_is_an_error() {
        let data = [0u8; 4];
        let ram = [Segment {
            load_addr: 0x2000_0000,
            bytes: &data,
        }];
        assert!(from_segments(&ram, RP2040_FLASH, RP2040_FAMILY_ID).is_err());
    }
}
