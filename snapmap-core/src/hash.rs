//! The tables' hash function: Fx (the multiply-rotate hash of rustc and Firefox), one word at a
//! time in the target's native width, so a 32-bit core does 32-bit multiplies.
//!
//! It is fast and deterministic, not keyed: keys chosen by an adversary can make them collide.
//! In a fixed-capacity table that costs at worst a probe over all `N` slots, never memory.

use core::hash::{Hash, Hasher};

#[cfg(target_pointer_width = "64")]
const SEED: usize = 0x51_7c_c1_b7_27_22_0a_95;
#[cfg(not(target_pointer_width = "64"))]
const SEED: usize = 0x9e_37_79_b9;

#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: usize,
}

impl FxHasher {
    #[inline(always)]
    fn add(&mut self, word: usize) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        const WORD: usize = core::mem::size_of::<usize>();
        while let Some((chunk, rest)) = bytes.split_first_chunk::<WORD>() {
            self.add(usize::from_le_bytes(*chunk));
            bytes = rest;
        }
        for &byte in bytes {
            self.add(byte as usize);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as usize);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as usize);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as usize);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        #[cfg(target_pointer_width = "64")]
        self.add(i as usize);
        #[cfg(not(target_pointer_width = "64"))]
        {
            self.add(i as usize);
            self.add((i >> 32) as usize);
        }
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash as u64
    }
}

/// A key's hash, reduced to the 32 bits a table keeps: the *top* bits of the final multiply,
/// where every input bit has had its say, with bit 0 forced to 1 so that 0 can mean "empty".
#[inline]
pub(crate) fn meta_of<Q: Hash + ?Sized>(key: &Q) -> u32 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    ((hasher.hash >> (usize::BITS - 32)) as u32) | 1
}
