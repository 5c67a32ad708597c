//! The maps under test, all `u32 -> u32` holding the same 64 keys, and the writes both the
//! single-core loops and the concurrent writer make.
//!
//! - [`SNAP`]: snapmap with `N = 128` (64 entries: 50% load), `G = 4`, `R = 2` (a reader on
//!   core 1 and one spare; `G >= R + 2`, and with one reader `G >= 1 + W + 1`).
//! - [`PEER`]: `critical_section::Mutex<RefCell<FnvIndexMap>>`, the same table behind the
//!   board's critical section (interrupts masked and a spinlock word shared by the cores).
//! - [`Floor`]: the same table, unsynchronized (one core only).
//! - [`SNAP_FULL`] / [`FloorFull`]: `N = 64` holding 64 entries, the demo's 100% load.

use core::cell::RefCell;
use critical_section::Mutex;
use heapless::index_map::FnvIndexMap;
use snapmap_core::{Error, SnapMap, WriterOf};

/// Entries in every map.
pub const ENTRIES: usize = 64;
/// Capacity at 50% load.
pub const N: usize = 2 * ENTRIES;
/// Inserts per batch.
pub const BATCH: usize = 8;

/// The keys: 64 distinct, well-spread 32-bit values (MurmurHash3's finalizer, a bijection, of
/// 1..=64), as the host benchmarks use SplitMix64 keys. Small consecutive integers would be
/// kinder to both hash functions (FNV puts 0..64 in 64 distinct slots of a 64-slot table).
pub const KEYS: [u32; ENTRIES] = {
    let mut keys = [0; ENTRIES];
    let mut i = 0;
    while i < ENTRIES {
        let mut h = i as u32 + 1;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^= h >> 16;
        keys[i] = h;
        i += 1;
    }
    keys
};

pub type Snap = SnapMap<u32, u32, N, 4, 2>;
pub type SnapFull = SnapMap<u32, u32, ENTRIES, 4, 2>;
pub type Table = FnvIndexMap<u32, u32, N>;
pub type Floor = Table;
pub type FloorFull = FnvIndexMap<u32, u32, ENTRIES>;
pub type Peer = Mutex<RefCell<Table>>;

pub static SNAP: Snap = SnapMap::new();
pub static SNAP_FULL: SnapFull = SnapMap::new();
pub static PEER: Peer = Mutex::new(RefCell::new(FnvIndexMap::new()));

/// The key of the `j`-th write of round `i`: successive rounds walk all 64 keys.
#[inline(always)]
pub fn write_key(i: usize, j: usize) -> u32 {
    KEYS[(i * BATCH + j) % ENTRIES]
}

/// Fills every map with the 64 keys.
pub fn fill(floor: &mut Floor, floor_full: &mut FloorFull) {
    SNAP.update(|tx| {
        for &k in &KEYS {
            tx.insert(k, k)?;
        }
        Ok(())
    })
    .expect("64 entries fit");
    SNAP_FULL
        .update(|tx| {
            for &k in &KEYS {
                tx.insert(k, k)?;
            }
            Ok(())
        })
        .expect("64 entries fit");
    critical_section::with(|cs| {
        let mut table = PEER.borrow_ref_mut(cs);
        for &k in &KEYS {
            table.insert(k, k).expect("64 entries fit");
        }
    });
    for &k in &KEYS {
        floor.insert(k, k).expect("64 entries fit");
        floor_full.insert(k, k).expect("64 entries fit");
    }
}

/// snapmap: one batch of [`BATCH`] inserts (replacing existing keys), one publication.
/// `before_insert` runs before each insert, inside the transaction (the concurrent benchmark's
/// preemption points; nothing on one core).
#[inline(always)]
pub fn snap_batch(i: usize, value: u32, mut before_insert: impl FnMut()) -> Result<(), Error> {
    SNAP.update(|tx| {
        for j in 0..BATCH {
            before_insert();
            tx.insert(write_key(i, j), value)?;
        }
        Ok(())
    })
}

/// snapmap's sole writer: one batch of [`BATCH`] inserts, as [`snap_batch`].
#[inline(always)]
pub fn sole_batch(
    writer: &mut WriterOf<'static, Snap>,
    i: usize,
    value: u32,
    mut before_insert: impl FnMut(),
) -> Result<(), Error> {
    writer.update(|tx| {
        for j in 0..BATCH {
            before_insert();
            tx.insert(write_key(i, j), value)?;
        }
        Ok(())
    })
}

/// The mutex map: one batch of [`BATCH`] inserts under one critical section; `before_insert`
/// runs before each insert, with the lock held.
#[inline(always)]
pub fn peer_batch(i: usize, value: u32, mut before_insert: impl FnMut()) -> Result<(), (u32, u32)> {
    critical_section::with(|cs| {
        let mut table = PEER.borrow_ref_mut(cs);
        for j in 0..BATCH {
            before_insert();
            table.insert(write_key(i, j), value)?;
        }
        Ok(())
    })
}

/// The mutex map: one get, cloned out under the critical section.
#[inline(always)]
pub fn peer_get(key: &u32) -> Option<u32> {
    critical_section::with(|cs| PEER.borrow_ref(cs).get(key).copied())
}
