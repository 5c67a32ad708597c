//! The tables' hash functions, chosen by the map's last type parameter `S` (any
//! [`BuildHasher`]): [`FxBuildHasher`], the default, fast and unkeyed, and [`SipBuildHasher`],
//! keyed, for keys an adversary may choose.
//!
//! A table keeps 32 bits of each key's hash, the top half of [`Hasher::finish`]'s 64 bits, and
//! finds a key's home slot in their top bits. A hasher that is good in its top 32 bits is all a
//! map needs.

use core::hash::{BuildHasher, Hash, Hasher};

#[cfg(target_pointer_width = "64")]
const SEED: usize = 0x51_7c_c1_b7_27_22_0a_95;
#[cfg(not(target_pointer_width = "64"))]
const SEED: usize = 0x9e_37_79_b9;

/// Fx (the multiply-rotate hash of rustc and Firefox), one word at a time in the target's native
/// width, so a 32-bit core does 32-bit multiplies.
///
/// It is fast and deterministic, not keyed: keys chosen by an adversary can be made to share a
/// home slot (brute force finds them quickly), and then every lookup probes past all of them. In
/// a fixed-capacity table that costs at worst a probe over all `N` slots, never memory; where
/// keys come from outside (addresses heard on a network, say), use [`SipBuildHasher`].
#[derive(Default, Clone, Copy, Debug)]
pub struct FxHasher {
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

    /// The hash, with its best bits (the top of the last multiply) on top: a 32-bit hash is
    /// repeated in both halves, so the top 32 bits a table keeps are the whole of it.
    #[inline]
    fn finish(&self) -> u64 {
        #[cfg(target_pointer_width = "64")]
        return self.hash as u64;
        #[cfg(not(target_pointer_width = "64"))]
        return (self.hash as u64) << 32 | self.hash as u64;
    }
}

/// Builds [`FxHasher`]s: the default hasher of a [`SnapMap`](crate::SnapMap), a zero-sized type.
#[derive(Default, Clone, Copy, Debug)]
pub struct FxBuildHasher;

impl FxBuildHasher {
    /// The builder (for [`SnapMap::with_hasher`](crate::SnapMap::with_hasher)).
    pub const fn new() -> Self {
        Self
    }
}

impl BuildHasher for FxBuildHasher {
    type Hasher = FxHasher;
    #[inline(always)]
    fn build_hasher(&self) -> FxHasher {
        FxHasher::default()
    }
}

/// Builds keyed SipHash-1-3 hashers (from the [`siphasher`](https://docs.rs/siphasher) crate):
/// for maps whose keys an adversary may choose. Without the 128-bit key, which keys share a
/// home slot cannot be computed in advance, so a flood of chosen keys spreads like random ones.
///
/// The key must be secret and unpredictable: draw it at start-up from a hardware random number
/// generator where the chip has one (RP2350, nRF, STM32 with an RNG peripheral), from the
/// RP2040's ring oscillator (`ROSC` `RANDOMBIT`, sampled 128 times), or from a seed the device
/// keeps in flash and changes every boot; on a host, from the operating system
/// (`std::hash::RandomState` is a keyed [`BuildHasher`] too, usable as `S` directly). A key
/// compiled into the firmware image is no secret from whoever has the image.
///
/// [`new`](Self::new) is a `const fn`, so a map with a key known at compile time can still be a
/// `static`; with a key drawn at run time, build the map then (for example into a
/// `static_cell::StaticCell`) with [`SnapMap::with_hasher`](crate::SnapMap::with_hasher).
///
/// ```
/// use snapmap_core::{SipBuildHasher, SnapMap};
///
/// # fn hardware_random_u64() -> u64 { 0x0123_4567_89ab_cdef }
/// let hasher = SipBuildHasher::new(hardware_random_u64(), hardware_random_u64());
/// let peers: SnapMap<u32, u8, 64, 4, 2, 32, SipBuildHasher> = SnapMap::with_hasher(hasher);
/// peers.insert(0xdead_beef, 1).unwrap();
/// assert_eq!(peers.get(&0xdead_beef), Some(1));
/// ```
#[derive(Clone, Copy)]
pub struct SipBuildHasher {
    keys: (u64, u64),
}

impl SipBuildHasher {
    /// The builder for the 128-bit key `(k0, k1)`.
    pub const fn new(k0: u64, k1: u64) -> Self {
        Self { keys: (k0, k1) }
    }
}

impl core::fmt::Debug for SipBuildHasher {
    /// Keeps the key out of logs.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SipBuildHasher { .. }")
    }
}

impl BuildHasher for SipBuildHasher {
    type Hasher = siphasher::sip::SipHasher13;
    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        siphasher::sip::SipHasher13::new_with_keys(self.keys.0, self.keys.1)
    }
}

/// A key's hash, reduced to the 32 bits a table keeps: the top half of the 64-bit hash, where a
/// multiplicative hash's best bits are, with bit 0 forced to 1 so that 0 can mean "empty".
#[inline]
pub(crate) fn meta_of<Q: Hash + ?Sized, S: BuildHasher>(hasher: &S, key: &Q) -> u32 {
    ((hasher.hash_one(key) >> 32) as u32) | 1
}
