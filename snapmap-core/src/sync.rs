//! The atomics facade: the one place that knows which atomic operations a target has natively,
//! and what [loom] substitutes under `cfg(loom)`.
//!
//! The rule it enforces (see the crate docs, "Atomics per target"):
//! - a registered reader's **read path** never takes a critical section: on targets without CAS
//!   it only *loads* and *stores*, which are native everywhere, ARMv6-M included; where the
//!   target has native read-modify-writes, a reader announces its hazard with one native swap
//!   ([`announce`]), cheaper than a store and a fence;
//! - every other read-modify-write goes through [`compare_exchange`], [`publish_exchange`],
//!   [`announce_count`], [`release_count`] or [`Counter::bump`]: native (via `portable-atomic`,
//!   which is the hardware instruction on such targets) where the target has CAS, and a
//!   `critical-section` where it does not (thumbv6m).
//!   Inside that critical section the word is still accessed with atomic loads and stores, so a
//!   reader's concurrent plain load is never a data race.
//!
//! On a CAS-less target the critical-section CAS is only correct if *every* RMW of a word goes
//! through it; stores that race with it come only from the word's current owner (see the callers),
//! never while the word holds the value the CAS expects.
//!
//! [loom]: https://docs.rs/loom

pub(crate) use core::sync::atomic::Ordering;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU8, AtomicUsize};

// On targets with CAS, portable-atomic's types are the native ones, at no cost.
#[cfg(all(not(loom), target_has_atomic = "ptr"))]
pub(crate) use portable_atomic::{fence, AtomicU8, AtomicUsize};

// ARMv6-M: core's atomics give native `ldr`/`str` + `dmb` for loads, stores and fences; they
// simply have no RMW methods, which is what this module supplies.
#[cfg(all(not(loom), not(target_has_atomic = "ptr")))]
pub(crate) use core::sync::atomic::{fence, AtomicU8, AtomicUsize};

/// Writer-side compare-and-swap with `AcqRel` success and `Acquire` failure semantics, for a
/// word (`compare_exchange`) or a byte (`compare_exchange_u8`: a cleared position's record, see
/// `cleared`).
macro_rules! compare_exchange_fn {
    ($name:ident, $atomic:ty, $int:ty) => {
        #[inline]
        pub(crate) fn $name(word: &$atomic, current: $int, new: $int) -> Result<$int, $int> {
            #[cfg(any(loom, target_has_atomic = "ptr"))]
            {
                word.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            }
            #[cfg(not(any(loom, target_has_atomic = "ptr")))]
            {
                // Mutual exclusion among all RMWs of this word comes from the critical section;
                // the Acquire load / Release store give the same ordering as an AcqRel CAS to
                // the lock-free readers that load the word without taking the critical section.
                critical_section::with(|_| {
                    let seen = word.load(Ordering::Acquire);
                    if seen == current {
                        word.store(new, Ordering::Release);
                        Ok(seen)
                    } else {
                        Err(seen)
                    }
                })
            }
        }
    };
}
compare_exchange_fn!(compare_exchange, AtomicUsize, usize);
compare_exchange_fn!(compare_exchange_u8, AtomicU8, u8);

/// Who changes the words that only writers change: the states of generation slots, of the pool's
/// entries and of cleared records (readers never touch them). `Many` writers claim them by
/// compare-and-swap. The map's `Sole` writer (a [`Writer`](crate::Writer)) claims them with a
/// load and a store, no critical section on any target: while it lives no other writer claims
/// a pool entry or a record, and it does not touch generation states at all (see `writer`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writers {
    Many,
    Sole,
}

macro_rules! claim_fn {
    ($name:ident, $cas:ident, $atomic:ty, $int:ty) => {
        /// [`compare_exchange`], or for the sole writer a load and a store with the same
        /// orderings: the previous holder may be a writer of the shared path, from before the
        /// sole writer took over, and the next one a writer after it gave the map back.
        #[inline]
        pub(crate) fn $name(self, word: &$atomic, current: $int, new: $int) -> Result<$int, $int> {
            match self {
                Writers::Many => $cas(word, current, new),
                Writers::Sole => {
                    let seen = word.load(Ordering::Acquire);
                    if seen == current {
                        word.store(new, Ordering::Release);
                        Ok(seen)
                    } else {
                        Err(seen)
                    }
                }
            }
        }
    };
}

impl Writers {
    claim_fn!(claim, compare_exchange, AtomicUsize, usize);
    claim_fn!(claim_u8, compare_exchange_u8, AtomicU8, u8);
}

/// The reader half of the Dekker handshake (see `SnapMap::pin`): stores `value` to the caller's
/// hazard word with Release semantics, ordered before the caller's next `SeqCst` load in the
/// single total order of SeqCst operations.
///
/// Where the target has read-modify-write instructions this is one SeqCst swap. In C++20 a SeqCst
/// RMW followed by a SeqCst load pairs with the writer's SeqCst fence as a fence would
/// ([atomics.order] p4: the fence precedes the RMW in the total order, or the scan after it sees
/// the RMW), and on x86 one locked instruction is both the store and the barrier: 6.1 ns against
/// 7.9 ns for a store and a fence, measured here. Without RMW (thumbv6m), and under loom, which
/// models SeqCst accesses as merely AcqRel (loom issue 180), it is a Release store and a SeqCst
/// fence.
#[inline(always)]
pub(crate) fn announce(hazard: &AtomicUsize, value: usize) {
    #[cfg(all(not(loom), target_has_atomic = "ptr"))]
    hazard.swap(value, Ordering::SeqCst);
    #[cfg(any(loom, not(target_has_atomic = "ptr")))]
    {
        hazard.store(value, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

/// The most counted pins one generation can carry. A snapshot can be leaked (`mem::forget`), so
/// without a cap a count could be driven round to where it was (2^32 leaks on a 32-bit target,
/// about an hour on an M0+) while a snapshot is still held, and writers would reuse its
/// generation under it. Half the word's range, as `Arc` does with `MAX_REFCOUNT`: far beyond any
/// real program, and far enough from the wrap that the threads that overshoot it at once (each
/// adds one, sees the cap, and takes it back) never reach it.
pub(crate) const MAX_PINS: usize = usize::MAX / 2;

/// [`announce`] by counting: adds one to a generation's pin count (a one-off read's or a writer's
/// base pin), ordered before the caller's next `SeqCst` load as `announce` is. One SeqCst
/// `fetch_add` where the target has it (the same C++20 argument as for the swap); under loom, and
/// on thumbv6m (a critical section), an increment and then a SeqCst fence.
///
/// Returns `false`, having taken nothing, if the count already held [`MAX_PINS`]: the caller
/// must then not read on the strength of it (see `SnapMap::pin_counted`).
#[inline(always)]
pub(crate) fn announce_count(count: &AtomicUsize) -> bool {
    #[cfg(all(not(loom), target_has_atomic = "ptr"))]
    let before = count.fetch_add(1, Ordering::SeqCst);
    #[cfg(loom)]
    let before = {
        let before = count.fetch_add(1, Ordering::AcqRel);
        fence(Ordering::SeqCst);
        before
    };
    #[cfg(all(not(loom), not(target_has_atomic = "ptr")))]
    let before = {
        // Every change of a count goes through a critical section (here and in
        // `release_count`), so this load-then-store is an atomic increment; at the cap it stores
        // nothing.
        let before = critical_section::with(|_| {
            let n = count.load(Ordering::Acquire);
            if n < MAX_PINS {
                count.store(n + 1, Ordering::Release);
            }
            n
        });
        fence(Ordering::SeqCst);
        if before >= MAX_PINS {
            return false;
        }
        before
    };
    if before >= MAX_PINS {
        // Take our increment back: the count never goes more than one per thread past the cap.
        release_count(count);
        return false;
    }
    true
}

/// Ends a counted pin: subtracts one from the count with Release semantics. On thumbv6m, where a
/// plain store does not extend a release sequence, each change's Acquire load synchronizes with
/// the Release store of the one before, so a writer's Acquire load of a later value still has
/// this one happen-before it.
#[inline(always)]
pub(crate) fn release_count(count: &AtomicUsize) {
    #[cfg(any(loom, target_has_atomic = "ptr"))]
    count.fetch_sub(1, Ordering::Release);
    #[cfg(all(not(loom), not(target_has_atomic = "ptr")))]
    critical_section::with(|_| {
        let n = count.load(Ordering::Acquire);
        count.store(n - 1, Ordering::Release);
    });
}

/// An atomic word outside the protocol (a statistic, the writers' turn): it orders nothing and
/// protects no data, so every access is Relaxed, and under loom it is a plain core atomic:
/// modelling it would only grow the models' state space.
#[cfg(loom)]
type OffModel = core::sync::atomic::AtomicUsize;
#[cfg(not(loom))]
type OffModel = AtomicUsize;

/// A statistics counter: written by writers only, read by anyone, ordered by nothing.
pub(crate) struct Counter {
    word: OffModel,
}

impl Counter {
    pub(crate) const fn new() -> Self {
        Self {
            word: OffModel::new(0),
        }
    }

    /// Adds one, wrapping. Relaxed: a statistic publishes no data. (Only slow paths count:
    /// waits and lost races; publications are counted by versions, see `Stats`.)
    #[inline]
    pub(crate) fn bump(&self) {
        #[cfg(any(loom, target_has_atomic = "ptr"))]
        self.word.fetch_add(1, Ordering::Relaxed);
        #[cfg(not(any(loom, target_has_atomic = "ptr")))]
        critical_section::with(|_| {
            // Inside the critical section no other bump can run: a load and a store add one.
            let v = self.word.load(Ordering::Relaxed);
            self.word.store(v.wrapping_add(1), Ordering::Relaxed);
        });
    }

    #[inline]
    pub(crate) fn get(&self) -> usize {
        self.word.load(Ordering::Relaxed)
    }
}

/// The word of the writers' turn (see `write::Turn`): who has it, 0 if no one. It serves only
/// progress (see [`OffModel`]).
pub(crate) struct TurnWord {
    word: OffModel,
}

impl TurnWord {
    pub(crate) const fn new() -> Self {
        Self {
            word: OffModel::new(0),
        }
    }

    /// Who has the turn (0: no one). A plain load.
    #[inline]
    pub(crate) fn holder(&self) -> usize {
        self.word.load(Ordering::Relaxed)
    }

    /// Takes the turn for `token` if no one has it.
    pub(crate) fn take(&self, token: usize) -> bool {
        #[cfg(loom)]
        return self
            .word
            .compare_exchange(0, token, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        #[cfg(not(loom))]
        compare_exchange(&self.word, 0, token).is_ok()
    }

    /// Gives the turn back (the caller has it).
    pub(crate) fn give_back(&self) {
        self.word.store(0, Ordering::Relaxed);
    }
}

/// The publishing CAS: [`compare_exchange`] that, when it succeeds, also ends the writer's
/// counted base pin `base_pin` (as [`release_count`] would, after the CAS; `None` for a writer
/// that holds no count). On thumbv6m both happen in one critical section: a publication costs
/// one, not two (one takes about 80 cycles on the RP2040). The count's load and store inside it
/// are exclusive with every other change of the count, since all of those run in a critical
/// section too ([`announce_count`], [`release_count`]).
#[inline]
pub(crate) fn publish_exchange(
    word: &AtomicUsize,
    current: usize,
    new: usize,
    base_pin: Option<&AtomicUsize>,
) -> Result<usize, usize> {
    #[cfg(loom)]
    let result = compare_exchange(word, current, new);
    // SeqCst on success (the same instructions as AcqRel on x86, AArch64 and ARMv8-M), so that
    // the load of `waiting` after it is ordered after it (see `load_after_publication`).
    #[cfg(all(not(loom), target_has_atomic = "ptr"))]
    let result = word.compare_exchange(current, new, Ordering::SeqCst, Ordering::Acquire);
    #[cfg(any(loom, target_has_atomic = "ptr"))]
    {
        if let (Ok(_), Some(count)) = (result, base_pin) {
            release_count(count);
        }
        result
    }
    #[cfg(not(any(loom, target_has_atomic = "ptr")))]
    {
        // As in `compare_exchange`, then as in `release_count`: the decrement's Release store
        // comes after the CAS's, so it carries the writer's reads of its base as before.
        critical_section::with(|_| {
            let seen = word.load(Ordering::Acquire);
            if seen == current {
                word.store(new, Ordering::Release);
                if let Some(count) = base_pin {
                    let n = count.load(Ordering::Acquire);
                    count.store(n - 1, Ordering::Release);
                }
                Ok(seen)
            } else {
                Err(seen)
            }
        })
    }
}

/// The sole writer's publication: stores `value` in `current` with Release semantics (it
/// publishes the generation to every Acquire load of `current`), as a SeqCst store where the
/// target has read-modify-writes, so that [`load_after_publication`] is ordered after it (on
/// x86 one `xchg`, on AArch64 one `stlr`). Under loom and on thumbv6m, a Release store (`dmb` and
/// `str`: no critical section), which the fence of `load_after_publication` orders.
#[inline]
pub(crate) fn publish_store(word: &AtomicUsize, value: usize) {
    #[cfg(all(not(loom), target_has_atomic = "ptr"))]
    word.store(value, Ordering::SeqCst);
    #[cfg(any(loom, not(target_has_atomic = "ptr")))]
    word.store(value, Ordering::Release);
}

/// A writer's load of `word` after its publication (a [`publish_exchange`], or the sole writer's
/// [`publish_store`]), ordered after it in the single total order of SeqCst operations:
/// the writer half of the handshake with a reader that arms a wait, then fences, then loads
/// `current` (see `notify`). A SeqCst load where the publication was a SeqCst read-modify-write
/// (a plain load on x86); under loom and on thumbv6m, a SeqCst fence and a Relaxed load.
#[inline]
pub(crate) fn load_after_publication(word: &AtomicUsize) -> usize {
    #[cfg(all(not(loom), target_has_atomic = "ptr"))]
    return word.load(Ordering::SeqCst);
    #[cfg(any(loom, not(target_has_atomic = "ptr")))]
    {
        // The `no_publish_order` mutant (loom runs only) leaves the fence out, to show that the
        // loom model of waiting catches the store-buffer race that follows.
        #[cfg(not(snapmap_mutant = "no_publish_order"))]
        fence(Ordering::SeqCst);
        word.load(Ordering::Relaxed)
    }
}

/// `UnsafeCell` with loom's closure API, so loom can check every access to a generation's
/// contents for races; outside loom it compiles to plain pointer accesses.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

#[cfg(not(loom))]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Copies `count` cells from `from` to `to`: one `memcpy` (loom: cell by cell, so that it checks
/// each access).
///
/// # Safety
/// Both ranges are `count` cells of one allocation, apart; no one writes `from`'s meanwhile, and
/// no one else accesses `to`'s.
#[inline]
pub(crate) unsafe fn copy_cells<T: Copy>(
    from: *const UnsafeCell<T>,
    to: *const UnsafeCell<T>,
    count: usize,
) {
    #[cfg(loom)]
    for i in 0..count {
        // SAFETY: the caller's contract.
        unsafe {
            let value = (*from.add(i)).with(|value| *value);
            (*to.add(i)).with_mut(|cell| *cell = value);
        }
    }
    // SAFETY: the caller's contract; `UnsafeCell<T>` has `T`'s layout (`repr(transparent)`
    // twice), and writing through a pointer to an `UnsafeCell`'s contents is what it permits.
    #[cfg(not(loom))]
    unsafe {
        core::ptr::copy_nonoverlapping(from.cast::<T>(), to.cast::<T>().cast_mut(), count)
    };
}

/// One step of a busy wait: a CPU hint, a loom yield (loom must see spin loops yield), and under
/// `std` a thread yield once spinning has gone on for a while.
#[inline]
pub(crate) fn spin_wait(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(all(not(loom), feature = "std"))]
    if *spins > 64 {
        std::thread::yield_now();
        return;
    }
    core::hint::spin_loop();
}

/// `[value; N]` for a `value` that is not `Copy`: an inline `const` block where the value can be
/// built in one (so a map stays a `const fn`), a closure under loom (its atomics cannot).
#[cfg(not(loom))]
macro_rules! array {
    ($value:expr; $len:expr) => {
        [const { $value }; $len]
    };
}
#[cfg(loom)]
macro_rules! array {
    ($value:expr; $len:expr) => {
        core::array::from_fn(|_| $value)
    };
}
pub(crate) use array;
