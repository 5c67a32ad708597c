//! A `no_std`, no-heap concurrent map whose readers get consistent snapshots without locks.
//!
//! ```
//! use snapmap_core::SnapMap;
//!
//! // 64 entries, 4 generation slots, 3 reader slots: all memory fixed at compile time.
//! static TABLE: SnapMap<u8, u32, 64, 4, 3> = SnapMap::new();
//!
//! TABLE.insert(1, 100).unwrap();
//! TABLE.update(|tx| {
//!     // A batch: readers see all of it or none of it.
//!     tx.insert(2, 200)?;
//!     tx.insert(3, 300)?;
//!     Ok(())
//! }).unwrap();
//!
//! let mut reader = TABLE.reader().unwrap(); // register once, read lock-free forever after
//! let snapshot = reader.snapshot();
//! assert_eq!(snapshot.get(&2), Some(&200));
//! assert_eq!(snapshot.iter().count(), 3);
//! ```
//!
//! # The model
//!
//! **Generations.** The map lives in a fixed arena of `G` *generation slots*, each able to hold a
//! complete table of `N` entries and a version number. One of them is *current*: an atomic word
//! holds its index. A published generation is immutable.
//!
//! **Readers** load `current`, announce the index in their own *hazard word* (one of `R` reader
//! slots), and re-load `current` to check that it did not move in between. That is a *pin*: from
//! then on, until the [`Snapshot`] drops, the generation cannot be reused, so every lookup and
//! every iteration through the snapshot reads that one generation. A pin takes no lock and no
//! critical section, masks no interrupt, and stores only to the reader's own word; it retries only
//! if a writer published inside its window of a few instructions (lock-free, not wait-free). A
//! registered [`Reader`] keeps its pin after the snapshot drops, until it reads again: if
//! `current` has not moved by then, the new snapshot needs no announcement at all.
//!
//! **Writers** pin the current generation as their *base* exactly as readers do, claim a free
//! slot, bring the older copy it holds up to date with the base, apply their change (one key, or
//! a whole [`Txn`] closure), and publish the copy with a compare-and-swap of `current` from the
//! base to the copy. A writer that loses the race to another writer re-pins the new current
//! generation, catches up with it, re-applies its change and tries again, so no update is ever
//! lost. The base pin is what makes this plain index CAS safe from ABA: a pinned generation
//! cannot be retired *and* reused underneath it.
//!
//! **Catching up** copies only the table slots written since the copy's version: each generation
//! logs the slots its last `2 * G` versions wrote (up to `L` of them). Writers reuse slots in
//! rotation, least recently retired first, so the copy a writer claims is usually `G - 1`
//! versions old and a one-key write copies a few slots, not the table. (Rotation also keeps
//! every slot's copy recent, and a claim rarely meets the pin of a reader that has not yet moved
//! on.) When the log does not reach back far enough (transactions wrote more than `L` slots, or
//! a long-held pin kept the copy from reuse for more than `2 * G` versions), the writer copies
//! the whole table, as `L = 0` always does.
//!
//! **Reclamation.** The writer whose CAS replaced a generation retires it (marks its slot free).
//! A writer claiming a free slot then scans every hazard word and gives the slot back if any
//! reader still pins it. A fence pairs the reader's announce-then-check with the writer's
//! claim-then-scan (a Dekker handshake): either the writer sees the hazard, or the reader sees
//! that `current` moved and never reads the slot. No reader ever waits for a writer; a writer
//! waits for a reader only when every slot is pinned or being written: with `G >= R + W + 1`
//! (`W` concurrent writers) that cannot happen. Otherwise the `try_` forms return
//! [`Error::NoFreeGeneration`] and the blocking forms spin.
//!
//! A retired generation keeps its entries until its slot is reused and catches up (which
//! overwrites, and so drops, what changed since) or the map is dropped: a removed value is
//! dropped exactly once, but late. Keep values whose drop matters (handles, leases) small and release them yourself.
//!
//! **Memory** is `G` tables with their change logs (`8 * L` bytes each), plus `R`
//! cache-line-sized hazard words and a few counters, fixed at compile time; there is no
//! allocator and no `alloc`.
//!
//! # Reading
//!
//! - [`SnapMap::reader`] registers a [`Reader`] that owns a reader slot; [`Reader::snapshot`]
//!   pins. The pin stays until the reader reads again, so a read of a map that nobody changed
//!   since announces nothing: one load of `current`, then the lookup. This is the path for
//!   real-time readers and interrupt handlers.
//! - [`SnapMap::snapshot`] and [`SnapMap::get`] borrow any free reader slot for one read: one
//!   compare-and-swap both claims the slot and announces the pin. On targets without CAS
//!   (Cortex-M0/M0+) it takes a critical section, so readers there that must never take one
//!   register a `Reader`.
//!
//! # Writing
//!
//! | Go `sync.Map`                 | snapmap                                                  |
//! |-------------------------------|----------------------------------------------------------|
//! | `Load`                        | [`SnapMap::get`], [`Snapshot::get`]                      |
//! | `Store` / `Swap`              | [`SnapMap::insert`]                                      |
//! | `LoadOrStore`                 | [`SnapMap::get_or_insert`]                               |
//! | `LoadAndDelete` / `Delete`    | [`SnapMap::remove`]                                      |
//! | `CompareAndSwap`              | [`SnapMap::compare_exchange`]                            |
//! | `CompareAndDelete`            | [`SnapMap::remove_if`]                                   |
//! | `Range` (not consistent)      | [`Snapshot::iter`] (consistent, with a version)          |
//! | `Clear`                       | [`SnapMap::clear`]                                       |
//! | —                             | [`SnapMap::update`]: many changes, one publication       |
//!
//! `try_` forms ([`SnapMap::try_insert`], [`SnapMap::try_remove`], [`SnapMap::try_update`],
//! [`SnapMap::try_snapshot`], [`SnapMap::try_get`]) never wait for a slot. Every error and every
//! panic in a user closure or in `K`/`V`'s `Clone`, `Hash`, `Eq` or `Drop` leaves the published
//! generations untouched: the writer's private copy is discarded and its slot freed. A `Drop`
//! that panics while the map itself drops does not stop it: every other key and value is still
//! dropped, exactly once.
//!
//! # The table
//!
//! Each generation is a flat open-addressing table of `N` slots (a power of two): linear probing
//! with Robin Hood insertion (which keeps every entry close to its home slot, and so the slowest
//! lookup close to the typical one), backward-shift deletion, each entry stored beside 32 bits of
//! its key's hash. A map can hold
//! `N` entries, but lookups stay short only while it is at most about three-quarters full:
//! size `N` for the entries you expect, with room. Keys are hashed with Fx, a fast multiply-rotate
//! hash that is not keyed; keys chosen by an adversary can collide, which costs probe length (at
//! worst all `N` slots), never memory.
//!
//! # Atomics per target
//!
//! The words readers touch are only ever loaded and stored, which every supported target does
//! natively, ARMv6-M included. Writers' read-modify-writes use `portable-atomic` (the native
//! instructions) where the target has compare-and-swap; on targets without it (`thumbv6m`) they
//! use a compare-and-swap built on [`critical-section`](https://docs.rs/critical-section), whose
//! implementation the application provides: on a multicore chip it must be multicore-safe
//! (rp2040-hal's `critical-section-impl`, for example), never a single-core one.
//!
//! # Features
//!
//! - `std`: blocking forms yield the thread while they wait, instead of only spinning.
//! - `defmt`: `defmt::Format` for [`Error`] and [`Stats`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod changes;
mod error;
mod generation;
mod hash;
mod map;
mod reader;
mod snapshot;
mod stats;
mod sync;
mod table;
mod txn;
mod write;

pub use error::Error;
pub use map::SnapMap;
pub use reader::Reader;
pub use snapshot::Snapshot;
pub use stats::Stats;
pub use table::Iter;
pub use txn::Txn;
