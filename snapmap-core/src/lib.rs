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
//! **Generations.** The map lives in a fixed arena of `G` *generation slots*. A generation is a
//! version number and an *index* of the table's pages: the table's `N` slots are cut into pages
//! of 16, and the index names, for each, the page that holds it. One generation is *current*:
//! an atomic word holds its slot's number. A published generation, and every page its index
//! names, is immutable.
//!
//! **Readers** load `current`, announce the slot, and re-load `current` to check that it did not
//! move in between. That is a *pin*: from then on, until the [`Snapshot`] drops, the generation
//! and its pages cannot be reused, so every lookup and every iteration through the snapshot reads
//! that one generation. It retries only if a writer published inside its window of a few
//! instructions (lock-free, not wait-free). There are two ways to announce:
//!
//! - a registered [`Reader`] owns a *hazard word* (one of `R` reader slots) and stores the slot
//!   number there: no lock, no critical section, no read-modify-write, a store only to its own
//!   word (and one more when the snapshot drops);
//! - a one-off read ([`SnapMap::snapshot`], [`SnapMap::get`]) adds one to the generation's *pin
//!   count* (and takes it off when the snapshot drops). It needs no slot, so it never waits and
//!   never fails, however many snapshots are held.
//!
//! **Writers** pin the current generation as their *base* with a counted pin, claim a free
//! generation slot, copy the base's index into it, and apply their change (one key, or a whole
//! [`Txn`] closure) *copy on first write*: the first write to a page copies it into a spare page
//! and points the index there. Every page the change does not touch is shared with the base. The
//! writer publishes its generation with a compare-and-swap of `current` from the base to its
//! slot. A writer that loses the race to another writer gives its pages back, re-pins the new
//! current generation and applies its change again, so no update is ever lost. The base pin is
//! what makes this plain CAS safe from ABA: a pinned generation cannot be retired *and* reused
//! underneath it.
//!
//! **The sole writer.** Most maps have one writing context: core 0 owns the table, core 1 and
//! interrupt handlers read it. For them every read-modify-write above serves a race that cannot
//! happen, so [`SnapMap::writer`] hands out the map's sole [`Writer`]: while it lives, it alone
//! writes, and its writes pin no base (only it could retire the current generation), claim no
//! slot, page or record by compare-and-swap (only it claims them), and publish with a store.
//! On Cortex-M0/M0+ that is a write without a critical section: the writing core never masks
//! interrupts. Readers read exactly as before. Taking the writer waits for writes through the
//! map in flight to land; while it lives, writes through the map return [`Error::WriterHeld`],
//! and dropping it gives the map back (see [`Writer`]).
//!
//! **Reclamation.** The writer whose CAS replaced a generation retires it (marks its slot free)
//! and retires the pages its change replaced, each with its life: the versions from the one that
//! wrote it to the one before the one that replaced it. A writer claiming a free slot then reads
//! the slots' pin counts and scans every hazard word, and gives the slot back if anyone still
//! pins it; the same scan tells which versions are pinned, and a retired page is reused only if
//! none of them lies in its life.
//! A fence pairs the reader's announce-then-check with the writer's claim-then-scan (a Dekker
//! handshake): either the writer sees the pin, or the reader sees that `current` moved and never
//! reads what the writer reuses. No reader ever waits for a writer, and a reader's path is loads
//! and stores only: no reference counts on pages.
//!
//! **The slot budget, `G >= R + 2`, is a compile-time fact**, checked by [`SnapMap::new`]: `R`
//! registered readers reading `R` different generations still leave writers the current one and
//! one to write into. A write waits for a slot only for other writers in flight (who are making
//! progress) and for one-off snapshots while they are held; with `G >= R + W + 1` for `W`
//! concurrent writers, writers never wait for each other either.
//!
//! **The page budget, `P` spare pages.** A write copies into spare pages the pages it changes,
//! each once. Every slot a one-key write changes lies in one run of occupied slots, and in a
//! table of more than 64 slots no run grows past 48 (an insert that would make a longer one
//! returns [`Error::Full`]), so a one-key write changes at most 4 pages (at most `N / 16` in a
//! smaller table). `P >= 4` (or
//! `P >= N / 16`) is checked at compile time, so a one-key write always fits in the pool.
//! [`clear`](SnapMap::clear) copies nothing: a cleared generation names one shared, always
//! empty page wherever the table held entries, so it never needs a spare page. A transaction
//! copies each page it changes, once, and one that would change more than `P` is refused with
//! [`Error::NoFreePage`] by every form.
//!
//! A page replaced by a write stays reserved while a snapshot that has it is held: a snapshot
//! holds the pages of its generation that later writes replaced, so at most one table
//! (`N / 16` pages) however many writes follow it, and snapshots of one version share them.
//! With `P >= (N / 16) * S + 4`, a lone writer's one-key writes never wait while at most `S`
//! snapshots of distinct old versions are held. With fewer, a write can wait, and only for held
//! snapshots (an idle registered [`Reader`] holds nothing) or for other writers in flight: the
//! blocking forms spin (yielding under `std`), the `try_` forms return [`Error::NoFreePage`]. A
//! thread that holds snapshots and then makes a blocking write may wait for itself, as a thread
//! re-locking a lock would: drop snapshots before writing, or use a `try_` form. (See
//! [`SnapMap`]'s `N`, `G`, `R` and `P`.)
//!
//! **Progress.** Writers race; a write that loses (another writer published first, or retired
//! the pages it could have used after its scan) starts over on the new current generation, so
//! some writer always makes progress (lock-free). A write that loses three times in a row takes
//! the map's *turn*: the other writers start no new attempt until it lands (blocking forms
//! wait; `try_` forms return [`Error::Contended`]), so it lands after at most `3 + W` attempts
//! against `W` other writers, whatever they do (a 1 ms `update` against a thread inserting flat
//! out lands within five runs of its closure). A write running out of pages scans again before
//! it waits or gives up if anything was published since its scan. The turn is a wait on another
//! writer: an interrupt handler that writes to a map that the code it interrupts also writes
//! must use `try_` forms (as it would with any lock), since a blocking write there may wait for
//! the write it interrupted.
//!
//! A retired page keeps its entries until it is reused (which drops them before it copies) or
//! the map is dropped: a removed value is dropped exactly once, but late. Keep values whose drop
//! matters (handles, leases) small and release them yourself.
//!
//! **Memory** is one table of `N` slots, `P` spare pages of 16 slots, an index of two bytes per
//! 16 slots in each of the `G` generations (kept in one block of `N` words, which is why
//! `G <= 16`), each page's birth and occupancy (16 bytes per home page, in a block of `N`
//! bytes, and 10 per spare page), plus `R` cache-line-sized hazard words and `G` pin counts,
//! fixed at compile time; there is no
//! allocator and no `alloc`. Adding a generation costs a few words, not a table.
//!
//! # Naming a map's type once
//!
//! Name the map's type with an alias, and derive its reader's, snapshot's and transaction's
//! types from it with [`ReaderOf`], [`SnapshotOf`] and [`TxnOf`], so that `N`, `G`, `R` and `P`
//! are written in one place: `type Table = SnapMap<u32, u32, 64, 6, 3, 16>;` then
//! `ReaderOf<'static, Table>` (see [`MapTypes`]).
//!
//! # Checked parameters
//!
//! A bad `N` (not a power of two from 2 to 2^18), `G` (below `R + 2`, above 16 or above `N`),
//! `R` or `P` (0, or too many pages) is a compile error whose message names the parameter. For
//! a map in a `static`, the usual place, it is an error of `cargo check` (and so shows in
//! rust-analyzer); for a map made at run time (`let map = SnapMap::new()`), rustc reports it
//! only when it generates code, at `cargo build`.
//!
//! ```compile_fail
//! use snapmap_core::SnapMap;
//! // N = 48: "SnapMap's capacity N must be a power of two, at least 2".
//! static BAD_N: SnapMap<u8, u8, 48> = SnapMap::new();
//! # fn main() { let _ = BAD_N.snapshot(); }
//! ```
//!
//! ```compile_fail
//! use snapmap_core::SnapMap;
//! // N = 0: the same message, not a division by zero.
//! static NO_N: SnapMap<u8, u8, 0> = SnapMap::new();
//! # fn main() { let _ = NO_N.snapshot(); }
//! ```
//!
//! ```compile_fail
//! use snapmap_core::SnapMap;
//! // P = 0: "SnapMap needs P >= 1 spare pages".
//! static NO_P: SnapMap<u8, u8, 16, 4, 2, 0> = SnapMap::new();
//! # fn main() { let _ = NO_P.snapshot(); }
//! ```
//!
//! # Waiting for a change
//!
//! [`Reader::changed`] is an `async fn` that completes with a snapshot newer than the last one
//! it returned, woken by every write (any executor: embassy, or any other, no alloc); writes
//! that need to tell others what they published use [`SnapMap::update_versioned`].
//!
//! # Reading
//!
//! - [`SnapMap::reader`] registers a [`Reader`] that owns a reader slot; [`Reader::snapshot`]
//!   pins (a store, a fence and a load of `current`) until the snapshot drops (one more store).
//!   This is the path for real-time readers and interrupt handlers.
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
//! | —                             | [`SnapMap::writer`]: the sole writer, cheaper writes     |
//!
//! `try_` forms ([`SnapMap::try_insert`], [`SnapMap::try_remove`], [`SnapMap::try_update`]) never
//! wait for a generation slot or a page. Every error and every panic in a user closure or in `K`/`V`'s
//! `Clone`, `Hash`, `Eq` or `Drop` leaves the published generations untouched: the writer's
//! private copy is discarded and its slot freed. A `Drop` that panics while the map itself drops
//! does not stop it: every other key and value is still dropped, exactly once.
//!
//! Every write returns a `Result`. The blocking forms never wait for pages within the budget
//! above, so their errors are few: `insert` and `get_or_insert` give [`Error::Full`];
//! `update` gives what its closure returns, and [`Error::NoFreePage`] for a change of more than
//! `P` pages; every write gives [`Error::Reentrant`]: a write to a map from code that one of its
//! own writes runs (an [`update`](SnapMap::update) closure, a predicate, `Hash`, `Eq` or
//! `Clone`) would livelock, and under `std` it is refused with that error instead. Without `std`
//! it cannot be detected (there are no thread-locals): never write to a map from inside its own
//! write. The `try_` forms add [`Error::NoFreeGeneration`], [`Error::NoFreePage`] and
//! [`Error::Contended`] where a blocking form would wait.
//!
//! **One writing context?** Take the map's [`Writer`] once ([`SnapMap::writer`]) and write
//! through it: the same methods and results, taking `&mut self`, at a fraction of the cost (no
//! compare-and-swap, no critical section on Cortex-M0/M0+), and reads of its own through
//! [`Writer::get`] and [`Writer::snapshot`] that need no pin. Writes through the map then return
//! [`Error::WriterHeld`] until the `Writer` drops.
//!
//! A write runs its change again on a fresh copy after each race it loses. `insert` moves its key
//! and value into the copy and, after a lost race, takes them back out of the discarded copy,
//! so it never clones them; the closures of `update` and the other writes run again as they are
//! (`FnMut`), so what they insert they clone.
//!
//! # The table
//!
//! Each generation is an open-addressing table of `N` slots (a power of two), read through its
//! page index: linear probing with Robin Hood insertion (which keeps every entry close to its
//! home slot, and so the slowest lookup close to the typical one), backward-shift deletion, each
//! entry stored beside 32 bits of its key's hash. A lookup reads one index entry more than a
//! flat table would. A map holds at most `N` entries; one of more than 64 slots also holds no
//! run of occupied slots longer than 48 (the page budget above), so past about half full a key
//! whose run would grow longer is refused with [`Error::Full`]. With random keys the first
//! refusal came at 61% of `N` at worst for `N = 256`, 56% for 1024 and 54% for 2048 (medians
//! 79, 71 and 70%; 20 key sequences each; a map of 64 slots or fewer fills up): size a large `N`
//! at about twice the entries you expect.
//!
//! The last type parameter `S` is the hasher (any [`BuildHasher`](core::hash::BuildHasher), as in
//! heapless and hashbrown), built with the `const fn` [`SnapMap::with_hasher`] so that a map
//! stays a `static`. The default, [`FxBuildHasher`], is a fast multiply-rotate hash that is not
//! keyed: keys chosen by an adversary can be made to collide (500 `u32` keys with one home slot
//! are found by brute force in a moment), which costs probe length, up to the 48 slots of one
//! run, and then room: keys whose run is full are refused with [`Error::Full`]. Where keys come
//! from outside (addresses heard on a network), use the keyed
//! [`SipBuildHasher`] with a key drawn at start-up; [`Snapshot::longest_probe`] measures the
//! damage.
//!
//! # Interior mutability in `V`
//!
//! A published generation is shared, immutable by contract, and *not the only copy*: a write
//! copies each page it changes, so the entries of that page exist as separate clones in the old
//! page and the new one. A `V` with interior mutability (`Cell`, `RefCell`, an atomic) can be
//! changed through `&V` from a snapshot, but the change lands in one page's clone: it is not a
//! write to the map, no version changes, and later snapshots may or may not see it depending on
//! whether a write has copied that page since. It is not undefined behaviour (`Cell` values are `!Sync`, so a map of
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
//! **Two Cortex-M33 cores (RP2350, the Raspberry Pi Pico 2).** Writers use the native
//! LDREX/STREX there, which exclude the other core only with `ACTLR.EXTEXCLALL` set on both
//! cores (otherwise SRAM counts as non-shareable and a compare-and-swap can lose the other core's
//! update). rp235x-hal's `Multicore::spawn` sets it on both; firmware that starts core 1 another
//! way must. The map takes no critical section on this chip. One the application uses for
//! anything else should not rest on the SIO hardware spinlocks alone: by erratum RP2350-E2,
//! writes to SIO registers from offset `0x180` up release them. A lock word taken with the
//! cores' exclusives (as the Pico SDK does by default on the RP2350) avoids that.
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

mod cleared;
mod error;
mod generation;
mod hash;
mod map;
mod notify;
mod pages;
mod reader;
mod reentry;
mod snapshot;
mod stats;
mod sync;
mod table;
mod txn;
mod types;
mod write;
mod writer;

pub use error::Error;
pub use hash::{FxBuildHasher, FxHasher, SipBuildHasher};
pub use map::SnapMap;
pub use notify::Changed;
pub use reader::Reader;
pub use snapshot::Snapshot;
pub use stats::Stats;
pub use table::Iter;
pub use txn::Txn;
pub use types::{MapTypes, ReaderOf, SnapshotOf, TxnOf, WriterOf};
pub use writer::Writer;
