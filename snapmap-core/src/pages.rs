//! [`Pool`]: the static pool of table pages that generations share, and the rule that says when
//! a page may be reused.
//!
//! # The model (issue 10: generations that share what they did not change)
//!
//! **Pages.** The table's `N` slots are cut into fixed-size pages. A generation is no longer a
//! table: it is a version and an *index*, one page number per page of the table. Every page
//! lives in one static pool sized at compile time: one table's worth, plus spares. A write
//! copies only the pages it changes into spare pages, builds its index from its base's with those
//! page numbers replaced, and publishes the index as today (claim a generation slot, CAS
//! `current`). Every page it did not change is shared with the base, and with every older
//! generation that still has it.
//!
//! **Retiring.** History is a line: each published generation is built from the one it replaces
//! (the base pin makes the CAS free of ABA). So a page is in a contiguous run of versions, from
//! the one that wrote it to the one before the publication that replaced it. The writer whose
//! CAS published version `v` *retires* the pages `v` replaced, stamping each with `v`: a page
//! stamped `v` is in no generation of version `v` or later, and no later generation can get it
//! back (they are all built from `v` or its successors).
//!
//! **Reuse.** A writer may claim a retired page stamped `v` only if `v <= oldest`, where
//! `oldest` is the lowest version any reader or writer may still read. The writer computes it
//! with the scan it already makes to claim a generation slot: after the SeqCst fence that follows
//! its base pin's validation, the minimum of its base's version and the version of every
//! generation slot a pin count or a hazard word names (read as below). No reference counts, nothing on the read
//! path: readers still only load and store their own hazard word.
//!
//! Why it is safe, for a reader that reads page `x` (stamped `v`) through the generation it
//! pinned, of version `u < v` (the only generations that have `x`). `oldest` is at most the base's
//! version, so the publication of `v` precedes the base's in `current`'s modification order; every
//! publication is a read-modify-write of `current`, so the base pin's Acquire validation
//! synchronizes with it, and it happens-before the writer's fence. In the single total order S of
//! SeqCst operations, either
//! - the reader's announcement (with its fence) precedes the writer's fence: the writer's scan
//!   sees the hazard or count, with a version of `u` or lower (see below), or a later Release
//!   store of that reader, which carries its reads with it; so `oldest <= u < v` and `x` is not
//!   reused; or
//! - the writer's fence precedes it: the reader's validating SeqCst load, after the fence in S,
//!   cannot read a value of `current` older than the publication of `v`, which happens-before
//!   that fence (C++20 [atomics.order] p4, second case). So it pinned a version `>= v`, which does
//!   not have `x`.
//!
//! The fence must follow the base pin's validation: the base pin's own fence precedes it and does
//! not do. Loom's SeqCst fence is stronger than C++20's and cannot tell the two apart, so the model
//! below cannot catch that mistake; this argument is the proof, the model its check.
//!
//! **Which version a pin names.** A hazard word or a pin count names a generation *slot*, and
//! slots are reused: a scan may read a pinner's old hazard on slot `s` (a pin since ended, whose
//! end the scan has not synchronized with) while `s` already holds a newer generation. (The loom
//! model found exactly that when the scan looked the version up after the hazard.) So each slot
//! carries its version in an atomic word, stored with Release by the slot's claimer after its
//! own scan, and a scan loads every slot's version word with Acquire *before* any hazard or
//! count. If it loads a claimer's new version, it synchronizes with that claimer, whose scan saw
//! no pin on `s`; every hazard or count it reads for `s` afterwards is no older than what that
//! scan saw, so it is a pin on the new generation or a stale one (a pin that will fail to
//! validate). If it loads an older version, that is lower still. Extra or lower values only
//! lower a minimum: stale pins are harmless.
//!
//! On 32-bit targets the version word holds the version's low bits, and a writer widens them
//! around its base's version. That is exact because the pool bounds how far apart the versions
//! anyone can still read are: while version `u` is pinned, every publication retires at least
//! one page that cannot be reused before that pin ends, so fewer than `P` (the pool's pages)
//! publications follow `u`; a compile-time check keeps `P` far below 2^31.
//!
//! A page a writer claimed but never published (its change failed, or it lost the race and
//! rebuilds) was reachable from no published generation: it goes straight back to FREE.
//!
//! **Ownership of a page's stamp.** Only the state word is shared. The stamp is written by the
//! one writer that retires the page (exactly one publication replaces it) before its Release
//! store of RETIRED, and read by a claimer only after its Acquire CAS RETIRED -> TAKEN made the
//! page its own; a claimer that finds the stamp too new stores RETIRED back. So the stamp is a
//! plain `u64`, with no wrap-around to reason about on 32-bit targets, and no ABA: the
//! comparison is made on the page the claimer holds.
//!
//! **What pins cost now.** A pinned generation holds its slot, as today, and the pages it has
//! that `current` does not: a few for a pin a few versions old, up to a whole table for one held
//! across many writes. Spare pages beyond one table bound what writers can copy while old
//! generations are pinned. A write that finds no page it may claim returns an error from a
//! `try_` form and waits in a blocking one (for a pin to move on, as it waits for a generation
//! slot today); it never claims a page a pinned generation can reach.
//!
//! That changes what a registered [`Reader`](crate::Reader)'s *sticky* pin costs (kept after
//! its snapshot drops, so that a read of an unchanged map announces nothing). Today it holds one
//! slot, which `G >= R + 2` pays for; with pages it would also hold every page its generation has
//! that `current` no longer has, and an idle reader would hold them for ever. Either the pin
//! ends when the snapshot drops (one Release store; the next read announces again), or it stays
//! sticky and writers may wait for a reader that idles across many writes (unless it calls
//! [`Reader::unpin`](crate::Reader::unpin)). Measured with the first, unsticky: M33
//! `Reader::get` 60.0 -> 65.0 instructions; RP2040 170.9 -> 171.9 cycles on one core, but
//! medians 152 -> 193 and 142 -> 184 cycles on core 1 while core 0 writes. Undecided.
//!
//! **What replaces the change logs.** A write copies the pages it changes and shares the rest,
//! so no copy has to be brought up to date: the logs, and the full copies when they overflow, go.
//!
//! # Status
//!
//! This module holds the pool and its reuse rule, proven by the unit tests below and by two loom
//! models (a reader, and a writer's base pin, holding a page another writer retires), which the
//! mutant `early_page_reuse` (ignore the stamp) makes fail. The map does not use it yet:
//! generations are still whole tables with change logs.

// Step 1 of issue 10: the pool and its reuse rule, proven alone before the map is moved onto it.
#![cfg_attr(loom, allow(dead_code))]

use crate::sync::{compare_exchange, AtomicUsize, Ordering, UnsafeCell};

/// Page states. A page moves FREE -> TAKEN when a writer claims it, stays TAKEN while that writer
/// fills it and while published generations have it, and becomes RETIRED when the publication
/// that replaced it is made, or FREE again if it was never published. A RETIRED page is claimed
/// RETIRED -> TAKEN, and given back (stored RETIRED again) if its stamp is too new.
const FREE: usize = 0;
const TAKEN: usize = 1;
const RETIRED: usize = 2;

struct Page<T> {
    /// FREE / TAKEN / RETIRED: the only word shared between writers.
    state: AtomicUsize,
    /// The version whose publication replaced the page; accessed only by the writer that owns
    /// the state (see the module docs).
    stamp: UnsafeCell<u64>,
    /// The page's contents: written only by the writer that claimed it, before publishing it;
    /// read by anyone whose pin reaches it.
    data: UnsafeCell<T>,
}

/// `P` pages of `T`, shared by the generations of one map.
pub(crate) struct Pool<T, const P: usize> {
    pages: [Page<T>; P],
    /// Where the next claim starts looking: pages are taken in rotation, so the first candidate
    /// is the least recently retired, the one most likely to be reusable. Only a hint.
    next: AtomicUsize,
}

impl<T, const P: usize> Pool<T, P> {
    /// Keeps 32-bit version words exact (see the module docs): fewer than 2^30 pages.
    const SIZE_OK: () = assert!(P < 1 << 30, "too many pages");

    /// A pool whose pages hold `init()` and are all FREE.
    pub(crate) fn new(mut init: impl FnMut() -> T) -> Self {
        let () = Self::SIZE_OK;
        Self {
            pages: core::array::from_fn(|_| Page {
                state: AtomicUsize::new(FREE),
                stamp: UnsafeCell::new(0),
                data: UnsafeCell::new(init()),
            }),
            next: AtomicUsize::new(0),
        }
    }

    /// Marks page `id` TAKEN without a claim: for the pages of the initial generation, before
    /// the pool is shared (`&mut self`).
    pub(crate) fn take_initial(&mut self, id: usize) {
        // Relaxed: `&mut self`, nobody else sees the pool yet.
        self.pages[id].state.store(TAKEN, Ordering::Relaxed);
    }

    /// Claims a page that no generation of version `oldest` or later can reach, and that no
    /// reader of an older one can (the caller computed `oldest` as the module docs say): a FREE
    /// page, or a RETIRED one stamped at most `oldest`. `None` if there is none.
    pub(crate) fn try_claim(&self, oldest: u64) -> Option<usize> {
        // Relaxed: a hint; any start is correct.
        let start = self.next.load(Ordering::Relaxed);
        let id = (0..P)
            .map(|step| (start + step) % P)
            .find(|&id| self.try_claim_page(id, oldest))?;
        self.next.store((id + 1) % P, Ordering::Relaxed);
        Some(id)
    }

    fn try_claim_page(&self, id: usize, oldest: u64) -> bool {
        let page = &self.pages[id];
        // Relaxed pre-check: skip taken pages without a read-modify-write.
        let seen = page.state.load(Ordering::Relaxed);
        if seen == TAKEN {
            return false;
        }
        // Acquire on success: synchronizes with the Release store that freed or retired the
        // page, so the last writer's accesses, the readers' reads that the caller's scan ordered
        // before it, and the retirer's stamp all happen-before what we do next.
        if compare_exchange(&page.state, seen, TAKEN).is_err() {
            return false;
        }
        if seen == FREE {
            return true;
        }
        // SAFETY: the page is ours (our CAS took it from RETIRED), so nobody else accesses its
        // stamp; the retirer's write happens-before our CAS.
        let stamp = page.stamp.with(|stamp| unsafe { *stamp });
        // The `early_page_reuse` mutant (loom runs only) reuses any retired page, to show that
        // the loom model catches a reader's read of a page reused under it.
        #[cfg(snapmap_mutant = "early_page_reuse")]
        let _ = (stamp, oldest);
        #[cfg(not(snapmap_mutant = "early_page_reuse"))]
        if stamp > oldest {
            // Still reachable from a generation someone may read. Release: hands on what we
            // acquired to the next claimer.
            page.state.store(RETIRED, Ordering::Release);
            return false;
        }
        true
    }

    /// Gives back page `id`, claimed by the caller and reachable from no published generation.
    /// Release: the caller's writes to it happen-before the next claimer's.
    pub(crate) fn give_back(&self, id: usize) {
        self.pages[id].state.store(FREE, Ordering::Release);
    }

    /// Retires page `id`: the caller's publication of `version` replaced it. Only the writer
    /// whose CAS published `version` retires the pages it replaced, each once.
    pub(crate) fn retire(&self, id: usize, version: u64) {
        let page = &self.pages[id];
        // SAFETY: the page is TAKEN and only its retirer, the caller, touches its stamp until the
        // Release store below hands it to a claimer.
        page.stamp.with_mut(|stamp| unsafe { *stamp = version });
        // Release: the stamp happens-before the Acquire CAS of whoever claims the page.
        page.state.store(RETIRED, Ordering::Release);
    }

    /// Reads page `id` with `f`.
    ///
    /// # Safety
    /// The page must be reachable from a generation the caller has pinned (a validated hazard
    /// or count that stands until this returns), or claimed by the caller.
    pub(crate) unsafe fn read<R>(&self, id: usize, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: by the caller's contract the page is published and immutable while pinned (or
        // the caller's own), so no write races this read.
        self.pages[id].data.with(|data| f(unsafe { &*data }))
    }

    /// Writes page `id` with `f`.
    ///
    /// # Safety
    /// The page must be claimed by the caller and not yet published.
    pub(crate) unsafe fn write<R>(&self, id: usize, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: by the caller's contract nobody else can reach the page.
        self.pages[id]
            .data
            .with_mut(|data| f(unsafe { &mut *data }))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Page 0 is the initial generation's; the other two are spares.
    fn pool() -> Pool<u64, 3> {
        let mut pool = Pool::new(|| 0);
        pool.take_initial(0);
        pool
    }

    #[test]
    fn free_pages_are_claimed_in_rotation_and_given_back() {
        let pool = pool();
        assert_eq!(pool.try_claim(0), Some(1));
        assert_eq!(pool.try_claim(0), Some(2));
        assert_eq!(pool.try_claim(0), None, "page 0 is taken, 1 and 2 claimed");
        pool.give_back(1);
        assert_eq!(pool.try_claim(0), Some(1));
    }

    /// A page retired by the publication of version 5 is in every generation before 5: it is
    /// reused only once the oldest version anyone may read is 5 or later.
    #[test]
    fn a_retired_page_waits_for_the_oldest_pin_to_reach_its_stamp() {
        let pool = pool();
        let (one, two) = (pool.try_claim(0).unwrap(), pool.try_claim(0).unwrap());
        pool.retire(0, 5);
        for oldest in 0..5 {
            assert_eq!(pool.try_claim(oldest), None, "reused at oldest = {oldest}");
        }
        assert_eq!(pool.try_claim(5), Some(0));
        // Retired again at 9, then reused past it.
        pool.retire(0, 9);
        assert_eq!(pool.try_claim(8), None);
        assert_eq!(pool.try_claim(u64::MAX), Some(0));
        // SAFETY: pages `one` and `two` are claimed here and never published.
        unsafe {
            pool.write(one, |page| *page = 11);
            assert_eq!(pool.read(one, |page| *page), 11);
        }
        pool.give_back(two);
        assert_eq!(pool.try_claim(0), Some(two));
    }

    /// Stamps are full 64-bit versions: a page retired past 2^32 is not mistaken for an old one.
    #[test]
    fn stamps_do_not_wrap() {
        let pool = pool();
        pool.retire(0, (1 << 32) + 7);
        assert_eq!(pool.try_claim(7), Some(1));
        assert_eq!(pool.try_claim(7), Some(2));
        assert_eq!(pool.try_claim(7), None);
        assert_eq!(pool.try_claim((1 << 32) + 7), Some(0));
    }
}

/// The loom models of page reuse against a reader, or a writer, holding an old generation.
///
/// A miniature of the map's protocol with the real pool: generations are an index of two pages
/// (page 1 shared by every generation, page 0 rewritten by every write with its base's value
/// plus one, so it always equals the generation's version) in generation slots published by CAS
/// of `current`. Readers and writers' base pins use hazard words (announce, SeqCst fence,
/// validate, as `Reader` does); a writer claims a slot (CAS, fence, scan), takes `oldest` from
/// that scan, claims a page, and after a lost race gives page and slot back and starts over.
/// With the mutant `early_page_reuse` a page retired under a pin is overwritten while the pinned
/// generation is read, which loom reports.
#[cfg(all(test, loom))]
mod model {
    use super::*;
    use crate::sync::fence;
    use loom::sync::Arc;

    const IDLE: usize = usize::MAX;

    struct Gen {
        /// Writers only (claims); FREE = 0, TAKEN = 1 as for pages.
        state: AtomicUsize,
        /// The version, for the writers' scan (see the module docs: any value is safe there).
        version_word: AtomicUsize,
        /// (version, index): written by the slot's claimer before publishing it.
        body: UnsafeCell<(u64, [usize; 2])>,
    }

    /// `G` generation slots, `H` hazard words, `P` pages (two for the initial generation).
    struct Mini<const G: usize, const H: usize, const P: usize> {
        current: AtomicUsize,
        gens: [Gen; G],
        hazards: [AtomicUsize; H],
        /// A page holds the version that wrote it.
        pool: Pool<u64, P>,
    }

    impl<const G: usize, const H: usize, const P: usize> Mini<G, H, P> {
        fn new() -> Self {
            let mut pool = Pool::new(|| 0);
            pool.take_initial(0);
            pool.take_initial(1);
            Self {
                current: AtomicUsize::new(0),
                gens: core::array::from_fn(|s| Gen {
                    state: AtomicUsize::new(if s == 0 { TAKEN } else { FREE }),
                    version_word: AtomicUsize::new(0),
                    body: UnsafeCell::new((0, [0, 1])),
                }),
                hazards: core::array::from_fn(|_| AtomicUsize::new(IDLE)),
                pool,
            }
        }

        /// Pins the current generation through hazard `h` (announce, fence, validate).
        fn pin(&self, h: usize) -> usize {
            let mut seen = self.current.load(Ordering::Acquire);
            loop {
                self.hazards[h].store(seen, Ordering::Release);
                fence(Ordering::SeqCst);
                let now = self.current.load(Ordering::SeqCst);
                if now == seen {
                    return seen;
                }
                seen = now;
            }
        }

        fn unpin(&self, h: usize) {
            self.hazards[h].store(IDLE, Ordering::Release);
        }

        fn body(&self, slot: usize) -> (u64, [usize; 2]) {
            // SAFETY: callers read only a slot they pinned or claimed.
            self.gens[slot].body.with(|body| unsafe { *body })
        }

        /// Reads page 0 of pinned generation `slot`.
        fn page0(&self, slot: usize) -> u64 {
            // SAFETY: the page is in the pinned generation.
            unsafe { self.pool.read(self.body(slot).1[0], |p| *p) }
        }

        /// Reads generation `slot` (pinned) and checks it: page 0 holds the generation's version,
        /// page 1 still the initial 0.
        fn check(&self, slot: usize) {
            let (version, index) = self.body(slot);
            // SAFETY: both pages are in the pinned generation.
            let pages = unsafe {
                [
                    self.pool.read(index[0], |p| *p),
                    self.pool.read(index[1], |p| *p),
                ]
            };
            assert_eq!(
                pages,
                [version, 0],
                "generation {version} reads a reused page"
            );
        }

        /// Claims a generation slot other than `base` that no hazard names, as the map does:
        /// CAS, fence, scan. The scan that accepts it also gives `oldest`: the lowest of
        /// `version` (the base's) and every version a hazard names.
        fn claim_slot(&self, base: usize, version: u64) -> Option<(usize, u64)> {
            (0..G).filter(|&s| s != base).find_map(|s| {
                compare_exchange(&self.gens[s].state, FREE, TAKEN).ok()?;
                fence(Ordering::SeqCst);
                // Every slot's version first, then the hazards (see the module docs).
                let versions: [usize; G] =
                    core::array::from_fn(|g| self.gens[g].version_word.load(Ordering::Acquire));
                let mut oldest = version;
                let mut pinned = false;
                for hazard in &self.hazards {
                    let named = hazard.load(Ordering::Acquire);
                    if named == IDLE {
                        continue;
                    }
                    pinned |= named == s;
                    oldest = oldest.min(versions[named] as u64);
                }
                if pinned {
                    self.gens[s].state.store(FREE, Ordering::Release);
                    return None;
                }
                Some((s, oldest))
            })
        }

        /// One write through hazard `h`: page 0 becomes its base's value plus one. Returns
        /// `false` if there was no generation slot or page to claim (a `try_` form's error).
        fn write(&self, h: usize) -> bool {
            loop {
                let base = self.pin(h);
                let (version, index) = self.body(base);
                let claimed = self.claim_slot(base, version).and_then(|(slot, oldest)| {
                    let page = self.pool.try_claim(oldest);
                    if page.is_none() {
                        self.gens[slot].state.store(FREE, Ordering::Release);
                    }
                    Some((slot, page?))
                });
                let Some((slot, page)) = claimed else {
                    self.unpin(h);
                    return false;
                };
                let new = self.page0(base) + 1;
                // SAFETY: the page and the slot are ours, unpublished.
                unsafe { self.pool.write(page, |p| *p = new) };
                self.gens[slot].body.with_mut(|body| {
                    // SAFETY: the generation slot was claimed above and is not published yet:
                    // no reader or other writer can reach its body while we fill it.
                    unsafe { *body = (new, [page, index[1]]) }
                });
                // Release, after our scan: see the module docs.
                self.gens[slot]
                    .version_word
                    .store(new as usize, Ordering::Release);
                if compare_exchange(&self.current, base, slot).is_ok() {
                    self.pool.retire(index[0], new);
                    self.gens[base].state.store(FREE, Ordering::Release);
                    self.unpin(h);
                    return true;
                }
                // Lost the race: nothing of ours was published.
                self.pool.give_back(page);
                self.gens[slot].state.store(FREE, Ordering::Release);
                self.unpin(h);
            }
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(f);
    }

    /// A reader pins version 0 while a writer publishes twice: the second write must find no
    /// page it may reuse (one spare, taken by the first), or find the reader gone.
    #[test]
    #[cfg_attr(
        snapmap_mutant = "early_page_reuse",
        should_panic(expected = "Causality violation")
    )]
    fn reader_holds_a_page_a_writer_retires() {
        model(|| {
            let map = Arc::new(Mini::<3, 2, 3>::new());
            let reader = {
                let map = map.clone();
                loom::thread::spawn(move || {
                    let slot = map.pin(0);
                    map.check(slot);
                    map.unpin(0);
                })
            };
            let wrote = [map.write(1), map.write(1)];
            reader.join().unwrap();
            assert!(wrote[0], "the first write has a spare page");
            let slot = map.pin(1);
            map.check(slot);
            assert_eq!(
                map.body(slot).0,
                wrote.iter().filter(|&&w| w).count() as u64
            );
        });
    }

    /// A writer's base pin protects the pages it copies from as a reader's pin does: one writer
    /// reads page 0 of its base while the other publishes twice. The race's loser starts over
    /// (giving its page back), and no write is lost.
    #[test]
    #[cfg_attr(snapmap_mutant = "early_page_reuse", should_panic)]
    fn writer_copies_a_page_another_writer_retires() {
        model(|| {
            let map = Arc::new(Mini::<4, 2, 4>::new());
            let other = {
                let map = map.clone();
                loom::thread::spawn(move || map.write(0))
            };
            let mine = [map.write(1), map.write(1)];
            let theirs = other.join().unwrap();
            let slot = map.pin(1);
            map.check(slot);
            let wrote = mine.iter().chain([&theirs]).filter(|&&w| w).count();
            assert_eq!(map.body(slot).0, wrote as u64, "a write was lost");
        });
    }
}
