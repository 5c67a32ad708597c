//! Where `clear` leaves the pages it takes out of the table: one record per position.
//!
//! A cleared generation's index names, at every position that held entries, one shared page that
//! is always empty (the *zero page*, see `pages::Pages`), so a clear copies nothing and claims no
//! spare page: it cannot run out of them. The pages it replaced still need a place, since older
//! snapshots may read them and writers will want them back once those are gone: each goes into
//! its position's record, with the version it died at (its birth stays in `PageInfo`, untouched
//! while the page is here), and is reused the same way as a page in the pool (see `pages`,
//! "Reuse"), by the write that next gives the position a page of its own. That write copies into
//! a spare page as any write does, and its publication moves the record's page into the pool
//! entry it claimed, in place of the zero page it replaced.
//!
//! So a record holds a page exactly while its position names the zero page in the current
//! generation (and for a moment around the publication that changes that, while the writer that
//! published it holds the record). A writer claims a record *before* it publishes: EMPTY ->
//! TAKEN to clear the position, HELD -> TAKEN to give it a page. A record it cannot claim means
//! that its base is stale or that another writer in flight changes the same position: the write
//! then starts over, or waits for that writer as it would for a page.
//!
//! The records of the `N / 16` positions live in one block of `N` bytes, 16 per position:
//! byte 0 the state, bytes 2-3 the page, bytes 8-15 the version it died at. All are atomic bytes,
//! so that a new map is all zeros (every record EMPTY) and readers never touch them; only the
//! state byte is contended, and it orders the others (only its holder writes them).

use crate::sync::{AtomicU8, Ordering, Writers};

/// Record states.
const EMPTY: u8 = 0;
const TAKEN: u8 = 1;
const HELD: u8 = 2;

/// The records, `[AtomicU8; N]` where stored and `[AtomicU8]` where used (see `pages::Pool`).
pub(crate) struct Cleared<B: ?Sized = [AtomicU8]> {
    bytes: B,
}

macro_rules! cleared_new {
    ($($const:ident)?) => {
        pub(crate) $($const)? fn new() -> Self {
            Self { bytes: crate::sync::array![AtomicU8::new(0); N] }
        }
    };
}

impl<const N: usize> Cleared<[AtomicU8; N]> {
    #[cfg(not(loom))]
    cleared_new!(const);
    #[cfg(loom)]
    cleared_new!();
}

impl Cleared {
    fn state(&self, position: usize) -> &AtomicU8 {
        &self.bytes[16 * position]
    }

    /// Claims position `position`'s empty record, to clear the position. Acquire on success:
    /// the previous holder's accesses happen-before ours.
    pub(crate) fn claim_empty(&self, writers: Writers, position: usize) -> bool {
        writers.claim_u8(self.state(position), EMPTY, TAKEN).is_ok()
    }

    /// Claims position `position`'s record holding a page, to give the position a page again.
    /// Acquire on success: the page and its death, written by the clear that put them there,
    /// happen-before our reads of them.
    pub(crate) fn claim_held(&self, writers: Writers, position: usize) -> bool {
        writers.claim_u8(self.state(position), HELD, TAKEN).is_ok()
    }

    /// Gives back a record the caller claimed and did not use: EMPTY if it was claimed to clear
    /// the position, HELD (its page untouched) if it was claimed to give the position a page.
    /// Release: hands on what the claim acquired.
    pub(crate) fn give_back(&self, position: usize, held: bool) {
        self.state(position)
            .store(if held { HELD } else { EMPTY }, Ordering::Release);
    }

    /// The page a record the caller holds (claimed HELD) holds, and the version it died at.
    pub(crate) fn page(&self, position: usize) -> (usize, u64) {
        let byte = |i: usize| self.bytes[16 * position + i].load(Ordering::Relaxed);
        let page = u16::from_le_bytes([byte(2), byte(3)]);
        let died = u64::from_le_bytes(core::array::from_fn(|i| byte(8 + i)));
        (usize::from(page), died)
    }

    /// After the caller's publication of `died` cleared position `position` (whose record it
    /// claimed EMPTY): the record holds `page`, which that publication replaced.
    pub(crate) fn hold(&self, position: usize, page: usize, died: u64) {
        // Relaxed: the Release store of the state below orders these for the next claimer.
        let bytes = &self.bytes[16 * position..16 * position + 16];
        for (byte, value) in bytes[2..4].iter().zip((page as u16).to_le_bytes()) {
            byte.store(value, Ordering::Relaxed);
        }
        for (byte, value) in bytes[8..].iter().zip(died.to_le_bytes()) {
            byte.store(value, Ordering::Relaxed);
        }
        self.state(position).store(HELD, Ordering::Release);
    }

    /// After the caller's publication gave position `position` a page again (its record claimed
    /// HELD, its page moved to a pool entry): the record holds nothing. Release: our read of
    /// the page happens-before the next claimer's writes.
    pub(crate) fn empty(&self, position: usize) {
        self.state(position).store(EMPTY, Ordering::Release);
    }
}
