//! The acquire/release instructions `rp2350-emu` does not decode, rewritten to plain forms.
//!
//! rustc emits `lda`, `stl`, `ldaex`, `stlex` (and their byte and halfword forms) for every
//! Acquire, Release and SeqCst atomic on `thumbv8m.main`. The emulator (0.2.x) does not decode
//! them: they fall through to its LDRD/STRD decoder and fault. Each is rewritten here, in the
//! image the emulator loads (never in the ELF file on disk), to the same-size plain form:
//! `lda` to `ldr.w`, `stl` to `str.w`, `ldaex` to `ldrex`, `stlex` to `strex`, each with the same
//! registers and a zero offset.
//!
//! Why that is sound *in this emulator*: it runs each core in order, one instruction at a time,
//! on one shared memory with no store buffer or cache, so every access is already seen by the
//! other core in program order; the ordering the acquire/release forms add on silicon is there
//! anyway. The compiler's ordering (what it may move across an atomic) was fixed when the code
//! was generated and is unchanged. On a board the ELF runs as built, instructions included.
//!
//! Only code is rewritten: the ELF's ARM mapping symbols (`$t` code, `$d` data) say which bytes
//! of an executable section are instructions, so a literal pool that happens to look like one
//! is left alone.

/// How many instructions of each kind were rewritten.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewrites {
    /// `lda`, `ldab`, `ldah`.
    pub loads: usize,
    /// `stl`, `stlb`, `stlh`.
    pub stores: usize,
    /// `ldaex`, `ldaexb`, `ldaexh`.
    pub load_exclusives: usize,
    /// `stlex`, `stlexb`, `stlexh`.
    pub store_exclusives: usize,
}

/// Which kind of instruction a rewrite replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Load,
    Store,
    LoadExclusive,
    StoreExclusive,
}

impl Rewrites {
    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Load => self.loads += 1,
            Kind::Store => self.stores += 1,
            Kind::LoadExclusive => self.load_exclusives += 1,
            Kind::StoreExclusive => self.store_exclusives += 1,
        }
    }

    /// All of them.
    pub fn total(&self) -> usize {
        self.loads + self.stores + self.load_exclusives + self.store_exclusives
    }
}

/// Whether the halfword starts a 32-bit Thumb instruction (top five bits 0b11101, 0b11110 or
/// 0b11111).
fn is_wide(hw0: u16) -> bool {
    hw0 >> 11 >= 0b11101
}

/// The plain form of one acquire/release instruction `hw0 hw1`, or `None` for any other.
///
/// Encodings (Armv8-M ARM, T32 "load/store exclusive, load-acquire/store-release"):
/// `1110 1000 110L Rn | Rt 1111 1 op2 Rd`, with `op2` 000 (B), 001 (H), 010 (word) for the
/// non-exclusive forms (Rd = 1111) and 100, 101, 110 for the exclusive ones.
pub fn rewrite(hw0: u16, hw1: u16) -> Option<(u16, u16, Kind)> {
    let load = match hw0 & 0xFFF0 {
        0xE8D0 => true,
        0xE8C0 => false,
        _ => return None,
    };
    let rn = hw0 & 0xF;
    let rt = hw1 >> 12;
    let rd = hw1 & 0xF;
    if (hw1 >> 8) & 0xF != 0xF || (hw1 >> 7) & 1 != 1 {
        return None;
    }
    let op2 = (hw1 >> 4) & 0x7;
    if load && rd != 0xF {
        return None;
    }
    Some(match (load, op2) {
        // lda{b,h} Rt, [Rn] -> ldr{b,h}.w Rt, [Rn, #0]
        (true, 0b000) => (0xF890 | rn, rt << 12, Kind::Load),
        (true, 0b001) => (0xF8B0 | rn, rt << 12, Kind::Load),
        (true, 0b010) => (0xF8D0 | rn, rt << 12, Kind::Load),
        // stl{b,h} Rt, [Rn] -> str{b,h}.w Rt, [Rn, #0]
        (false, 0b000) if rd == 0xF => (0xF880 | rn, rt << 12, Kind::Store),
        (false, 0b001) if rd == 0xF => (0xF8A0 | rn, rt << 12, Kind::Store),
        (false, 0b010) if rd == 0xF => (0xF8C0 | rn, rt << 12, Kind::Store),
        // ldaexb / ldaexh Rt, [Rn] -> ldrexb / ldrexh (same group, op2 0100 / 0101)
        (true, 0b100) => (hw0, (rt << 12) | 0x0F4F, Kind::LoadExclusive),
        (true, 0b101) => (hw0, (rt << 12) | 0x0F5F, Kind::LoadExclusive),
        // ldaex Rt, [Rn] -> ldrex Rt, [Rn, #0]
        (true, 0b110) => (0xE850 | rn, (rt << 12) | 0x0F00, Kind::LoadExclusive),
        // stlexb / stlexh Rd, Rt, [Rn] -> strexb / strexh
        (false, 0b100) => (hw0, (rt << 12) | 0x0F40 | rd, Kind::StoreExclusive),
        (false, 0b101) => (hw0, (rt << 12) | 0x0F50 | rd, Kind::StoreExclusive),
        // stlex Rd, Rt, [Rn] -> strex Rd, Rt, [Rn, #0]
        (false, 0b110) => (0xE840 | rn, (rt << 12) | (rd << 8), Kind::StoreExclusive),
        _ => return None,
    })
}

/// Rewrites every acquire/release instruction in `code` (Thumb instructions from its first
/// byte to its last, halfword aligned), counting them in `counts`.
pub fn rewrite_code(code: &mut [u8], counts: &mut Rewrites) {
    let halfword = |code: &[u8], at: usize| u16::from_le_bytes([code[at], code[at + 1]]);
    let mut at = 0;
    while at + 2 <= code.len() {
        let hw0 = halfword(code, at);
        if !is_wide(hw0) {
            at += 2;
            continue;
        }
        if at + 4 > code.len() {
            break;
        }
        let hw1 = halfword(code, at + 2);
        if let Some((new0, new1, kind)) = rewrite(hw0, hw1) {
            code[at..at + 2].copy_from_slice(&new0.to_le_bytes());
            code[at + 2..at + 4].copy_from_slice(&new1.to_le_bytes());
            counts.count(kind);
        }
        at += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(hw0: u16, hw1: u16) -> Option<(u16, u16)> {
        rewrite(hw0, hw1).map(|(a, b, _)| (a, b))
    }

    // Encodings from the Armv8-M ARM's T32 tables: `ldab r1, [r0]` = e8d0 1f8f, `lda r2, [r3]` = e8d3 2faf,
    // `stl r1, [r0]` = e8c0 1faf, `stlb r4, [r5]` = e8c5 4f8f, `ldaex r1, [r0]` = e8d0 1fef,
    // `stlex r2, r1, [r0]` = e8c0 1fe2, `ldaexb r3, [r2]` = e8d2 3fcf, `stlexh r0, r1, [r2]` =
    // e8c2 1fd0.
    #[test]
    fn acquire_release_forms_become_plain_ones() {
        assert_eq!(one(0xE8D0, 0x1F8F), Some((0xF890, 0x1000))); // ldrb.w r1, [r0]
        assert_eq!(one(0xE8D3, 0x2FAF), Some((0xF8D3, 0x2000))); // ldr.w r2, [r3]
        assert_eq!(one(0xE8C0, 0x1FAF), Some((0xF8C0, 0x1000))); // str.w r1, [r0]
        assert_eq!(one(0xE8C5, 0x4F8F), Some((0xF885, 0x4000))); // strb.w r4, [r5]
        assert_eq!(one(0xE8D0, 0x1FEF), Some((0xE850, 0x1F00))); // ldrex r1, [r0]
        assert_eq!(one(0xE8C0, 0x1FE2), Some((0xE840, 0x1200))); // strex r2, r1, [r0]
        assert_eq!(one(0xE8D2, 0x3FCF), Some((0xE8D2, 0x3F4F))); // ldrexb r3, [r2]
        assert_eq!(one(0xE8C2, 0x1FD0), Some((0xE8C2, 0x1F50))); // strexh r0, r1, [r2]
    }

    #[test]
    fn other_instructions_are_left_alone() {
        assert_eq!(one(0xE8D0, 0xF001), None); // tbb [r0, r1]
        assert_eq!(one(0xE8D0, 0x1F4F), None); // ldrexb r1, [r0] (already plain)
        assert_eq!(one(0xE8C0, 0x1F42), None); // strexb r2, r1, [r0]
        assert_eq!(one(0xE850, 0x1F00), None); // ldrex r1, [r0]
        assert_eq!(one(0xF8D0, 0x1000), None); // ldr.w r1, [r0]
        assert_eq!(one(0xE9D0, 0x2300), None); // ldrd r2, r3, [r0]
    }

    #[test]
    fn code_is_walked_by_instruction() {
        // movs r0, #1 (16-bit); ldab r1, [r0]; the halfwords e8d0 1f8f again, but as the second
        // half of a `bl` (f000 e8d0) and the next instruction's start: only the first is one.
        let halfwords: [u16; 7] = [0x2001, 0xE8D0, 0x1F8F, 0xF000, 0xE8D0, 0x1F8F, 0xBF00];
        let mut code: Vec<u8> = halfwords.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut counts = Rewrites::default();
        rewrite_code(&mut code, &mut counts);
        let after: Vec<u16> = code
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(
            after,
            [0x2001, 0xF890, 0x1000, 0xF000, 0xE8D0, 0x1F8F, 0xBF00]
        );
        assert_eq!(counts.loads, 1);
        assert_eq!(counts.total(), 1);
    }
}
