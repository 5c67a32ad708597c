//! The write path: pin a base, claim a generation slot (its scan also tells which spare pages
//! may be reused), copy the base's index, change the copy (copying each page it changes), publish
//! it by compare-and-swap, retire its base and the pages it replaced. The sole writer (see
//! `writer`) takes the same path without the pin, the claims' compare-and-swaps and the race:
//! `publish_sole`.

use crate::generation::{Body, FREE, IN_USE, UNUSED};
use crate::pages::{Claims, Pins};
use crate::reader::{pinning, IDLE, UNCLAIMED};
use crate::reentry;
use crate::sync::{
    announce_count, compare_exchange, copy_cells, fence, publish_exchange, publish_store,
    release_count, spin_wait, AtomicUsize, Ordering, TurnWord, Writers,
};
use crate::table::{Shape, TableMut};
use crate::{Error, SnapMap, Txn};
use core::borrow::Borrow;
use core::cell::Cell;
use core::hash::{BuildHasher, Hash};
use core::mem::MaybeUninit;

/// Whether a writer that finds no free slot or page returns an error or waits for one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    No,
    Spin,
}

/// How one attempt at a write ended.
enum Attempt<T> {
    Done(Result<T, Error>),
    /// Another writer published first: its race was lost, or it retired pages our scan
    /// predates. Start over on a fresh base and scan.
    Lost,
    /// Out of pages: wait for snapshots to release some, then start over.
    WaitForPages,
}

/// Attempts a write may lose to other writers in a row before it takes the turn.
pub(crate) const PATIENCE: u32 = 3;

/// A write's claim on the map's *turn* (see [`TurnWord`]), which a write that keeps losing to
/// other writers takes so that it lands (see `publish_once`): while one write holds it, the
/// others start no attempt (blocking forms wait; `try_` forms return [`Error::Contended`]). Held
/// at most until the write that took it returns (dropping this gives it back, on unwind too).
///
/// The holder is named by a token, the address of a local of its write (unique while it runs). A
/// writer that sees a stale value at worst starts one more attempt, which costs the holder one
/// more race.
struct Turn<'m> {
    word: &'m TurnWord,
    token: usize,
    mine: bool,
    /// Attempts lost to other writers so far.
    losses: u32,
}

impl<'m> Turn<'m> {
    fn new<L>(word: &'m TurnWord, local: &L) -> Self {
        Self {
            word,
            token: (local as *const L).addr(),
            mine: false,
            losses: 0,
        }
    }

    /// Whether another write has the turn. A plain load: what a writer pays for the turn while
    /// nobody starves.
    fn others_have_it(&self) -> bool {
        let holder = self.word.holder();
        holder != 0 && holder != self.token
    }

    /// Returns once no other write holds the turn (or at once with `Err`, for a `try_` form).
    fn wait_for_others(&self, wait: Wait) -> Result<(), Error> {
        let mut spins = 0;
        loop {
            if !self.others_have_it() {
                return Ok(());
            }
            if wait == Wait::No {
                return Err(Error::Contended);
            }
            spin_wait(&mut spins);
        }
    }

    /// Counts an attempt lost to another writer; after [`PATIENCE`] of them, takes the turn if
    /// nobody holds it (if someone does, we wait for it as the others do).
    fn lose(&mut self) {
        self.losses += 1;
        if self.losses >= PATIENCE && !self.mine {
            self.mine = self.word.take(self.token);
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.mine {
            self.word.give_back();
        }
    }
}

/// The writer's base pin: a counted pin (see `SnapMap::pin_counted`) on the generation it copies
/// from, moved to the new current generation after each lost race. Dropping it (on success,
/// error or unwind) ends the pin.
struct BasePin<'m, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> {
    map: &'m SnapMap<K, V, N, G, R, P, S>,
    base: usize,
}

impl<'m, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    BasePin<'m, K, V, N, G, R, P, S>
{
    fn new(map: &'m SnapMap<K, V, N, G, R, P, S>) -> Self {
        let base = Self::pin(map);
        Self { map, base }
    }

    /// Moves the pin to the current generation; returns it.
    fn repin(&mut self) -> usize {
        // The new pin first: if it panics (see `MAX_PINS`), the old one is still ours to end.
        let base = Self::pin(self.map);
        Self::unpin(self.map, core::mem::replace(&mut self.base, base));
        base
    }

    fn pin(map: &SnapMap<K, V, N, G, R, P, S>) -> usize {
        // The `no_base_pin` mutant (loom runs only) reads `current` without a pin, to show that
        // the models catch the lost updates that follow (writer A copies from a base that
        // writer B is overwriting).
        #[cfg(snapmap_mutant = "no_base_pin")]
        return map.current.load(Ordering::Acquire);
        #[cfg(not(snapmap_mutant = "no_base_pin"))]
        map.pin_counted()
    }

    /// The count this pin holds, for the publishing CAS to end it in its own critical section
    /// (none under the `no_base_pin` mutant, which holds none).
    fn count(&self) -> Option<&'m AtomicUsize> {
        #[cfg(snapmap_mutant = "no_base_pin")]
        return None;
        #[cfg(not(snapmap_mutant = "no_base_pin"))]
        Some(&self.map.pins[self.base].word)
    }

    fn unpin(map: &SnapMap<K, V, N, G, R, P, S>, base: usize) {
        #[cfg(snapmap_mutant = "no_base_pin")]
        let _ = (map, base);
        #[cfg(not(snapmap_mutant = "no_base_pin"))]
        map.unpin_counted(base);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> Drop
    for BasePin<'_, K, V, N, G, R, P, S>
{
    fn drop(&mut self) {
        Self::unpin(self.map, self.base);
    }
}

/// A generation slot claimed (FREE -> IN_USE) by this writer and not published. Dropping it (on
/// error, a change that changed nothing, or unwind) frees the slot; publishing forgets it.
struct Claim<'m, K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> {
    map: &'m SnapMap<K, V, N, G, R, P, S>,
    index: usize,
    /// The generation slots the claiming scan found pinned, one bit each, for the pages' reuse
    /// rule (see `pages`).
    pinned: u32,
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S> Drop
    for Claim<'_, K, V, N, G, R, P, S>
{
    fn drop(&mut self) {
        // Release: our writes to the slot (a partial copy, say) happen-before the next claimer's
        // Acquire CAS, so its overwrite does not race them.
        self.map.generations[self.index]
            .state
            .store(FREE, Ordering::Release);
    }
}

impl<K, V, const N: usize, const G: usize, const R: usize, const P: usize, S>
    SnapMap<K, V, N, G, R, P, S>
{
    /// Claims a free slot to write the successor of the pinned `base` into, re-pinning the
    /// current generation as the base after each failed attempt. Returns the base's index with
    /// the claim.
    fn claim_generation<'m>(
        &'m self,
        pin: &mut BasePin<'m, K, V, N, G, R, P, S>,
        wait: Wait,
    ) -> Result<(usize, Claim<'m, K, V, N, G, R, P, S>), Error> {
        let mut spins = 0;
        loop {
            let base = pin.base;
            if let Some((index, pinned)) = self.try_claim(base)? {
                return Ok((
                    base,
                    Claim {
                        map: self,
                        index,
                        pinned,
                    },
                ));
            }
            // A scan races other writers: one may retire a slot behind it and claim the one ahead.
            // If a publication moved `current` meanwhile, the scan proved nothing: rescan (as a
            // lost CAS retries, this is progress elsewhere, not a wait). With `current` still, a
            // failed scan means the slots really are pinned or claimed: by registered readers
            // (at most `R`, which the budget `G >= R + 2` leaves room for), by other writers in
            // flight, or by held one-off snapshots.
            // Relaxed: only compared, nothing is read on the strength of it.
            if self.current.load(Ordering::Relaxed) == base {
                if wait == Wait::No {
                    return Err(Error::NoFreeGeneration);
                }
                if spins == 0 {
                    self.stats.slot_waits.bump();
                }
                spin_wait(&mut spins);
            }
            // Re-pinned on every attempt, so a waiting writer never holds an old generation.
            pin.repin();
        }
    }

    /// Claims a FREE generation slot on which no hazard stands; returns it, with the slots the
    /// scan found pinned. Candidates are taken in order after `base`: with one writer, slots are
    /// retired in that same order, so the first candidate is the least recently
    /// retired, the one least likely to still be pinned. Never `base` itself: it is current or
    /// pinned by us.
    fn try_claim(&self, base: usize) -> Result<Option<(usize, u32)>, Error> {
        for step in 1..G {
            let index = (base + step) % G;
            if let Some(pinned) = self.try_claim_slot(index)? {
                return Ok(Some((index, pinned)));
            }
        }
        Ok(None)
    }

    /// Claims generation slot `index` if it is claimable (see `generation::UNUSED`) and no
    /// hazard stands on it; returns the slots the scan found pinned, one bit each.
    ///
    /// # Errors
    /// [`Error::WriterHeld`] if a [`Writer`](crate::Writer) holds the map (the claim is given
    /// back).
    fn try_claim_slot(&self, index: usize) -> Result<Option<u32>, Error> {
        let state = &self.generations[index].state;
        // Relaxed pre-check: skip busy slots without an RMW.
        let seen = state.load(Ordering::Relaxed);
        if !(seen == FREE || seen == UNUSED && index != 0) {
            return Ok(None);
        }
        // Acquire on success: synchronizes with the Release store that freed the slot, so every
        // access by its last writer and by the writer that retired it happens-before our
        // overwrite.
        if compare_exchange(state, seen, IN_USE).is_err() {
            return Ok(None);
        }
        let pinned = self.scan_pins();
        // The shared writers' half of the handshake with `SnapMap::writer` (see `writer`): our
        // claim, then the fence in `scan_pins`, then this load; its takeover stores the flag,
        // fences, then waits for every claimed slot to be given back. Whichever fence comes
        // first in the single total order, either it sees our claim or we see its flag.
        // Acquire: a 0 written by a `Writer`'s drop (Release) orders everything that writer
        // wrote before our overwrite of this slot, which it may have written without touching
        // its state (a fence before a load does not acquire, and our claim acquired only the
        // state's last store, which may predate that writer).
        let held = self.sole.load(Ordering::Acquire) != 0;
        if held || pinned & 1 << index != 0 {
            // Release: hands the Acquire we took from the retiring writer on to the next
            // claimer (a plain store does not extend a release sequence).
            state.store(FREE, Ordering::Release);
            return if held {
                Err(Error::WriterHeld)
            } else {
                Ok(None)
            };
        }
        Ok(Some(pinned))
    }

    /// The generation slots on which someone stands, one bit each, after the writer's fence:
    /// what a writer scans once it has taken the slot it will write (a claim, or for the sole
    /// writer the store of `current` that moved off it), to know whether that slot is still
    /// pinned and which pages it may reuse (see `pages`).
    pub(crate) fn scan_pins(&self) -> u32 {
        // The writer half of the Dekker pair with a reader's announcement and validation in
        // `pin_from` (a hazard) or `pin_counted` (an increment of the count). In the single total
        // order of SeqCst operations, either the announcement precedes this fence, and the scan
        // below sees the hazard (or a later Release store of that reader, which carries its
        // reads along) or a count that includes the increment (every later change of the count
        // is a read-modify-write, so the value read is at least that reader's share until it
        // decrements, with Release); or this fence comes first, and since `current` had moved
        // off the slot the writer took before it (the retiring CAS happens-before the FREE store
        // a claim acquires; the sole writer made that move itself), the reader's validating load
        // sees that and it never reads the slot. A pin that validates on the slot later is on a
        // re-published copy, written before its publication: harmless. The same fence, after the
        // writer's base pin's validation, orders the scan's pins for the page rule (see
        // `pages`). The base pin's own fence does not stand in for this one: it precedes the
        // validating load that synchronizes with the publication that moved `current` on, so it
        // does not order that publication before a reader's fence. (Loom's SeqCst fences are
        // stronger than C++20's and cannot show this; the mutant `no_writer_fence` removes the
        // fence for Miri's runs.)
        #[cfg(not(snapmap_mutant = "no_writer_fence"))]
        fence(Ordering::SeqCst);
        let mut pinned = 0u32;
        // Acquire: a count seen at zero, or a hazard seen cleared (or moved), orders the reads
        // made under those pins before our writes to the slot and to reused pages. (Relaxed
        // loads and one Acquire fence would do as well, a few cycles less on the M0+, but
        // ThreadSanitizer does not see fences and would report every reuse as a race.)
        for (slot, count) in self.pins.iter().enumerate() {
            if count.word.load(Ordering::Acquire) != 0 {
                pinned |= 1 << slot;
            }
        }
        for reader in &self.readers {
            let hazard = reader.hazard().load(Ordering::Acquire);
            if hazard != IDLE && hazard != UNCLAIMED {
                pinned |= 1 << (hazard - pinning(0));
            }
        }
        pinned
    }
}

impl<
        K: Hash + Eq + Clone,
        V: Clone,
        const N: usize,
        const G: usize,
        const R: usize,
        const P: usize,
        S: BuildHasher,
    > SnapMap<K, V, N, G, R, P, S>
{
    /// The whole write protocol: copy the current generation's index into a generation slot, let
    /// `change` edit the copy, and publish it (by CAS, starting over on a fresh copy after each
    /// lost race; or, for the sole writer, by a store).
    pub(crate) fn publish<T>(
        &self,
        writers: Writers,
        wait: Wait,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.publish_reporting(writers, wait, change, |_| {}, &mut 0)
    }

    /// [`publish`](Self::publish), with `lost` called on the discarded copy after each lost race
    /// (or an attempt out of pages), where a write can take back what `change` moved into the
    /// copy (see `insert`); storing the version it published in `published` (left as it is when
    /// it publishes nothing).
    pub(crate) fn publish_reporting<T>(
        &self,
        writers: Writers,
        wait: Wait,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
        lost: impl FnMut(&mut TableMut<'_, K, V, N>),
        published: &mut u64,
    ) -> Result<T, Error> {
        if writers == Writers::Sole {
            // Nothing to detect: the `Writer` is borrowed mutably for the write, and a write
            // through the map from inside it gets `WriterHeld`.
            return self.publish_sole(wait, change, lost, published);
        }
        // Relaxed: a shortcut only; the handshake in `try_claim_slot` is what decides.
        if self.sole.load(Ordering::Relaxed) != 0 {
            return Err(Error::WriterHeld);
        }
        let me = (self as *const Self).cast::<()>();
        if reentry::writing(me) {
            return Err(Error::Reentrant);
        }
        reentry::nest(me, || self.publish_shared(wait, change, lost, published))
    }

    /// [`publish_reporting`](Self::publish_reporting) among many writers, for a write that is
    /// not inside another write to this map.
    ///
    /// Progress: each attempt lost to another writer (a lost race, or pages that died after our
    /// scan) is progress elsewhere, so the write as a whole is lock-free. After [`PATIENCE`]
    /// losses in a row it takes the map's *turn* (see [`Turn`]): other writers then start no new
    /// attempt until it has landed, so it loses at most one more race to each writer already
    /// in flight.
    fn publish_shared<T>(
        &self,
        wait: Wait,
        mut change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
        mut lost: impl FnMut(&mut TableMut<'_, K, V, N>),
        published: &mut u64,
    ) -> Result<T, Error> {
        // The pages this write claims, `(position, entry)`: room for every entry of the pool.
        let mut held = [const { MaybeUninit::uninit() }; P];
        let mut turn = Turn::new(&self.turn, &held);
        let mut spins = 0;
        loop {
            turn.wait_for_others(wait)?;
            match self.attempt(
                wait,
                &mut change,
                &mut lost,
                &mut held,
                &mut turn,
                published,
            ) {
                Attempt::Done(result) => return result,
                Attempt::Lost => {}
                Attempt::WaitForPages => {
                    if spins == 0 {
                        self.stats.page_waits.bump();
                    }
                    spin_wait(&mut spins);
                }
            }
        }
    }

    /// The copy a write changes: generation slot `target`'s index, copied from `base`'s (whose
    /// body is `body`), as a transaction that claims pages with `pins`.
    ///
    /// # Safety
    /// `base` is pinned by the caller (or current, and the caller the sole writer); `target` is
    /// the caller's: no pin can reach it and no other writer writes it (see `try_claim_slot`
    /// and `writer`), until the caller publishes it.
    unsafe fn copy_of<'t>(
        &'t self,
        (base, body): (usize, Body),
        target: usize,
        pins: &'t Pins<'t>,
        held: &'t mut [MaybeUninit<(u16, u16)>],
    ) -> Txn<'t, K, V, N, S> {
        let pages = Shape::<N>::PAGES;
        let (home, base_index) = self.view_parts(base);
        let (_, index) = self.view_parts(target);
        // SAFETY: so we alone access ours; the base's is immutable; both are `pages` entries
        // of the index block, in different slots.
        unsafe { copy_cells(base_index, index, pages) };
        // SAFETY: as above: `base` immutable, `index` ours, all of this map.
        let claims = unsafe {
            Claims::new(
                &self.pool,
                &self.cleared,
                pins,
                held,
                (base_index, index, pages),
            )
        };
        // SAFETY: as above; `claims` claims this map's pages.
        let table = unsafe {
            TableMut::new(
                (home, self.page_info.occupancy()),
                base_index,
                index,
                body.len,
                claims,
            )
        };
        Txn::new(table, &self.hasher)
    }

    /// Makes the changed copy in generation slot `target` (built from a base whose body is
    /// `base`) ready to publish: its body, its version (returned) and its pages' births.
    ///
    /// # Safety
    /// As for [`copy_of`](Self::copy_of): `target` is the caller's, unpublished.
    unsafe fn seal(&self, target: usize, base: Body, table: &TableMut<'_, K, V, N>) -> u64 {
        let version = base.version + 1;
        let slot = &self.generations[target];
        // SAFETY: the caller's and unpublished.
        slot.body.with_mut(|mine| unsafe {
            *mine = Body {
                version,
                len: table.len(),
                page_copies: base.page_copies + table.claims().len() as u64,
            }
        });
        // Release, after our scan, before we publish: see `pages`, "Which version a pin
        // names".
        slot.version.store(version);
        for (_, page) in table.claims().pages() {
            // SAFETY: a page we claimed, in no published generation.
            unsafe { self.page_info.set(page, version) };
        }
        version
    }

    /// One attempt at the write: pin a base and claim a generation slot, then apply `change` to
    /// a copy of the base and publish it, again on each new base after a lost race (keeping the
    /// slot) while no other write has the turn.
    fn attempt<T>(
        &self,
        wait: Wait,
        change: &mut impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
        lost: &mut impl FnMut(&mut TableMut<'_, K, V, N>),
        held: &mut [MaybeUninit<(u16, u16)>],
        turn: &mut Turn<'_>,
        published: &mut u64,
    ) -> Attempt<T> {
        // The base pin is what makes the pointer CAS free of ABA: while we pin `base`, it cannot
        // be retired *and reused*, so `current == base` at the CAS means nothing was published
        // since we copied it.
        let mut pin = BasePin::new(self);
        let (mut base, claim) = match self.claim_generation(&mut pin, wait) {
            Ok(claimed) => claimed,
            Err(error) => return Attempt::Done(Err(error)),
        };
        // What our scan found. After a lost race it predates the new base: pages retired since
        // stay unclaimable until a fresh scan (an attempt of its own, below).
        let pins = Pins {
            // SAFETY: `base` is pinned by our base pin.
            base: unsafe { self.body(base) }.version,
            pinned: claim.pinned,
            generations: &self.generations,
            writers: Writers::Many,
        };
        let mut rebased = false;
        loop {
            // SAFETY: `base` is pinned by our base pin.
            let body = unsafe { self.body(base) };
            // The target slot's index is ours: we claimed the slot FREE -> IN_USE, it is not
            // `current`, and no pin was on it after our fence, so no reader can validate a pin
            // on it, and no writer use it as a base, until we publish it (see `try_claim_slot`).
            // SAFETY: so, with `base` pinned, `copy_of`'s contract holds.
            let mut txn = unsafe { self.copy_of((base, body), claim.index, &pins, held) };
            let result = change(&mut txn);
            let table = &mut txn.table;
            if table.out_of_pages() {
                lost(table);
                let all = table.claims().hold_all();
                drop(txn); // gives the pages back
                           // Relaxed: only compared; nothing is read on the strength of it.
                return if rebased || self.current.load(Ordering::Relaxed) != base {
                    // Published since our scan: the pages that publication retired (and the
                    // records it changed) may be ours to claim on a fresh one.
                    turn.lose();
                    Attempt::Lost
                } else if wait == Wait::No || all {
                    // No page is free now, or the change needs more than the pool holds.
                    Attempt::Done(Err(Error::NoFreePage))
                } else {
                    Attempt::WaitForPages
                };
            }
            // An error, or a change that changed nothing, publishes nothing: dropping the claims
            // gives the pages back, the claim frees the slot and the pin releases the base. A
            // no-op linearizes at the pin's validation, when `base` was current.
            let result = match result {
                Ok(result) if table.changed() => result,
                result => return Attempt::Done(result),
            };
            // SAFETY: still ours and unpublished, as above.
            let version = unsafe { self.seal(claim.index, body, table) };
            // A write that cleared positions or gave them pages again walks its own index after
            // publishing it (see `Claims::retire_all`): it pins its own generation first, so
            // that no writer reuses the slot before the walk ends. (Counted before the
            // publication, it is ordered before the retiring store of any successor, and so
            // before that slot's next claimer's scan, which sees it.)
            let own_pin = txn
                .table
                .claims()
                .records()
                .then(|| &self.pins[claim.index].word);
            if let Some(count) = own_pin {
                let taken = announce_count(count);
                debug_assert!(taken, "an unpublished slot cannot be pinned to the cap");
            }
            // AcqRel (see `compare_exchange`): Release publishes the copy and our version to
            // every Acquire load of `current`; Acquire orders the retiring below after the
            // publication of `base`. The base pin is ended with the CAS (one critical section on
            // thumbv6m). Ending it there, before the FREE store below rather than after it,
            // changes no argument: its Release still follows every read of `base`, and it now
            // also happens-before the next claimer's Acquire of FREE, which then finds no stale
            // pin of ours (see `try_claim_slot`).
            if publish_exchange(&self.current, base, claim.index, pin.count()).is_err() {
                if let Some(count) = own_pin {
                    release_count(count);
                }
                // Another writer published first: give back our pages and start over on the new
                // current generation, in the slot we hold (or, if another write has the turn,
                // once it has landed).
                lost(&mut txn.table);
                drop(txn);
                self.stats.cas_retries.bump();
                turn.lose();
                if turn.others_have_it() {
                    return Attempt::Lost;
                }
                base = pin.repin();
                rebased = true;
                continue;
            }
            // Every page we claimed replaced the base's page at its position (or the page a
            // clear left in that position's record): the entries that held ours now hold those,
            // with their lives, which our version ends.
            txn.table.claims_mut().retire_all(version, |page| {
                // SAFETY: our publication replaced `page` (see `PageInfo`).
                unsafe { self.page_info.get(page, body.version) }
            });
            if let Some(count) = own_pin {
                // Release: our walk of our index happens-before its next claimer's overwrite.
                release_count(count);
            }
            core::mem::forget(claim);
            // Ended above.
            core::mem::forget(pin);
            // Only the writer whose CAS replaced `base` retires it. Release: our reads of it
            // happen-before its next claimer's overwrite.
            self.generations[base].state.store(FREE, Ordering::Release);
            // Reports `version` to the write and wakes readers waiting for a change.
            self.published(version, published);
            return Attempt::Done(Ok(result));
        }
    }

    /// [`publish_reporting`](Self::publish_reporting) by the map's sole writer (see `writer`):
    /// no base pin (only we publish, so the current generation stays current and ours to read),
    /// no claim of a generation slot (only we write them: any slot but the current one that no
    /// pin stands on is free), pool entries and records claimed by load and store, and the
    /// publication a store. On Cortex-M0+, no critical section at all.
    pub(crate) fn publish_sole<T>(
        &self,
        wait: Wait,
        mut change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
        mut lost: impl FnMut(&mut TableMut<'_, K, V, N>),
        published: &mut u64,
    ) -> Result<T, Error> {
        let mut held = [const { MaybeUninit::uninit() }; P];
        let mut spins = 0;
        // Relaxed: `current` changes only by our own stores (or it was acquired at takeover).
        let base = self.current.load(Ordering::Relaxed);
        // SAFETY: current, and only we publish: it is not retired while we read it.
        let body = unsafe { self.body(base) };
        loop {
            // Every slot but `base` is retired: our store of `current` moved off it, before the
            // fence in `scan_pins` (the reader's half is the same as for a claim).
            let pinned = self.scan_pins();
            // Taken in order after `base`, as in `try_claim`: the least recently retired first.
            // The `sole_ignores_pins` mutant (loom runs only) takes the next slot whatever the
            // scan found, to show that the models catch a slot reused under a reader.
            let usable =
                |slot: usize| cfg!(snapmap_mutant = "sole_ignores_pins") || pinned & 1 << slot == 0;
            let Some(target) = (1..G)
                .map(|step| (base + step) % G)
                .find(|&slot| usable(slot))
            else {
                if wait == Wait::No {
                    return Err(Error::NoFreeGeneration);
                }
                if spins == 0 {
                    self.stats.slot_waits.bump();
                }
                spin_wait(&mut spins);
                continue;
            };
            let pins = Pins {
                base: body.version,
                pinned,
                generations: &self.generations,
                writers: Writers::Sole,
            };
            // SAFETY: `base` is current and only we retire it; `target` is retired, and no pin
            // stood on it after the fence: no reader can validate one (`current` moved off it
            // before the fence), and no other writer writes while we hold the map.
            let mut txn = unsafe { self.copy_of((base, body), target, &pins, &mut held) };
            let result = change(&mut txn);
            let table = &mut txn.table;
            if table.out_of_pages() {
                lost(table);
                if wait == Wait::No || table.claims().hold_all() {
                    return Err(Error::NoFreePage);
                }
                drop(txn);
                if spins == 0 {
                    self.stats.page_waits.bump();
                }
                spin_wait(&mut spins);
                continue;
            }
            let result = match result {
                Ok(result) if table.changed() => result,
                result => return result,
            };
            // SAFETY: still ours and unpublished.
            let version = unsafe { self.seal(target, body, table) };
            // Release (inside `publish_store`): publishes the copy and its version to every
            // Acquire load of `current`; ordered before the load of `waiting` in `published`
            // (see `notify`). On thumbv6m a store: no critical section.
            publish_store(&self.current, target);
            // As in `attempt`; no pin on our own generation is needed for the walk of its index:
            // only we could reuse it.
            txn.table.claims_mut().retire_all(version, |page| {
                // SAFETY: our publication replaced `page` (see `PageInfo`).
                unsafe { self.page_info.get(page, body.version) }
            });
            self.published(version, published);
            return Ok(result);
        }
    }

    /// Applies a transaction: `change` edits a private copy of the map, and all its changes are
    /// published together as one generation (or none, if it returns `Err` or panics). Waits while
    /// no slot is free.
    ///
    /// `change` runs again on a fresh copy if another writer publishes first, so it must be
    /// re-runnable. A transaction that changes nothing publishes nothing.
    ///
    /// ```
    /// use snapmap_core::{Error, SnapMap};
    ///
    /// let map: SnapMap<&str, i64, 8> = SnapMap::new();
    /// map.update(|tx| {
    ///     tx.insert("alice", 60)?;
    ///     tx.insert("bob", 40)?;
    ///     Ok(())
    /// })?;
    /// // Move 25 from alice to bob: readers see both balances change, or neither.
    /// map.update(|tx| {
    ///     let alice = *tx.get(&"alice").ok_or(Error::Aborted)?;
    ///     if alice < 25 {
    ///         return Err(Error::Aborted);
    ///     }
    ///     tx.insert("alice", alice - 25)?;
    ///     *tx.get_mut(&"bob")?.ok_or(Error::Aborted)? += 25;
    ///     Ok(())
    /// })?;
    /// let snap = map.snapshot();
    /// assert_eq!(snap.iter().map(|(_, v)| v).sum::<i64>(), 100);
    /// assert_eq!(snap.get(&"alice"), Some(&35));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// Whatever `change` returns (its [`Txn::insert`] gives [`Error::Full`]); nothing is published.
    /// [`Error::NoFreePage`] if the change needs more than `P` spare pages (it can never be made).
    /// [`Error::Reentrant`] (under `std`) if this is a write from inside a write to this map,
    /// `change` included: `change` must not write to the map it changes (that would livelock;
    /// see the [crate docs](crate#writing)).
    pub fn update<T>(
        &self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.publish(Writers::Many, Wait::Spin, change)
    }

    /// [`update`](Self::update), without waiting.
    ///
    /// # Errors
    /// As `update`, plus [`Error::NoFreeGeneration`] if the writer would have to wait for a
    /// slot, [`Error::NoFreePage`] for pages, and [`Error::Contended`] for another writer that
    /// has the turn.
    pub fn try_update<T>(
        &self,
        change: impl FnMut(&mut Txn<'_, K, V, N, S>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.publish(Writers::Many, Wait::No, change)
    }

    /// Inserts or replaces `key`, returning the value it replaced (Go's `Store` / `Swap`). A key
    /// that is present keeps the key it has (as `HashMap`'s does) and gets the new value; the
    /// key given is dropped. Neither is ever cloned, however many races the write loses.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u32, u32, 4> = SnapMap::new();
    /// assert_eq!(map.insert(7, 1), Ok(None));
    /// assert_eq!(map.insert(7, 2), Ok(Some(1)));
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is new and the map holds `N` entries, or (`N > 64`) its run of
    /// occupied slots would grow past 48 (see [`SnapMap`]'s `N`); [`Error::Reentrant`].
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        self.insert_with(Writers::Many, Wait::Spin, key, value)
    }

    /// Moves `key` and `value` into the copy; after a lost race, takes them back out of the
    /// discarded copy for the next attempt, so that they are never cloned.
    pub(crate) fn insert_with(
        &self,
        writers: Writers,
        wait: Wait,
        key: K,
        value: V,
    ) -> Result<Option<V>, Error> {
        // What the next attempt inserts: given back after every lost race, taken by an attempt
        // that then publishes, fails (dropping them) or unwinds.
        let pending = Cell::new(Some((key, value)));
        // Where the last attempt put our value, and for a key that was present, our key, which
        // the copy did not keep (it keeps the key it had): the key to insert if a later attempt
        // finds the key gone.
        let landed = Cell::new(None);
        let kept_key = Cell::new(None);
        let result = self.publish_reporting(
            writers,
            wait,
            |tx| {
                let (key, value) = pending.take().expect("insert's entry taken twice");
                match tx.table.insert_at(&self.hasher, key, value) {
                    Ok(placed) => {
                        landed.set(Some(placed.slot));
                        Ok(placed.replaced.map(|(old, key)| {
                            kept_key.set(Some(key));
                            old
                        }))
                    }
                    Err((Error::NoFreePage, key, value)) => {
                        // Kept for the attempt after the wait for pages.
                        pending.set(Some((key, value)));
                        Err(Error::NoFreePage)
                    }
                    Err((error, key, value)) => {
                        drop((key, value));
                        Err(error)
                    }
                }
            },
            // The slot holds our value, with our key or with the copy's own key for it (equal by
            // `Eq`), which is then dropped: the next attempt inserts the caller's. (Nothing to
            // take back from an attempt that ran out of pages before it placed them: `insert_at`
            // gave them back.)
            |table| {
                if let Some(slot) = landed.take() {
                    let (copys_key, value) = table.take_back(slot);
                    let key = match kept_key.take() {
                        Some(ours) => {
                            drop(copys_key);
                            ours
                        }
                        None => copys_key,
                    };
                    pending.set(Some((key, value)));
                }
            },
            &mut 0,
        );
        // The caller's key, if the published copy kept its own (dropped while `result` is a
        // local: a panicking drop unwinds through it too).
        drop(kept_key);
        result
    }

    /// [`insert_with`](Self::insert_with) by the sole writer, which loses no race: its change
    /// runs again only after a wait for pages, and then `insert_at` has given the entry back
    /// unplaced, so there is nothing to take back out of a discarded copy.
    pub(crate) fn insert_sole(&self, wait: Wait, key: K, value: V) -> Result<Option<V>, Error> {
        let mut pending = Some((key, value));
        // The caller's key, when the map kept its own (dropped after the write, as in
        // `insert_with`).
        let mut callers_key = None;
        let result = self.publish_sole(
            wait,
            |tx| {
                let (key, value) = pending.take().expect("insert's entry taken twice");
                match tx.table.insert_at(&self.hasher, key, value) {
                    Ok(placed) => Ok(placed.replaced.map(|(old, key)| {
                        callers_key = Some(key);
                        old
                    })),
                    Err((Error::NoFreePage, key, value)) => {
                        pending = Some((key, value));
                        Err(Error::NoFreePage)
                    }
                    Err((error, key, value)) => {
                        drop((key, value));
                        Err(error)
                    }
                }
            },
            |_| {},
            &mut 0,
        );
        drop((callers_key, pending));
        result
    }

    /// [`insert`](Self::insert), without waiting.
    ///
    /// # Errors
    /// As `insert`, plus [`Error::NoFreeGeneration`], [`Error::NoFreePage`] or
    /// [`Error::Contended`] where `insert` would wait for a generation slot, spare pages or another
    /// writer's turn.
    pub fn try_insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        self.insert_with(Writers::Many, Wait::No, key, value)
    }

    /// Removes `key`, returning its value (Go's `LoadAndDelete` / `Delete`). Publishes nothing
    /// if the key is absent.
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.publish(Writers::Many, Wait::Spin, |tx| tx.remove(key))
    }

    /// [`remove`](Self::remove), without waiting.
    ///
    /// # Errors
    /// [`Error::NoFreeGeneration`], [`Error::NoFreePage`] or [`Error::Contended`] where `remove`
    /// would wait (see `try_insert`); [`Error::Reentrant`].
    pub fn try_remove<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.publish(Writers::Many, Wait::No, |tx| tx.remove(key))
    }

    /// Returns the value of `key` and `true` if the key was present (loaded), or inserts `value`
    /// and returns it with `false` (Go's `LoadOrStore`, which returns `loaded` too). Reads
    /// before it writes: an existing key costs one snapshot.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u8, &str, 4> = SnapMap::new();
    /// assert_eq!(map.get_or_insert(1, "first"), Ok(("first", false)));
    /// assert_eq!(map.get_or_insert(1, "second"), Ok(("first", true)));
    /// ```
    ///
    /// # Errors
    /// [`Error::Full`] if `key` is absent and there is no room for it (as for `insert`);
    /// [`Error::Reentrant`].
    pub fn get_or_insert(&self, key: K, value: V) -> Result<(V, bool), Error> {
        let found = self.get(&key);
        self.get_or_insert_after(Writers::Many, found, key, value)
    }

    /// [`get_or_insert`](Self::get_or_insert), once a read found `found` for `key`.
    pub(crate) fn get_or_insert_after(
        &self,
        writers: Writers,
        found: Option<V>,
        key: K,
        value: V,
    ) -> Result<(V, bool), Error> {
        let result = match found {
            Some(existing) => Ok((existing, true)),
            None => self.publish(writers, Wait::Spin, |tx| match tx.get(&key) {
                Some(existing) => Ok((existing.clone(), true)),
                None => tx
                    .insert(key.clone(), value.clone())
                    .map(|_| (value.clone(), false)),
            }),
        };
        // Dropped while `result` is a local: if a drop panics, the unwind drops it too (a
        // parameter dropped after the return value is built would leak that value).
        drop((key, value));
        result
    }

    /// Replaces the value of `key` with `new` if it currently equals `current` (Go's
    /// `CompareAndSwap`). Returns whether it did.
    ///
    /// ```
    /// use snapmap_core::SnapMap;
    /// let map: SnapMap<u8, u32, 4> = SnapMap::new();
    /// map.insert(1, 10).unwrap();
    /// assert_eq!(map.compare_exchange(&1, &99, 11), Ok(false));
    /// assert_eq!(map.compare_exchange(&1, &10, 11), Ok(true));
    /// assert_eq!(map.get(&1), Some(11));
    /// ```
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn compare_exchange<Q>(&self, key: &Q, current: &V, new: V) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PartialEq,
    {
        self.compare_exchange_by(Writers::Many, key, current, new)
    }

    /// [`compare_exchange`](Self::compare_exchange) by `writers`.
    pub(crate) fn compare_exchange_by<Q>(
        &self,
        writers: Writers,
        key: &Q,
        current: &V,
        new: V,
    ) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PartialEq,
    {
        self.publish(writers, Wait::Spin, |tx| match tx.get(key) {
            Some(value) if value == current => {
                if let Some(value) = tx.get_mut(key)? {
                    *value = new.clone();
                }
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Removes `key` if `predicate` holds for its value (Go's `CompareAndDelete`, generalized),
    /// returning the removed value.
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn remove_if<Q>(
        &self,
        key: &Q,
        predicate: impl FnMut(&V) -> bool,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if_by(Writers::Many, key, predicate)
    }

    /// [`remove_if`](Self::remove_if) by `writers`.
    pub(crate) fn remove_if_by<Q>(
        &self,
        writers: Writers,
        key: &Q,
        mut predicate: impl FnMut(&V) -> bool,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.publish(writers, Wait::Spin, |tx| match tx.get(key) {
            Some(value) if predicate(value) => tx.remove(key),
            _ => Ok(None),
        })
    }

    /// Removes every entry (Go's `Clear`). Publishes nothing if the map is already empty. Needs no
    /// spare page in a map of more than 16 slots (the cleared generation names one shared empty
    /// page wherever the table held entries), so it never waits for snapshots to release pages;
    /// it may wait for another writer in flight that changes the same pages.
    ///
    /// # Errors
    /// Only [`Error::Reentrant`] (under `std`), for a write from inside a write to this map: see
    /// the [crate docs](crate#writing).
    pub fn clear(&self) -> Result<(), Error> {
        self.publish(Writers::Many, Wait::Spin, |tx| tx.clear())
    }
}
