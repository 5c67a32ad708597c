//! A `no_std`, no-heap concurrent map whose readers get consistent snapshots without locks.
//!
//! ```
//! use snapmap_core::SnapMap;
//!
//! // 64 entries, 5 generation slots, 3 reader slots: all memory fixed at compile time.
//! static TABLE: SnapMap<u8, u32, 64, 5, 3> = SnapMap::new();
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
//! **Readers** load `current`, announce the index, and re-load `current` to check that it did not
//! move in between. That is a *pin*: from then on, until the [`Snapshot`] drops, the generation
//! cannot be reused, so every lookup and every iteration through the snapshot reads that one
//! generation. It retries only if a writer published inside its window of a few instructions
//! (lock-free, not wait-free). There are two ways to announce:
//!
//! - a registered [`Reader`] owns a *hazard word* (one of `R` reader slots) and stores the index
//!   there: no lock, no critical section, no read-modify-write, a store only to its own word. It
//!   keeps its pin after the snapshot drops, until it reads again: if `current` has not moved by
//!   then, the new snapshot needs no announcement at all;
//! - a one-off read ([`SnapMap::snapshot`], [`SnapMap::get`]) adds one to the generation's *pin
//!   count* (and takes it off when the snapshot drops). It needs no slot, so it never waits and
//!   never fails, however many snapshots are held.
//!
//! **Writers** pin the current generation as their *base* with a counted pin, claim a free
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
//! A writer claiming a free slot then reads its pin count and scans every hazard word, and gives
//! the slot back if anyone still pins it. A fence pairs the reader's announce-then-check with the
//! writer's claim-then-scan (a Dekker handshake): either the writer sees the pin, or the reader
//! sees that `current` moved and never reads the slot. No reader ever waits for a writer.
//!
//! **The slot budget, `G >= R + 2`, is a compile-time fact**, checked by [`SnapMap::new`]: `R`
//! registered readers idle on `R` different generations still leave writers the current one and
//! one to write into, so no mix of registered readers and one-off reads can make a write wait
//! forever. A write waits only for other writers in flight (who are making progress) and for
//! one-off snapshots while they are held: the blocking forms spin (yielding under `std`), the
//! `try_` forms return [`Error::NoFreeGeneration`]. With `G >= R + W + 1` for `W` concurrent
//! writers, writers never wait for each other either. A thread that holds one-off snapshots of
//! every spare generation and then makes a blocking write waits for itself, as a thread
//! re-locking a lock would: drop snapshots before writing, or use a `try_` form. (See
//! [`SnapMap`]'s `G` and `R` for why counting, not more slots or a runtime refusal.)
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
//! - [`SnapMap::snapshot`] and [`SnapMap::get`] count a pin on the current generation for one
//!   read: one atomic increment, and a decrement when the snapshot drops. They never wait and
//!   never fail. On targets without read-modify-write instructions (Cortex-M0/M0+) the increment
//!   takes a critical section, so readers there that must never take one register a `Reader`.
//!
//! # Writing
//!
//! | Go `sync.Map`                 | snapmap                                                  |
//! |-------------------------------|----------------------------------------------------------|
//! | `Load`                        | [`SnapMap::get`], [`Snapshot::get`]                      |
//! | `Store` / `Swap`              | [`SnapMap::insert`]                                      |
//! | `LoadOrStore`                 | [`SnapMap::get_or_insert`] (with `loaded`, as Go's)      |
//! | `LoadAndDelete` / `Delete`    | [`SnapMap::remove`]                                      |
//! | `CompareAndSwap`              | [`SnapMap::compare_exchange`]                            |
//! | `CompareAndDelete`            | [`SnapMap::remove_if`]                                   |
//! | `Range` (not consistent)      | [`Snapshot::iter`] (consistent, with a version)          |
//! | `Clear`                       | [`SnapMap::clear`]                                       |
//! | —                             | [`SnapMap::update`]: many changes, one publication       |
//!
//! `try_` forms ([`SnapMap::try_insert`], [`SnapMap::try_remove`], [`SnapMap::try_update`]) never
//! wait for a generation slot. Every error and every panic in a user closure or in `K`/`V`'s
//! `Clone`, `Hash`, `Eq` or `Drop` leaves the published generations untouched: the writer's
//! private copy is discarded and its slot freed. A `Drop` that panics while the map itself drops
//! does not stop it: every other key and value is still dropped, exactly once.
//!
//! Every write returns a `Result`, the blocking `remove`, `compare_exchange`, `remove_if` and
//! `clear` too, whose only error is [`Error::Reentrant`]: a write to a map from code that one of
//! its own writes runs (an [`update`](SnapMap::update) closure, a predicate, `Hash`, `Eq` or
//! `Clone`) would livelock, and under `std` it is refused with that error instead. One shape for
//! every write keeps `?` working the same everywhere and leaves room for that check. Without
//! `std` it cannot be detected (there are no thread-locals): never write to a map from inside
//! its own write.
//!
//! A write runs its change again on a fresh copy after each race it loses. `insert` moves its key
//! and value into the copy and, after a lost race, takes them back out of the discarded copy,
//! so it never clones them; the closures of `update` and the other writes run again as they are
//! (`FnMut`), so what they insert they clone.
//!
//! # The table
//!
//! Each generation is a flat open-addressing table of `N` slots (a power of two): linear probing
//! with Robin Hood insertion (which keeps every entry close to its home slot, and so the slowest
//! lookup close to the typical one), backward-shift deletion, each entry stored beside 32 bits of
//! its key's hash. A map can hold
//! `N` entries, but lookups stay short only while it is at most about three-quarters full:
//! size `N` for the entries you expect, with room.
//!
//! The last type parameter `S` is the hasher (any [`BuildHasher`](core::hash::BuildHasher), as in
//! heapless and hashbrown), built with the `const fn` [`SnapMap::with_hasher`] so that a map
//! stays a `static`. The default, [`FxBuildHasher`], is a fast multiply-rotate hash that is not
//! keyed: keys chosen by an adversary can be made to collide (700 `u32` keys with one home slot
//! are found by brute force in a moment), which costs probe length, up to every slot, never
//! memory. Where keys come from outside (addresses heard on a network), use the keyed
//! [`SipBuildHasher`] with a key drawn at start-up; [`Snapshot::longest_probe`] measures the
//! damage.
//!
//! # Interior mutability in `V`
//!
//! A published generation is shared, immutable by contract, and *not the only copy*: writers copy
//! only the slots that changed since a slot's copy was made, and every other slot of every
//! generation is a separate clone of the same entry. A `V` with interior mutability (`Cell`,
//! `RefCell`, an atomic) can be changed through `&V` from a snapshot, but the change lands in that
//! one generation's clone: it is not a write to the map, no version changes, other generations
//! keep their own clones, and later snapshots may or may not see it depending on which copy a
//! writer started from. It is not undefined behaviour (`Cell` values are `!Sync`, so a map of
//! them is not shared across threads; atomics are), but it is never what you mean: change values
//! with a write (`insert`, [`Txn::get_mut`], [`SnapMap::compare_exchange`]). A value that
//! *points* to shared state (`&'static AtomicU32`, an index into a table of atomics) behaves as
//! expected: every clone points to the same place.
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
//! - `std`: blocking forms yield the thread while they wait, instead of only spinning; a write
//!   from inside a write to the same map returns [`Error::Reentrant`] instead of livelocking.
//! - `defmt`: `defmt::Format` for [`Error`] and [`Stats`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod error;
mod generation;
mod hash;
mod map;
mod pages;
mod reader;
mod reentry;
mod snapshot;
mod stats;
mod sync;
mod table;
mod txn;
mod write;

pub use error::Error;
pub use hash::{FxBuildHasher, FxHasher, SipBuildHasher};
pub use map::SnapMap;
pub use reader::Reader;
pub use snapshot::Snapshot;
pub use stats::Stats;
pub use table::Iter;
pub use txn::Txn;
