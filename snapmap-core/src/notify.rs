//! Waiting for a change without polling and without alloc: [`Reader::changed`], an `async fn`
//! that completes with a snapshot newer than the last one it returned; and writes that report
//! the version they published ([`SnapMap::update_versioned`]).
//!
//! # The parts
//!
//! - One *waker slot* per reader slot ([`WakerSlot`]): the task's `Waker`, stored the way
//!   `AtomicWaker` does it (futures, embassy-sync), and an `armed` flag, set while that reader's
//!   `changed()` is pending.
//! - One word for the whole map, `waiting`: how many readers are armed.
//! - The writer's part is one call after its publishing compare-and-swap ([`SnapMap::published`]):
//!   a load of `waiting`, and while it is 0 nothing else. Only when somebody waits does a writer
//!   look at the waker slots and wake every armed one.
//!
//! # Why no wake-up is lost
//!
//! A waiting reader arms (stores `armed`, adds one to `waiting`), then fences (SeqCst), then
//! checks for a newer version once more before it returns `Pending`. A writer publishes (a
//! compare-and-swap of `current`, or the sole writer's store), and then loads `waiting`, with
//! its publication ordered before that load in the single total order of SeqCst operations
//! (`sync::load_after_publication`: a SeqCst read-modify-write and a SeqCst load, or a fence).
//! In that order, either
//!
//! - the writer's publication (or fence) comes before the reader's fence: the reader's check
//!   after its fence sees the writer's generation or a newer one, and completes; or
//! - the reader's fence comes first: the writer's load, after it in that order, sees the arming
//!   made before the fence, and the writer wakes the reader.
//!
//! The writer pays nothing for this beyond its publication: a SeqCst load is a plain load on x86
//! and AArch64, and a fence on Cortex-M0+ (no critical section; the reader does not write
//! `current` either, so the sole writer can publish with a plain store). The loom model
//! `a_waiter_never_misses_a_publication` checks this; built with
//! `--cfg snapmap_mutant="no_publish_order"` (the writer's load of `waiting` not ordered after
//! its publication: the classic store-buffer race) it must fail, and `cargo xtask loom` checks
//! that it does. (The reader's own fence is not the mutant's: on some targets, and under loom,
//! the pin inside its check fences too, but the handshake should not rest on how a pin
//! announces.)
//!
//! # Critical sections on Cortex-M0/M0+
//!
//! The snapshot `changed()` returns is pinned as every [`Reader::snapshot`] is: loads and stores,
//! no critical section. *Arming and disarming* are read-modify-writes (the waker handshake
//! and the `waiting` count), and a target without compare-and-swap does each in a critical
//! section: four per `changed()` that has to wait (two more for each further poll), none for one
//! that finds a newer version at once. A writer takes critical sections for waking only while somebody
//! waits (one per armed waker).

use core::future::Future;
use core::hash::BuildHasher;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::reader::Line;
use crate::snapshot::Release;
use crate::sync::{
    compare_exchange, fence, load_after_publication, AtomicUsize, Ordering, UnsafeCell, Writers,
};
use crate::{Error, Reader, SnapMap, Snapshot, Txn};

/// Nobody is registering or waking.
const IDLE: usize = 0;
/// The owner is storing its waker.
const REGISTERING: usize = 1;
/// A writer is taking the waker to wake it.
const WAKING: usize = 2;

/// A reader slot's waker, and whether that reader waits.
pub(crate) struct WakerSlot {
    /// `IDLE`, `REGISTERING`, `WAKING` or `REGISTERING | WAKING`, as in `AtomicWaker`.
    state: AtomicUsize,
    /// Written only while holding `REGISTERING` (the owner) or `WAKING` (one writer).
    waker: UnsafeCell<Option<Waker>>,
    /// 1 while the owner's `changed()` is pending: stored only by the owner.
    armed: AtomicUsize,
}

impl WakerSlot {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicUsize::new(IDLE),
            waker: UnsafeCell::new(None),
            armed: AtomicUsize::new(0),
        }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicUsize::new(IDLE),
            waker: UnsafeCell::new(None),
            armed: AtomicUsize::new(0),
        }
    }

    /// Stores `waker` to be woken by the next [`wake`](Self::wake) (the owner only). If a wake
    /// is in progress, wakes `waker` at once instead: the caller checks again when polled.
    fn register(&self, waker: &Waker) {
        match compare_exchange(&self.state, IDLE, REGISTERING) {
            Ok(_) => {
                // SAFETY: holding REGISTERING, we alone access the cell: a writer takes the
                // waker only after its CAS to WAKING found the state IDLE.
                self.waker.with_mut(|slot| unsafe {
                    match &*slot {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *slot = Some(waker.clone()),
                    }
                });
                // AcqRel (inside `compare_exchange`): Release hands the stored waker to the
                // writer whose CAS to WAKING reads IDLE from this.
                if compare_exchange(&self.state, REGISTERING, IDLE).is_err() {
                    // A writer set WAKING while we held REGISTERING, and left the waker to us.
                    // SAFETY: still REGISTERING: the cell is ours.
                    let woken = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                    // Nobody else changes the state while both bits are set: this succeeds.
                    let _ = compare_exchange(&self.state, REGISTERING | WAKING, IDLE);
                    if let Some(woken) = woken {
                        woken.wake();
                    }
                }
            }
            // A writer is waking this slot: it will find nothing to wake (or our old waker),
            // so wake the task ourselves; it checks again when polled.
            Err(_) => waker.wake_by_ref(),
        }
    }

    /// Wakes the registered waker, if any (any writer).
    fn wake(&self) {
        // A fetch_or of WAKING, as a CAS loop (thumbv6m has no fetch_or).
        // Relaxed: only a guess for the CAS, which orders what follows.
        let mut seen = self.state.load(Ordering::Relaxed);
        loop {
            match compare_exchange(&self.state, seen, seen | WAKING) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        if seen != IDLE {
            // The owner is registering (it will see WAKING and wake itself), or another writer
            // is waking (it takes the waker after our CAS, which its clearing CAS reads: our
            // publication happens-before its wake).
            return;
        }
        // SAFETY: we set WAKING on IDLE: the owner cannot take REGISTERING until we clear it.
        let woken = self.waker.with_mut(|slot| unsafe { (*slot).take() });
        // Other writers may CAS WAKING -> WAKING meanwhile; the value is still WAKING.
        while compare_exchange(&self.state, WAKING, IDLE).is_err() {}
        if let Some(woken) = woken {
            woken.wake();
        }
    }
}

/// The map's part: the waker slots and the count of armed ones.
pub(crate) struct Notify<const R: usize> {
    /// How many readers are armed: changed only by read-modify-writes, loaded by every
    /// publishing writer. On a line of its own, away from `current`, which readers load.
    waiting: Line,
    slots: [WakerSlot; R],
}

impl<const R: usize> Notify<R> {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            waiting: Line::new(),
            slots: [const { WakerSlot::new() }; R],
        }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            waiting: Line::new(),
            slots: core::array::from_fn(|_| WakerSlot::new()),
        }
    }

    /// Adds `delta` (1 or `usize::MAX`, that is -1) to the count of armed readers.
    fn add_waiting(&self, delta: usize) {
        let word = &self.waiting.word;
        // Relaxed: a guess for the CAS.
        let mut seen = word.load(Ordering::Relaxed);
        while let Err(now) = compare_exchange(word, seen, seen.wrapping_add(delta)) {
            seen = now;
        }
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    SnapMap<K, V, N, G, R, P, S>
{
    /// The writer's hook, called once after each successful publication (of version
    /// `version`): reports the version to the write (through `out`) and wakes the readers that
    /// wait in [`Reader::changed`]. While nobody waits, one load.
    #[inline(always)]
    pub(crate) fn published(&self, version: u64, out: &mut u64) {
        *out = version;
        // Ordered after our publication (see the module docs, "Why no wake-up is lost").
        if load_after_publication(&self.notify.waiting.word) != 0 {
            self.wake_waiters();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_waiters(&self) {
        for slot in &self.notify.slots {
            // Acquire: pairs with nothing it must (the count's edge covers the arming), but an
            // armed flag read here is then read with the reader's later stores ordered after.
            if slot.armed.load(Ordering::Acquire) != 0 {
                slot.wake();
            }
        }
    }

    /// The reader's half of the handshake: a fence between its arming and its check of
    /// `current` (see the module docs).
    fn order_with_publishers(&self) {
        fence(Ordering::SeqCst);
    }

    /// [`update`](Self::update), also returning the version it published: `Some(v)` when the
    /// change was published as generation `v`, `None` when it changed nothing (and so published
    /// nothing).
    ///
    /// The version comes from the publication itself, so it is this write's even if other
    /// writers publish right after it (`snapshot().version()` afterwards may be a later one, and
    /// costs a counted pin, a critical section on Cortex-M0/M0+). Send it to whoever needs to
    /// know that a reader has seen this write: a snapshot with `version() >= v` has.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u8, u32, 8> = SnapMap::new();
    /// let ((), v1) = map.update_versioned(|tx| tx.insert(1, 10).map(drop))?;
    /// let ((), v2) = map.update_versioned(|tx| tx.insert(2, 20).map(drop))?;
    /// assert_eq!((v1, v2), (Some(1), Some(2)));
    /// // Changes nothing: publishes nothing.
    /// let (_, none) = map.update_versioned(|tx| Ok(tx.get(&1).copied()))?;
    /// assert_eq!(none, None);
    /// assert!(map.snapshot().version() >= 2);
    /// # Ok::<(), snapmap_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`update`](Self::update).
    pub fn update_versioned<T>(
        &self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<(T, Option<u64>), Error>
    where
        K: core::hash::Hash + Eq + Clone,
        V: Clone,
        S: BuildHasher,
    {
        self.versioned(Writers::Many, crate::write::Wait::Spin, change)
    }

    /// [`try_update`](Self::try_update), also returning the version it published (as
    /// [`update_versioned`](Self::update_versioned)).
    ///
    /// # Errors
    /// As [`try_update`](Self::try_update).
    pub fn try_update_versioned<T>(
        &self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<(T, Option<u64>), Error>
    where
        K: core::hash::Hash + Eq + Clone,
        V: Clone,
        S: BuildHasher,
    {
        self.versioned(Writers::Many, crate::write::Wait::No, change)
    }

    /// A write of `change` and the version it published, if it published one.
    pub(crate) fn versioned<T>(
        &self,
        writers: Writers,
        wait: crate::write::Wait,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<(T, Option<u64>), Error>
    where
        K: core::hash::Hash + Eq + Clone,
        V: Clone,
        S: BuildHasher,
    {
        let mut version = 0;
        let result = self.publish_reporting(writers, wait, change, |_| {}, &mut version)?;
        Ok((result, (version != 0).then_some(version)))
    }
}

impl<'m, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    Reader<'m, K, V, N, G, R, P, S>
{
    /// Waits for a change: completes with a snapshot of a version newer than the one the last
    /// `changed()` returned (for a new reader, newer than version 0, the empty map: as the first
    /// `changed()` of an embassy-sync `Watch` receiver, it completes at once if anything was
    /// ever written). Versions published in between coalesce: a reader that awaits less often
    /// than writers publish sees the latest, never a stale one, and never misses that a change
    /// happened.
    ///
    /// Every publishing write wakes every waiting reader, on any core or thread; the writer pays
    /// one load while nobody waits. The snapshot is pinned as [`snapshot`](Self::snapshot) pins
    /// (no critical section on any target); waiting itself does read-modify-writes, which on
    /// Cortex-M0/M0+ take critical sections (see the module docs of `notify`: four per
    /// wait that does not complete at once). Dropping the future stops waiting.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// # fn block_on<F: core::future::Future>(f: F) -> F::Output {
    /// #     use core::task::{Context, Poll, Waker};
    /// #     let mut f = core::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// static MAP: SnapMap<u8, u32, 8> = SnapMap::new();
    /// let mut reader = MAP.reader().unwrap();
    /// MAP.insert(1, 10).unwrap();
    /// MAP.insert(1, 11).unwrap();
    /// // In a task: `let snapshot = reader.changed().await;`
    /// let snapshot = block_on(reader.changed());
    /// assert_eq!((snapshot.version(), snapshot.get(&1)), (2, Some(&11))); // 1 and 2 coalesced
    /// ```
    pub fn changed(&mut self) -> Changed<'_, 'm, K, V, N, G, R, P, S> {
        Changed {
            reader: Some(self),
            armed: false,
        }
    }

    /// The version of the last snapshot [`changed`](Self::changed) returned (0 before the first).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    fn waker_slot(&self) -> &'m WakerSlot {
        &self.map.notify.slots[self.slot]
    }

    /// A snapshot, if its version is newer than `seen`.
    fn newer(&mut self) -> Option<Snapshot<'_, K, V, N, S>> {
        let seen = self.seen;
        let snapshot = self.snapshot();
        let version = snapshot.version();
        (version > seen).then_some(snapshot)
    }

    /// [`snapshot`](Self::snapshot), recording its version as seen.
    fn snapshot_marking_seen(&mut self) -> Snapshot<'_, K, V, N, S> {
        // Relaxed: only a guess, announced and validated by `pin_from` (as in `snapshot`).
        let guess = self.map.current.load(Ordering::Relaxed);
        let generation = self.map.pin_from(self.slot, guess);
        // SAFETY: pinned by our hazard, just validated.
        self.seen = unsafe { self.map.body(generation) }.version;
        let hazard = self.map.readers[self.slot].hazard();
        // SAFETY: as in `Reader::snapshot`: `pin_from` validated `generation` through our
        // hazard, which only the snapshot's drop or our next pin (after it) changes.
        unsafe { self.map.pinned(generation, Release::Hazard(hazard)) }
    }

    fn arm(&self) {
        let slot = self.waker_slot();
        // Release: ordered before the count's RMW below (AcqRel), which carries it.
        slot.armed.store(1, Ordering::Release);
        self.map.notify.add_waiting(1);
    }

    fn disarm(&self) {
        // Only the owner stores it. Release: a writer that sees 0 skips us, which is right once
        // we stopped waiting.
        self.waker_slot().armed.store(0, Ordering::Release);
        self.map.notify.add_waiting(usize::MAX);
    }
}

/// The future of [`Reader::changed`]: completes with a [`Snapshot`] newer than the reader's
/// last.
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'r, 'm, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
{
    reader: Option<&'r mut Reader<'m, K, V, N, G, R, P, S>>,
    armed: bool,
}

impl<'r, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> Future
    for Changed<'r, '_, K, V, N, G, R, P, S>
{
    type Output = Snapshot<'r, K, V, N, S>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(reader) = this.reader.as_deref_mut() else {
            panic!("`changed()` polled after it completed");
        };
        if reader.newer().is_none() {
            if !this.armed {
                // Register before arming: a writer that sees us armed finds our waker.
                reader.waker_slot().register(cx.waker());
                reader.arm();
                this.armed = true;
            } else {
                reader.waker_slot().register(cx.waker());
            }
            reader.map.order_with_publishers();
            if reader.newer().is_none() {
                return Poll::Pending;
            }
        }
        if this.armed {
            reader.disarm();
            this.armed = false;
        }
        let reader = this.reader.take().expect("checked above");
        Poll::Ready(reader.snapshot_marking_seen())
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> Drop
    for Changed<'_, '_, K, V, N, G, R, P, S>
{
    fn drop(&mut self) {
        if let (true, Some(reader)) = (self.armed, self.reader.as_deref()) {
            reader.disarm();
        }
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> core::fmt::Debug
    for Changed<'_, '_, K, V, N, G, R, P, S>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Changed")
            .field("armed", &self.armed)
            .finish()
    }
}
