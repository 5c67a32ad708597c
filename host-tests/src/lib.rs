//! Shared helpers for the host tests of `snapmap-core` (stress tests, property tests).
//!
//! - [`Tracked`]: a key/value wrapper that counts every construction (including clones) and
//!   every drop in process-wide counters, detects double drops and reads of dropped values
//!   (a canary word), and can be told to panic in `clone` or in `drop` (per thread), to test
//!   panic safety.
//!   Tests that use it serialize on [`tracking_lock`] and compare [`DropCounts`] before and after.
//! - [`scale`] / [`scaled`]: the `SNAPMAP_STRESS_SCALE` knob that sizes the stress tests.
//! - [`Quota`]: "everyone keeps working until everyone has done their share", so that readers
//!   and writers overlap for the whole run.
//! - [`Rng`]: a tiny deterministic PRNG for worker threads (no dependency, no locking).
//! - [`Watchdog`]: aborts the process with a message if a test hangs (a writer spinning forever
//!   is a failure, not a CI timeout).
//! - [`silence_injected_panics`]: keeps deliberately injected panics out of the test output.
//! - [`Violations`]: named counters of invariant violations, merged across threads and asserted
//!   to be zero at the end (so one run reports every kind of failure it saw, with counts).

/// The README's example, compiled and run as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExample;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------------------------

/// The environment variable that scales every stress test's operation counts (a float, default
/// `1.0`; the ThreadSanitizer run uses about `0.05`).
pub const SCALE_VAR: &str = "SNAPMAP_STRESS_SCALE";

/// The stress scale: `SNAPMAP_STRESS_SCALE` parsed as a positive finite float, `1.0` if unset.
///
/// # Panics
/// If the variable is set to anything else (a typo should not silently run the default size).
pub fn scale() -> f64 {
    // Cached in an atomic rather than a `OnceLock`: under ThreadSanitizer with an uninstrumented
    // std, `Once`'s synchronization is invisible and would be reported as a race. Racing threads
    // compute the same value, so a plain load/store cache is enough.
    static SCALE_BITS: AtomicU64 = AtomicU64::new(0);
    let cached = SCALE_BITS.load(Ordering::Relaxed);
    if cached != 0 {
        return f64::from_bits(cached);
    }
    let scale = match std::env::var(SCALE_VAR) {
        Err(std::env::VarError::NotPresent) => 1.0,
        Err(e) => panic!("{SCALE_VAR}: {e}"),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 => s,
            _ => panic!("{SCALE_VAR}={text:?}: expected a positive number such as 0.05 or 2"),
        },
    };
    SCALE_BITS.store(scale.to_bits(), Ordering::Relaxed);
    scale
}

/// `n` operations at scale 1.0, scaled by [`scale`] and rounded, but at least 1.
pub fn scaled(n: u64) -> u64 {
    ((n as f64) * scale()).round().max(1.0) as u64
}

// ---------------------------------------------------------------------------------------------
// Quota
// ---------------------------------------------------------------------------------------------

/// Coordinates worker threads that must overlap for the whole run: each has its own minimum
/// number of operations, and every one keeps going until *all* have reached theirs. So readers
/// never run alone after the writers finished (or the reverse), and the total is at least the
/// sum of the minimums.
#[derive(Debug)]
pub struct Quota {
    pending: AtomicUsize,
}

impl Quota {
    /// A quota for `workers` threads, each of which must create exactly one [`Share`].
    pub fn new(workers: usize) -> Self {
        Self {
            pending: AtomicUsize::new(workers),
        }
    }

    /// One worker's share: at least `minimum` operations.
    pub fn share(&self, minimum: u64) -> Share<'_> {
        Share {
            quota: self,
            minimum,
            done: 0,
            arrived: false,
        }
    }

    /// Whether every worker has done its minimum (or left: see [`Share`]'s `Drop`).
    pub fn all_done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }
}

/// One worker's progress towards its [`Quota`].
#[derive(Debug)]
pub struct Share<'q> {
    quota: &'q Quota,
    minimum: u64,
    done: u64,
    arrived: bool,
}

impl Share<'_> {
    /// Whether to do another operation: `false` once this worker has done its minimum and so has
    /// every other worker. Counts the operation it allows.
    pub fn keep_going(&mut self) -> bool {
        if !self.arrived && self.done >= self.minimum {
            self.arrived = true;
            self.quota.pending.fetch_sub(1, Ordering::AcqRel);
        }
        if self.arrived && self.quota.all_done() {
            return false;
        }
        self.done += 1;
        true
    }

    /// Operations done so far.
    pub fn done(&self) -> u64 {
        self.done
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        // A worker that leaves early (a panic, say) must not keep the others running.
        if !self.arrived {
            self.arrived = true;
            self.quota.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rng
// ---------------------------------------------------------------------------------------------

/// A small, fast, deterministic PRNG (SplitMix64) for worker threads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`), nearly uniform.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Tracked: drop counting
// ---------------------------------------------------------------------------------------------

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static BAD_DROPS: AtomicU64 = AtomicU64::new(0);

const ALIVE: u64 = 0xA11C_E0FF_1CE5_A1FE;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

/// The marker that [`Tracked::clone`] puts in its injected panics (see [`panic_on_clone_after`]).
pub const INJECTED_PANIC: &str = "snapmap-test: injected panic";

thread_local! {
    /// Clones this thread may still make before one panics (`None`: never).
    static CLONES_BEFORE_PANIC: Cell<Option<u64>> = const { Cell::new(None) };
    /// Drops this thread may still make before one panics (`None`: never).
    static DROPS_BEFORE_PANIC: Cell<Option<u64>> = const { Cell::new(None) };
}

/// A value that counts its constructions (`new` and every `clone`) and its drops in process-wide
/// counters ([`drop_counts`]), so a test can check that every key and value it gave a map, and
/// every copy the map made, was dropped exactly once.
///
/// A canary word is set on construction and overwritten on drop: dropping it twice is counted in
/// [`DropCounts::bad_drops`] (instead of being counted as a drop), and [`is_alive`](Self::is_alive)
/// tells whether a value read through a snapshot had been dropped already (a reclamation bug).
///
/// `Hash`, `Eq`, `Ord` and `Borrow<T>` go to the wrapped value, so a map keyed by `Tracked<u32>`
/// can be looked up with a plain `&u32`.
///
/// The counters are shared by the whole test binary: tests that use `Tracked` hold
/// [`tracking_lock`] so that their before/after counts do not mix.
pub struct Tracked<T> {
    value: T,
    canary: AtomicU64,
}

impl<T> Tracked<T> {
    /// Wraps `value`, counting one construction.
    pub fn new(value: T) -> Self {
        CREATED.fetch_add(1, Ordering::Relaxed);
        Self {
            value,
            canary: AtomicU64::new(ALIVE),
        }
    }

    /// Whether this value has been constructed and not dropped (reads the canary).
    pub fn is_alive(&self) -> bool {
        self.canary.load(Ordering::Relaxed) == ALIVE
    }

    /// The wrapped value.
    ///
    /// # Panics
    /// If the value was already dropped (a use after free in the code under test).
    pub fn get(&self) -> &T {
        assert!(self.is_alive(), "read of a dropped Tracked value");
        &self.value
    }
}

impl<T: Copy> Tracked<T> {
    /// A copy of the wrapped value (panics like [`get`](Self::get)).
    pub fn value(&self) -> T {
        *self.get()
    }
}

impl<T: Clone> Clone for Tracked<T> {
    /// Counts one construction. Panics instead (constructing nothing) if this thread armed
    /// [`panic_on_clone_after`] and has used up its clones.
    fn clone(&self) -> Self {
        CLONES_BEFORE_PANIC.with(|left| match left.get() {
            Some(0) => {
                left.set(None); // one panic per arming: the unwind may clone nothing, but be safe
                panic!("{INJECTED_PANIC} (Tracked::clone)");
            }
            Some(n) => left.set(Some(n - 1)),
            None => {}
        });
        Tracked::new(self.get().clone())
    }
}

impl<T> Drop for Tracked<T> {
    /// Counts one drop, then panics if this thread armed [`panic_on_drop_after`] and has used up
    /// its drops: the value counts as dropped either way (its fields are dropped by the unwind).
    fn drop(&mut self) {
        // swap, not load + store: makes the check-and-mark one step even if the code under test
        // raced two drops of the same value.
        if self.canary.swap(DEAD, Ordering::Relaxed) == ALIVE {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        } else {
            BAD_DROPS.fetch_add(1, Ordering::Relaxed);
        }
        // Drops made while a panic unwinds neither count down nor fire: a second panic would
        // abort the test binary.
        if std::thread::panicking() {
            return;
        }
        DROPS_BEFORE_PANIC.with(|left| match left.get() {
            Some(0) => {
                left.set(None);
                panic!("{INJECTED_PANIC} (Tracked::drop)");
            }
            Some(n) => left.set(Some(n - 1)),
            None => {}
        });
    }
}

impl<T: PartialEq> PartialEq for Tracked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
impl<T: Eq> Eq for Tracked<T> {}

impl<T: PartialOrd> PartialOrd for Tracked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.get().partial_cmp(other.get())
    }
}
impl<T: Ord> Ord for Tracked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.get().cmp(other.get())
    }
}

impl<T: Hash> Hash for Tracked<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.get().hash(state);
    }
}

impl<T> std::borrow::Borrow<T> for Tracked<T> {
    fn borrow(&self) -> &T {
        self.get()
    }
}

impl<T: fmt::Debug> fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_alive() {
            self.value.fmt(f)
        } else {
            write!(f, "<dropped {:?}>", self.value)
        }
    }
}

/// Makes the `n+1`-th [`Tracked::clone`] on this thread from now panic (so `n == 0` panics on the
/// next clone). The returned guard disarms it when dropped, if it has not fired.
pub fn panic_on_clone_after(n: u64) -> Bomb {
    Bomb::arm(&CLONES_BEFORE_PANIC, n)
}

/// Makes the `n+1`-th drop of a [`Tracked`] on this thread from now panic, after counting itself
/// as dropped (so `n == 0` panics on the next drop). Drops during an unwind are not counted. The
/// returned guard disarms it when dropped, if it has not fired.
pub fn panic_on_drop_after(n: u64) -> Bomb {
    Bomb::arm(&DROPS_BEFORE_PANIC, n)
}

/// Guard of [`panic_on_clone_after`] and [`panic_on_drop_after`]: one armed countdown of this
/// thread's, disarmed when the guard drops.
#[derive(Debug)]
pub struct Bomb {
    left: &'static std::thread::LocalKey<Cell<Option<u64>>>,
}

impl Bomb {
    fn arm(left: &'static std::thread::LocalKey<Cell<Option<u64>>>, n: u64) -> Self {
        left.with(|left| left.set(Some(n)));
        Self { left }
    }

    /// Whether the armed panic has fired.
    pub fn fired(&self) -> bool {
        self.left.with(|left| left.get().is_none())
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.left.with(|left| left.set(None));
    }
}

/// A reading of the [`Tracked`] counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Constructions, clones included.
    pub created: u64,
    /// Drops of live values.
    pub dropped: u64,
    /// Drops of values already dropped (must stay 0).
    pub bad_drops: u64,
}

impl DropCounts {
    /// Values constructed and not yet dropped (since `earlier`, if `self` is later).
    pub fn live_since(&self, earlier: &DropCounts) -> i64 {
        (self.created - earlier.created) as i64 - (self.dropped - earlier.dropped) as i64
    }

    /// Panics unless everything created since `earlier` has been dropped exactly once.
    pub fn assert_balanced_since(&self, earlier: &DropCounts, what: &str) {
        let created = self.created - earlier.created;
        let dropped = self.dropped - earlier.dropped;
        let bad = self.bad_drops - earlier.bad_drops;
        assert_eq!(bad, 0, "{what}: {bad} values dropped twice");
        assert_eq!(
            created, dropped,
            "{what}: {created} values created (clones included), {dropped} dropped"
        );
    }
}

/// The [`Tracked`] counters now.
pub fn drop_counts() -> DropCounts {
    DropCounts {
        created: CREATED.load(Ordering::SeqCst),
        dropped: DROPPED.load(Ordering::SeqCst),
        bad_drops: BAD_DROPS.load(Ordering::SeqCst),
    }
}

/// Serializes the tests of one binary that use [`Tracked`], whose counters are process-wide.
/// Poisoning is ignored: a failed test must not fail the next ones for the wrong reason.
pub fn tracking_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Panics and hangs
// ---------------------------------------------------------------------------------------------

/// Installs (once per process) a panic hook that stays silent for panics whose message starts
/// with [`INJECTED_PANIC`], and otherwise behaves like the previous hook. Injected panics are caught
/// by the tests; printing a backtrace for each would bury real failures.
pub fn silence_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            // `starts_with`, not `contains`: a test failure that quotes an injected panic (an
            // injected panic that escaped, say) must still be printed.
            if !message.starts_with(INJECTED_PANIC) {
                previous(info);
            }
        }));
    });
}

/// Aborts the whole process, with a message, if it is not dropped within a time limit: a
/// livelocked or deadlocked stress test then fails loudly instead of hanging the CI job.
///
/// Dropping it wakes and joins its thread, so the thread's exit is ordered before the test's end
/// (a detached thread exiting would release libtest's output capture unordered, which
/// ThreadSanitizer reports).
#[derive(Debug)]
pub struct Watchdog {
    // A box of our own, freed once the thread is joined, rather than an `Arc`: `Arc`'s drop
    // synchronizes through a fence that ThreadSanitizer does not model, which it would report as
    // a race. (Not leaked either: Miri reports leaks.)
    done: *mut AtomicBool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts a watchdog for the test `name`, which must finish within `limit`.
    pub fn new(name: &'static str, limit: Duration) -> Self {
        let done = Box::into_raw(Box::new(AtomicBool::new(false)));
        // SAFETY: `done` stays allocated until `drop` frees it, after joining this thread.
        let flag: &'static AtomicBool = unsafe { &*done };
        let thread = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + limit;
            while !flag.load(Ordering::Acquire) {
                let now = std::time::Instant::now();
                if now >= deadline {
                    eprintln!(
                        "watchdog: test `{name}` still running after {limit:?}: hung, aborting"
                    );
                    std::process::abort();
                }
                std::thread::park_timeout(deadline - now);
            }
        });
        Self {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` and freed only below.
        unsafe { (*self.done).store(true, Ordering::Release) };
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        // SAFETY: the thread, the only other user of `done`, has been joined (`thread` is set
        // in `new` and taken only here).
        drop(unsafe { Box::from_raw(self.done) });
    }
}

// ---------------------------------------------------------------------------------------------
// Violations
// ---------------------------------------------------------------------------------------------

/// Counts of invariant violations by kind, kept per thread (no synchronization on the hot path)
/// and merged at the end. Checking every snapshot and counting, rather than panicking at the
/// first failure, keeps the other threads' view of the run intact and reports how often each
/// kind of violation happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    counts: BTreeMap<&'static str, u64>,
    first: BTreeMap<&'static str, String>,
}

impl Violations {
    /// No violation yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one violation of `kind`, with `detail` kept for the first of each kind.
    pub fn record(&mut self, kind: &'static str, detail: impl FnOnce() -> String) {
        let count = self.counts.entry(kind).or_insert(0);
        if *count == 0 {
            self.first.insert(kind, detail());
        }
        *count += 1;
    }

    /// Records a violation of `kind` unless `ok`. Returns `ok`.
    pub fn check(&mut self, ok: bool, kind: &'static str, detail: impl FnOnce() -> String) -> bool {
        if !ok {
            self.record(kind, detail);
        }
        ok
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Violations) {
        for (kind, count) in other.counts {
            *self.counts.entry(kind).or_insert(0) += count;
        }
        for (kind, detail) in other.first {
            self.first.entry(kind).or_insert(detail);
        }
    }

    /// Total violations of every kind.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Panics, listing every kind with its count and first occurrence, unless there were none.
    pub fn assert_none(&self, test: &str) {
        if self.total() != 0 {
            let mut message = format!("{test}: {} invariant violations:", self.total());
            for (kind, count) in &self.counts {
                message.push_str(&format!(
                    "\n  {kind}: {count} (first: {})",
                    self.first[kind]
                ));
            }
            panic!("{message}");
        }
    }
}
