//! Property tests of `snapmap-core`: random operation sequences against a `BTreeMap` oracle,
//! single-threaded, plus targeted tests of the error and panic paths.
//!
//! Keys and values are [`Tracked`], so every case also checks that every key and value the map
//! was given or copied was dropped exactly once, and that nothing read through a snapshot had
//! been dropped. The model predicts exhaustion of reader and generation slots exactly (a single
//! thread holding snapshots and `Reader`s), and of spare pages by bounds (exactly for a table of
//! one page; see [`PageModel`]). Blocking forms are only called when they cannot wait, and
//! otherwise the `try_` forms must return the predicted `NoReaderSlot` / `NoFreeGeneration`, and
//! `NoFreePage` only where the bounds allow it: never for a clear (a table of more than one page
//! clears through a shared empty page, copying nothing) and never for a blocking one-key write
//! (`P` covers the most pages one key's write can change). A transaction that runs out of pages
//! must see that change and every later one return `NoFreePage`, with its copy unchanged.
//!
//! The `random_writer_ops_*` runs make the same writes through the map's sole [`Writer`], taken
//! and dropped between them (see [`Via`]): its results, errors, pages and generation slots must
//! match the same model, while writes through the map it holds return `WriterHeld` and change
//! nothing, and the map given back must work as before (the slot probe runs after it).

use host_tests::{
    drop_counts, panic_on_clone_after, panic_on_drop_after, silence_injected_panics, tracking_lock,
    Tracked, Watchdog, INJECTED_PANIC,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use snapmap_core::{Error, FxBuildHasher, Reader, SnapMap, Snapshot, Stats, Txn, Writer};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

type K = Tracked<u8>;
type V = Tracked<u32>;
type Oracle = BTreeMap<u8, u32>;

/// The keys ops draw from: more than the capacity of the small maps, so that inserts hit Full,
/// and in clusters whose homes (under Fx, the hash's top bits) end a page of a table of 32 or 64
/// slots, so that a one-key write's probe run can cross into the next page: 124 and 146 (home 15
/// of 32; 30 of 64) with 234 (15; 31), 113 and 135 (31; 62) with 245 (31; 63), 62 and 84 (23;
/// 47), 73 and 95 (7; 15). Then 16 (2; 5) and 2 (20; 40). (`key_clusters_cross_pages` checks.)
/// In a table of 128 slots they fall in five pages (0, 1, 3, 5 and 7): one more than the least
/// pool a map may have.
const KEYS: [u8; 12] = [124, 146, 234, 113, 135, 245, 62, 84, 73, 95, 16, 2];
/// A key never inserted.
const ABSENT: u8 = 0;

fn key() -> impl Strategy<Value = u8> + Clone {
    prop::sample::select(&KEYS[..])
}

/// A bug that makes a blocking form spin forever in this single-threaded test aborts the binary.
const HANG_LIMIT: Duration = Duration::from_secs(120);

fn k(key: u8) -> K {
    Tracked::new(key)
}
fn v(value: u32) -> V {
    Tracked::new(value)
}

thread_local! {
    /// How often each interesting outcome happened in this thread's random cases.
    static COVERAGE: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts one occurrence of an interesting outcome (see [`run_random`]).
fn hit(what: &'static str) {
    COVERAGE.with(|c| *c.borrow_mut().entry(what).or_insert(0) += 1);
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// The entries of an iterator as a plain map, and how many entries it yielded (a duplicate key
/// would make the two differ).
fn contents<'a>(iter: impl Iterator<Item = (&'a K, &'a V)>) -> (Oracle, usize) {
    let mut count = 0;
    let map = iter
        .inspect(|_| count += 1)
        .map(|(key, value)| (key.value(), value.value()))
        .collect();
    (map, count)
}

/// Checks everything a snapshot exposes against the oracle and the expected version.
fn check_view<const N: usize>(
    snap: &Snapshot<'_, K, V, N>,
    oracle: &Oracle,
    version: u64,
) -> Result<(), String> {
    ensure!(
        snap.version() == version,
        "version {} != expected {version}",
        snap.version()
    );
    let (entries, count) = contents(snap.iter());
    ensure!(
        entries == *oracle,
        "contents {entries:?} != oracle {oracle:?}"
    );
    ensure!(
        count == snap.len() && snap.len() == oracle.len(),
        "iter count {count}, len {}, oracle {}",
        snap.len(),
        oracle.len()
    );
    // (`snap.iter().len()` is checked by `snapshot_and_txn_iterators_know_their_length`.)
    ensure!(snap.is_empty() == oracle.is_empty(), "is_empty wrong");
    ensure!(snap.capacity() == N, "capacity");
    for key in KEYS.into_iter().chain([ABSENT]) {
        let got = snap.get(&key).map(Tracked::value);
        ensure!(
            got == oracle.get(&key).copied(),
            "get({key}) = {got:?}, oracle {:?}",
            oracle.get(&key)
        );
        ensure!(
            snap.contains_key(&key) == oracle.contains_key(&key),
            "contains_key({key})"
        );
    }
    Ok(())
}

// =============================================================================================
// Operations
// =============================================================================================

/// One change inside a transaction.
#[derive(Clone, Debug)]
enum TxOp {
    /// Insert; on an error, `propagate` returns `Full` from the closure (failing the update),
    /// otherwise the closure carries on.
    Insert(u8, u32, bool),
    Remove(u8),
    /// `get_mut` and add (0 included: `get_mut` of a present key counts as a change).
    AddMut(u8, u32),
    /// Keep only values not divisible by this.
    Retain(u32),
    Clear,
    Get(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        key: u8,
        value: u32,
        try_: bool,
    },
    Remove {
        key: u8,
        try_: bool,
    },
    Get {
        key: u8,
        try_: bool,
    },
    GetOrInsert {
        key: u8,
        value: u32,
    },
    /// `expect: None` uses the current value (or 0), so that both outcomes are frequent.
    CompareExchange {
        key: u8,
        expect: Option<u32>,
        new: u32,
    },
    RemoveIf {
        key: u8,
        modulus: u32,
    },
    Clear,
    /// `versioned`: through `update_versioned` (or `try_update_versioned`; the `Writer` has no
    /// `try_` form of it, and then calls `try_update`), whose version is checked too.
    Update {
        ops: Vec<TxOp>,
        abort: bool,
        try_: bool,
        versioned: bool,
    },
    PanicInUpdate {
        ops: Vec<TxOp>,
        try_: bool,
    },
    HoldSnapshot {
        try_: bool,
    },
    DropSnapshot(usize),
    RegisterReader,
    DropReader(usize),
    ReaderRead {
        reader: usize,
        key: u8,
    },
    /// Runs `ops` (plain writes and reads, each checked as a step) while a registered reader's
    /// snapshot is held: a hazard pin, which holds its generation and the pages the writes
    /// replace until it drops.
    ReaderHold {
        reader: usize,
        ops: Vec<Op>,
    },
    /// Runs `op` with the `after+1`-th `Clone` of a key or value on this thread panicking.
    CloneBomb {
        after: u64,
        op: Box<Op>,
    },
    /// Runs `op` (a plain write or read) with the `after+1`-th `Drop` of a key or value on this
    /// thread panicking.
    DropBomb {
        after: u64,
        op: Box<Op>,
    },
    /// Takes the map's sole [`Writer`], which every later write goes through until
    /// [`Op::DropWriter`] (except those of [`Op::Shared`]); if the harness holds it already,
    /// `writer()` must return `WriterHeld`.
    TakeWriter,
    /// Drops the `Writer`, if held: the map takes writes again.
    DropWriter,
    /// Reads through the `Writer`'s pinless snapshot and `get`, if held.
    WriterRead {
        key: u8,
    },
    /// Runs `op` through the map even while the harness holds the `Writer`: every write must
    /// then return `WriterHeld` without running its closure and change nothing (a
    /// `get_or_insert` of a present key is a read, and succeeds); reads and the rest run as
    /// ever.
    Shared(Box<Op>),
}

fn tx_op() -> impl Strategy<Value = TxOp> {
    prop_oneof![
        4 => (key(), 0..60u32, any::<bool>()).prop_map(|(key, value, p)| TxOp::Insert(key, value, p)),
        2 => key().prop_map(TxOp::Remove),
        2 => (key(), 0..3u32).prop_map(|(key, add)| TxOp::AddMut(key, add)),
        1 => (2..5u32).prop_map(TxOp::Retain),
        1 => Just(TxOp::Clear),
        2 => key().prop_map(TxOp::Get),
    ]
}

/// The changes of a transaction: single ops, and now and then a `get_mut` of every key, which
/// changes every page that holds entries (in a table of more pages than `P`, more than the pool
/// has).
fn tx_ops() -> impl Strategy<Value = Vec<TxOp>> {
    let group = prop_oneof![
        12 => tx_op().prop_map(|op| vec![op]),
        1 => (0..3u32).prop_map(|add| KEYS.iter().map(|&key| TxOp::AddMut(key, add)).collect()),
    ];
    prop::collection::vec(group, 0..8).prop_map(|groups| groups.concat())
}

/// Plain writes whose published effect the model can tell from the version alone (see
/// `Op::DropBomb` in `exec`), and a read: what drop bombs go off in, and what runs under a
/// reader's held snapshot.
fn simple_op() -> impl Strategy<Value = Op> {
    let key = key();
    prop_oneof![
        3 => (key.clone(), 0..60u32, any::<bool>()).prop_map(|(key, value, try_)| Op::Insert { key, value, try_ }),
        2 => (key.clone(), any::<bool>()).prop_map(|(key, try_)| Op::Remove { key, try_ }),
        1 => (key, any::<bool>()).prop_map(|(key, try_)| Op::Get { key, try_ }),
        1 => Just(Op::Clear),
        3 => (tx_ops(), prop::bool::weighted(0.2), any::<bool>(), prop::bool::weighted(0.25))
            .prop_map(|(ops, abort, try_, versioned)| Op::Update { ops, abort, try_, versioned }),
    ]
}

fn plain_op() -> impl Strategy<Value = Op> {
    let key = key();
    let value = 0..60u32;
    prop_oneof![
        8 => (key.clone(), value.clone(), any::<bool>()).prop_map(|(key, value, try_)| Op::Insert { key, value, try_ }),
        4 => (key.clone(), any::<bool>()).prop_map(|(key, try_)| Op::Remove { key, try_ }),
        3 => (key.clone(), any::<bool>()).prop_map(|(key, try_)| Op::Get { key, try_ }),
        3 => (key.clone(), value.clone()).prop_map(|(key, value)| Op::GetOrInsert { key, value }),
        3 => (key.clone(), prop::option::of(value.clone()), value.clone())
            .prop_map(|(key, expect, new)| Op::CompareExchange { key, expect, new }),
        2 => (key.clone(), 1..4u32).prop_map(|(key, modulus)| Op::RemoveIf { key, modulus }),
        1 => Just(Op::Clear),
        4 => (tx_ops(), prop::bool::weighted(0.2), any::<bool>(), prop::bool::weighted(0.25))
            .prop_map(|(ops, abort, try_, versioned)| Op::Update { ops, abort, try_, versioned }),
        1 => (prop::collection::vec(tx_op(), 0..4), any::<bool>()).prop_map(|(ops, try_)| Op::PanicInUpdate { ops, try_ }),
        3 => any::<bool>().prop_map(|try_| Op::HoldSnapshot { try_ }),
        2 => any::<usize>().prop_map(Op::DropSnapshot),
        1 => Just(Op::RegisterReader),
        1 => any::<usize>().prop_map(Op::DropReader),
        2 => (any::<usize>(), key).prop_map(|(reader, key)| Op::ReaderRead { reader, key }),
        2 => (any::<usize>(), prop::collection::vec(simple_op(), 1..4))
            .prop_map(|(reader, ops)| Op::ReaderHold { reader, ops }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        24 => plain_op(),
        1 => (0..30u64, plain_op()).prop_map(|(after, op)| Op::CloneBomb { after, op: Box::new(op) }),
        // Half the bombs go off among the first few drops: a write drops little after its
        // publishing CAS (with moved-in keys, often only the value it returns), and the
        // coverage check needs that path reached in every run, not in most.
        4 => (prop_oneof![0..3u64, 0..24u64], simple_op()).prop_map(|(after, op)| Op::DropBomb { after, op: Box::new(op) }),
    ]
}

/// [`op`], with the sole [`Writer`] taken and dropped now and then (held most of the time), reads
/// through it, and writes through the map while it is held.
fn writer_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => op(),
        3 => Just(Op::TakeWriter),
        1 => Just(Op::DropWriter),
        2 => key().prop_map(|key| Op::WriterRead { key }),
        3 => plain_op().prop_map(|op| Op::Shared(Box::new(op))),
    ]
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Counts an operation's outcome: `Ok`, or which error.
fn hit_result<T>(what: &'static str, result: &Result<T, Error>) {
    hit(match (what, result) {
        (_, Ok(_)) => "ok",
        ("insert", Err(Error::Full)) => "insert: Full",
        ("get_or_insert", Err(Error::Full)) => "get_or_insert: Full",
        ("update", Err(Error::Full)) => "update: Full",
        ("update", Err(Error::Aborted)) => "update: Aborted",
        ("update", Err(Error::NoFreeGeneration)) => "update: NoFreeGeneration",
        ("update", Err(Error::NoFreePage)) => "update: NoFreePage",
        (_, Err(Error::NoFreeGeneration)) => "write: NoFreeGeneration",
        (_, Err(Error::NoFreePage)) => "write: NoFreePage",
        (_, Err(_)) => "other error",
    });
}

/// Applies one transaction op to a `Txn` without checking anything (for panicking closures).
fn apply_blind<const N: usize>(tx: &mut Txn<'_, K, V, N>, op: &TxOp) {
    match *op {
        TxOp::Insert(key, value, _) => {
            let _ = tx.insert(k(key), v(value));
        }
        TxOp::Remove(key) => {
            let _ = tx.remove(&key);
        }
        TxOp::AddMut(key, add) => {
            if let Ok(Some(value)) = tx.get_mut(&key) {
                *value = v(value.value() + add);
            }
        }
        TxOp::Retain(m) => {
            let _ = tx.retain(|_, value| value.value() % m != 0);
        }
        TxOp::Clear => {
            let _ = tx.clear();
        }
        TxOp::Get(key) => {
            let _ = tx.get(&key);
        }
    }
}

/// Where a step's writes go: through the map's sole [`Writer`] while the harness holds one (and
/// the step is not [`Op::Shared`]), else through the map. Same results and errors, except that
/// the `Writer` has no `Contended` and no `try_` form of `update_versioned`.
enum Via<'h, 'm, const N: usize, const G: usize, const R: usize, const P: usize> {
    Map(&'m SnapMap<K, V, N, G, R, P>),
    Writer(&'h mut Writer<'m, K, V, N, G, R, P>),
}

impl<const N: usize, const G: usize, const R: usize, const P: usize> Via<'_, '_, N, G, R, P> {
    fn insert(&mut self, key: u8, value: u32, try_: bool) -> Result<Option<V>, Error> {
        match (self, try_) {
            (Via::Map(map), false) => map.insert(k(key), v(value)),
            (Via::Map(map), true) => map.try_insert(k(key), v(value)),
            (Via::Writer(w), false) => w.insert(k(key), v(value)),
            (Via::Writer(w), true) => w.try_insert(k(key), v(value)),
        }
    }

    fn remove(&mut self, key: u8, try_: bool) -> Result<Option<V>, Error> {
        match (self, try_) {
            (Via::Map(map), false) => map.remove(&key),
            (Via::Map(map), true) => map.try_remove(&key),
            (Via::Writer(w), false) => w.remove(&key),
            (Via::Writer(w), true) => w.try_remove(&key),
        }
    }

    fn get_or_insert(&mut self, key: u8, value: u32) -> Result<(V, bool), Error> {
        match self {
            Via::Map(map) => map.get_or_insert(k(key), v(value)),
            Via::Writer(w) => w.get_or_insert(k(key), v(value)),
        }
    }

    fn compare_exchange(&mut self, key: u8, current: u32, new: u32) -> Result<bool, Error> {
        match self {
            Via::Map(map) => map.compare_exchange(&key, &v(current), v(new)),
            Via::Writer(w) => w.compare_exchange(&key, &v(current), v(new)),
        }
    }

    fn remove_if(
        &mut self,
        key: u8,
        predicate: impl FnMut(&V) -> bool,
    ) -> Result<Option<V>, Error> {
        match self {
            Via::Map(map) => map.remove_if(&key, predicate),
            Via::Writer(w) => w.remove_if(&key, predicate),
        }
    }

    fn clear(&mut self) -> Result<(), Error> {
        match self {
            Via::Map(map) => map.clear(),
            Via::Writer(w) => w.clear(),
        }
    }

    /// `update` or `try_update`, or with `versioned` their `_versioned` forms (a `Writer`'s
    /// `try_` write has none: it reports no version, `Ok(None)`).
    fn update<T>(
        &mut self,
        try_: bool,
        versioned: bool,
        change: impl FnMut(&mut Txn<'_, K, V, N>) -> Result<T, Error>,
    ) -> Result<(T, Option<Option<u64>>), Error> {
        let plain = |r: Result<T, Error>| r.map(|t| (t, None));
        let with = |r: Result<(T, Option<u64>), Error>| r.map(|(t, v)| (t, Some(v)));
        match (self, try_, versioned) {
            (Via::Map(map), false, false) => plain(map.update(change)),
            (Via::Map(map), true, false) => plain(map.try_update(change)),
            (Via::Map(map), false, true) => with(map.update_versioned(change)),
            (Via::Map(map), true, true) => with(map.try_update_versioned(change)),
            (Via::Writer(w), false, false) => plain(w.update(change)),
            (Via::Writer(w), true, _) => plain(w.try_update(change)),
            (Via::Writer(w), false, true) => with(w.update_versioned(change)),
        }
    }
}

/// A transaction of `ops` through the map (which a `Writer` holds), panicking at its end if
/// `panics`; sets `ran` if its closure ran.
fn refused_update<const N: usize, const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<K, V, N, G, R, P>,
    ops: &[TxOp],
    try_: bool,
    versioned: bool,
    panics: bool,
    ran: &mut bool,
) -> Result<(), Error> {
    let change = |tx: &mut Txn<'_, K, V, N>| -> Result<(), Error> {
        *ran = true;
        for op in ops {
            apply_blind(tx, op);
        }
        if panics {
            panic!("{INJECTED_PANIC} (update closure)");
        }
        Ok(())
    };
    Via::Map(map).update(try_, versioned, change).map(drop)
}

/// The route of a step's writes (see [`Via`]).
fn via<'h, 'm, const N: usize, const G: usize, const R: usize, const P: usize>(
    map: &'m SnapMap<K, V, N, G, R, P>,
    writer: &'h mut Option<Writer<'m, K, V, N, G, R, P>>,
) -> Via<'h, 'm, N, G, R, P> {
    match writer {
        Some(writer) => Via::Writer(writer),
        None => Via::Map(map),
    }
}

// =============================================================================================
// The model
// =============================================================================================

struct Held<'m, const N: usize> {
    snap: Snapshot<'m, K, V, N>,
    oracle: Oracle,
    version: u64,
}

/// The model of the map's `P` spare pages, under the interval rule: a page in the pool is
/// blocked (not claimable) iff a pinned version `u` (a held snapshot's, a reader's) is one of the
/// generations that had it. A pin on `u`, older than the current version, so blocks only pages of
/// generation `u` that later publications *replaced*: at most the table's pages, and at most the
/// pages replaced since `u`. Two pins of one version block the same pages. Which pages (and so how
/// many) the harness cannot tell without the table's layout, except in a table of one page:
/// every write copies that page, so each pin older than the current version blocks exactly one,
/// its own generation's.
///
/// Replacements are not copies. A publication replaces each page it copied over, and in a table
/// of more than one page a clear replaces every page that held entries by the shared zero page
/// *without* copying: those pages go to per-position records, not to the pool, but a later write
/// that gives such a position entries again moves the record's page into the pool entry it
/// claimed, where a pin that has it still blocks it. So the sound count of pages a publication
/// replaced is its copies plus, if it included a clear, every page of the table.
///
/// So a write planned with the distinct old pinned versions `U` has at least
/// `P - sum of min(pages, replaced_since(u))` pages it may claim (its [`Plan::guaranteed`]),
/// exactly that many in a table of one page. A write's change needs at most [`Plan::max_pages`].
struct PageModel {
    /// Per version: the pages its publication copied, and whether it included a clear (none
    /// for version 0).
    published: Vec<Published>,
}

#[derive(Clone, Copy, Debug)]
struct Published {
    copies: usize,
    cleared: bool,
}

impl PageModel {
    fn new() -> Self {
        Self {
            published: vec![Published {
                copies: 0,
                cleared: false,
            }],
        }
    }

    fn since(&self, u: u64) -> &[Published] {
        &self.published[u as usize + 1..]
    }

    /// Pages copied by the publications after version `u`.
    fn copies_since(&self, u: u64) -> usize {
        self.since(u).iter().map(|p| p.copies).sum()
    }

    /// Pages replaced by the publications after version `u`, in a table of `N` slots: each
    /// copied page, and every page for a clear that replaced pages by the zero page.
    fn replaced_since<const N: usize>(&self, u: u64) -> usize {
        self.since(u)
            .iter()
            .map(|p| {
                p.copies
                    + if p.cleared && multi_page::<N>() {
                        N / 16
                    } else {
                        0
                    }
            })
            .sum()
    }

    /// Whether a clear that took pages out to records (a table of more than one page) was published at `u` or before:
    /// a later write that refills such a position moves into the pool a page that died before
    /// `u`, so copies after `u` no longer each retire a page that `u` had.
    fn cleared_by<const N: usize>(&self, u: u64) -> bool {
        multi_page::<N>() && self.published[..=u as usize].iter().any(|p| p.cleared)
    }

    /// The most spare pages the pins on the versions `pinned` (all older than the current one)
    /// may block, in a table of `N` slots.
    fn blocked_at_most<const N: usize>(&self, pinned: &BTreeSet<u64>) -> usize {
        pinned
            .iter()
            .map(|&u| table_pages::<N>().min(self.replaced_since::<N>(u)))
            .sum()
    }
}

/// A write as the model sees it before it is made.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Whether a generation slot is free for it.
    free_generation: bool,
    /// How many spare pages it may claim at least (see [`PageModel`]).
    guaranteed: usize,
    /// Whether `guaranteed` is exact: a table of one page.
    exact: bool,
    /// The most pages its change can copy: one for a new value of a present key, two for a
    /// key's insertion or removal (its probe run is shorter than a page, there being fewer keys
    /// than 16, but may cross into the next page), none for a clear of a table of more than one
    /// page (it points positions at the shared zero page) and one for a table of one page (it
    /// copies that page), every page of the table for a transaction. A map's `P` is at least the
    /// pages a one-key write can change (at least 4, or every page of a table of fewer than 64
    /// slots), so only a transaction can need more than `P`.
    max_pages: usize,
    /// The fewest pages a publication of it copies: one for a change that writes a slot; none for
    /// a clear of a table of more than one page (a transaction's, set from what its closure did:
    /// see `exec_update`).
    min_pages: usize,
    /// Whether its publication may include a clear (set for a transaction from what its closure
    /// did), for the page model's count of replaced pages.
    clears: bool,
    /// Whether it changes one key (not a transaction or a clear).
    one_key: bool,
    /// Whether a reader's snapshot (of a version older than the current one that no held
    /// snapshot shares) is all that keeps `guaranteed` below `max_pages`.
    reader_blocks: bool,
}

/// What a write changes (see [`Plan::max_pages`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The value of a present key: in one slot.
    Value,
    /// Whether the key is there: the slots of its probe run.
    Entry,
    /// Every entry.
    Clear,
    /// A transaction: any of the above, any number of times.
    Txn,
}

/// Whether a table of `N` slots has more than one page, and so clears through the shared zero
/// page, copying nothing (a table of one page, up to 16 slots, clears by copying its page).
const fn multi_page<const N: usize>() -> bool {
    table_pages::<N>() > 1
}

/// Pages of a table of `N` slots: 16 slots a page, and a smaller table is one page.
const fn table_pages<const N: usize>() -> usize {
    if N < 16 {
        1
    } else {
        N / 16
    }
}

/// Whether every entry of `small` is in `big`, with the same value.
fn within(small: &Oracle, big: &Oracle) -> bool {
    small.iter().all(|(key, value)| big.get(key) == Some(value))
}

/// What a transaction's closure did, as the model tracked it.
struct TxOutcome {
    /// The copy's contents at its end.
    work: Oracle,
    /// Whether it changed something (and so publishes, if it returns `Ok`).
    changed: bool,
    /// Whether a change wrote a slot (and so the copy owns a page; every change but a clear of a
    /// table of more than one page).
    paged: bool,
    /// Whether a clear emptied it.
    cleared: bool,
    /// Whether it returned early, with `Full`.
    early: bool,
}

/// The map under test with everything needed to predict it: the oracle's contents, the version
/// (bumped exactly when a write changed something), the snapshots and readers held, and the
/// pages each publication copied.
struct Harness<'m, const N: usize, const G: usize, const R: usize, const P: usize> {
    map: &'m SnapMap<K, V, N, G, R, P>,
    oracle: Oracle,
    version: u64,
    /// The counters after the previous step, to tell how many pages each write copied.
    stats: Stats,
    held: Vec<Held<'m, N>>,
    readers: Vec<Reader<'m, K, V, N, G, R, P>>,
    /// The version a reader's snapshot pins while `Op::ReaderHold` runs its ops under it. (The
    /// reader is out of `readers` meanwhile; an idle reader pins nothing.)
    reader_pin: Option<u64>,
    pages: PageModel,
    /// The plan of this step's write, for `verify` to check the pages it copied.
    planned: Option<Plan>,
    /// The map's sole writer, while the harness holds it: writes go through it (see [`Via`]).
    writer: Option<Writer<'m, K, V, N, G, R, P>>,
    /// Whether a `Writer` was dropped: the map's own writes since work on a map given back.
    given_back: bool,
}

impl<'m, const N: usize, const G: usize, const R: usize, const P: usize> Harness<'m, N, G, R, P> {
    fn new(map: &'m SnapMap<K, V, N, G, R, P>) -> Self {
        Self {
            map,
            oracle: Oracle::new(),
            version: 0,
            stats: Stats::default(),
            held: Vec::new(),
            readers: Vec::new(),
            reader_pin: None,
            pages: PageModel::new(),
            planned: None,
            writer: None,
            given_back: false,
        }
    }

    /// Counts a write's outcome (see [`hit_result`]), and apart the outcomes of writes through
    /// the `Writer` and through a map given back by one.
    fn hit_write<T>(&self, what: &'static str, result: &Result<T, Error>) {
        hit_result(what, result);
        if self.writer.is_some() {
            hit(match result {
                Ok(_) => "Writer: ok",
                Err(Error::Full) => "Writer: Full",
                Err(Error::Aborted) => "Writer: Aborted",
                Err(Error::NoFreeGeneration) => "Writer: NoFreeGeneration",
                Err(Error::NoFreePage) => "Writer: NoFreePage",
                Err(_) => "Writer: other error",
            });
        } else if self.given_back && result.is_ok() {
            hit("map write after a Writer was dropped");
        }
    }

    /// A reader slot is free: each registered reader owns one (one-off snapshots take none).
    fn free_reader(&self) -> bool {
        self.readers.len() < R
    }

    /// Versions pinned by snapshots: held one-off ones, and a reader's in `Op::ReaderHold`.
    fn pinned(&self) -> impl Iterator<Item = u64> + '_ {
        self.held.iter().map(|h| h.version).chain(self.reader_pin)
    }

    /// A generation slot is free: the busy ones are the current one and each distinct one
    /// pinned by a snapshot (idle registered readers pin nothing).
    fn free_generation(&self) -> bool {
        let busy: BTreeSet<u64> = self.pinned().chain([self.version]).collect();
        busy.len() < G
    }

    /// Plans (and records, for `verify`) a write of one key, a clear or a transaction.
    fn plan(&mut self, change: Change) -> Plan {
        let max_pages = match change {
            Change::Value => 1,
            Change::Entry => table_pages::<N>().min(2),
            Change::Clear => usize::from(!multi_page::<N>()),
            Change::Txn => table_pages::<N>(),
        };
        // The page budget `SnapMap::new` checks: whatever one key's write changes fits in `P`.
        assert!(
            change == Change::Txn || max_pages <= P,
            "P = {P} below a one-key write's {max_pages} pages compiled"
        );
        let old: BTreeSet<u64> = self.pinned().filter(|&u| u < self.version).collect();
        let guaranteed =
            |pinned: &BTreeSet<u64>| P.saturating_sub(self.pages.blocked_at_most::<N>(pinned));
        let reader_blocks = self.reader_pin.is_some_and(|pin| {
            let mut others = old.clone();
            let alone = others.remove(&pin) && self.held.iter().all(|h| h.version != pin);
            alone && guaranteed(&old) < max_pages && guaranteed(&others) >= max_pages
        });
        let plan = Plan {
            free_generation: self.free_generation(),
            guaranteed: guaranteed(&old),
            exact: table_pages::<N>() == 1,
            max_pages,
            min_pages: usize::from(change != Change::Clear || !multi_page::<N>()),
            clears: change == Change::Clear || change == Change::Txn,
            one_key: matches!(change, Change::Value | Change::Entry),
            reader_blocks,
        };
        self.planned = Some(plan);
        plan
    }

    /// Whether a blocking form of the planned write is sure not to wait: a generation slot is
    /// free, and so are the pages of any change it can make (it succeeds), or every spare page
    /// (it succeeds, or fails with `NoFreePage` for a transaction needing more than `P` pages).
    /// With pages blocked it could wait for itself. (A clear of a table of more than one page needs
    /// no page: it can always block.)
    fn can_block(plan: &Plan) -> bool {
        plan.free_generation && (plan.guaranteed >= plan.max_pages || plan.guaranteed == P)
    }

    /// Checks a write's `NoFreePage`, or its absence, against the pool model (`changes`: whether
    /// the change changes anything, and so may need a page; `blocking`: which form was called).
    /// Returns whether it ran out of pages. Without a free generation slot the write never
    /// reaches its pages: the caller expects `NoFreeGeneration`.
    fn out_of_pages<T: std::fmt::Debug>(
        plan: &Plan,
        changes: bool,
        blocking: bool,
        got: &Result<T, Error>,
    ) -> Result<bool, String> {
        let starved = matches!(got, Err(Error::NoFreePage));
        if !plan.free_generation {
            return Ok(false);
        }
        if starved {
            ensure!(changes, "NoFreePage for a change that changes nothing");
            ensure!(
                plan.max_pages > 0,
                "NoFreePage for a clear, which needs no spare page"
            );
            // Never: `P` covers any one-key write, and a blocking form waits for pages.
            ensure!(
                !(plan.one_key && blocking),
                "a blocking one-key write returned NoFreePage"
            );
            ensure!(
                plan.guaranteed < plan.max_pages,
                "NoFreePage with at least {} of {P} spare pages claimable, for a change of at \
                 most {} pages",
                plan.guaranteed,
                plan.max_pages
            );
            if plan.guaranteed == P {
                // Nothing blocked: the change needs more pages than the pool has.
                hit("change needs more than P pages");
                if plan.one_key {
                    hit("one-key change needs more than P pages");
                }
                if blocking {
                    hit("blocking write: NoFreePage");
                }
            } else {
                // (`can_block` allowed a blocking form only where the checks above fail.)
                hit("try_ write got NoFreePage");
                if plan.reader_blocks {
                    hit("a Reader's snapshot blocked a write's pages");
                }
            }
        } else if changes && plan.exact {
            ensure!(
                plan.guaranteed > 0,
                "every spare page is blocked (a pin per page, in a table of one page), yet the \
                 write gave {got:?}"
            );
        }
        Ok(starved)
    }

    fn model_insert(&mut self, key: u8, value: u32) -> Result<Option<u32>, Error> {
        if !self.oracle.contains_key(&key) && self.oracle.len() == N {
            return Err(Error::Full);
        }
        // Every successful insert publishes, even of an equal value (a `Txn::insert` is a change).
        self.version += 1;
        Ok(self.oracle.insert(key, value))
    }

    fn model_remove(&mut self, key: u8) -> Option<u32> {
        let old = self.oracle.remove(&key);
        self.version += u64::from(old.is_some());
        old
    }

    /// Runs one operation on the map and the model. The map is always called first and the
    /// model updated after, so a panic in the map's call leaves the model as it was.
    fn exec(&mut self, op: &Op) -> Result<(), String> {
        let map = self.map;
        match op {
            &Op::Insert { key, value, try_ } => {
                let present = self.oracle.contains_key(&key);
                let plan = self.plan(if present {
                    Change::Value
                } else {
                    Change::Entry
                });
                let use_try = try_ || !Self::can_block(&plan);
                let got = via(map, &mut self.writer).insert(key, value, use_try);
                let got = got.map(|old| old.map(|o| o.value()));
                let full = !present && self.oracle.len() == N;
                let starved = Self::out_of_pages(&plan, !full, !use_try, &got)
                    .map_err(|e| format!("insert({key}, {value}) try={use_try}: {e}"))?;
                let expected = if !plan.free_generation {
                    Err(Error::NoFreeGeneration)
                } else if starved {
                    Err(Error::NoFreePage)
                } else {
                    self.model_insert(key, value)
                };
                self.hit_write("insert", &expected);
                ensure!(
                    got == expected,
                    "insert({key}, {value}) try={use_try}: got {got:?}, expected {expected:?}"
                );
            }
            &Op::Remove { key, try_ } => {
                let present = self.oracle.contains_key(&key);
                let plan = self.plan(Change::Entry);
                let use_try = try_ || !Self::can_block(&plan);
                let got = via(map, &mut self.writer).remove(key, use_try);
                let got = got.map(|old| old.map(|o| o.value()));
                let starved = Self::out_of_pages(&plan, present, !use_try, &got)
                    .map_err(|e| format!("remove({key}) try={use_try}: {e}"))?;
                let expected = if !plan.free_generation {
                    Err(Error::NoFreeGeneration)
                } else if starved {
                    Err(Error::NoFreePage)
                } else {
                    Ok(self.model_remove(key))
                };
                self.hit_write("remove", &expected);
                ensure!(
                    got == expected,
                    "remove({key}) try={use_try}: got {got:?}, expected {expected:?}"
                );
            }
            &Op::Get { key, try_ } => {
                // A one-off read never waits: its pin is counted, it takes no reader slot.
                let expected = self.oracle.get(&key).copied();
                let got = if try_ {
                    map.snapshot().get(&key).map(|x| x.value())
                } else {
                    map.get(&key).map(|x| x.value())
                };
                ensure!(
                    got == expected,
                    "get({key}) snapshot={try_}: got {got:?}, expected {expected:?}"
                );
            }
            &Op::GetOrInsert { key, value } => {
                // Reads first, and writes (a blocking form only) if absent.
                let present = self.oracle.get(&key).copied();
                let plan = self.plan(Change::Entry);
                if present.is_none() && !Self::can_block(&plan) {
                    hit("get_or_insert skipped: would wait");
                    return Ok(());
                }
                let got = via(map, &mut self.writer)
                    .get_or_insert(key, value)
                    .map(|(x, loaded)| (x.value(), loaded));
                let full = present.is_none() && self.oracle.len() == N;
                let changes = present.is_none() && !full;
                let starved = Self::out_of_pages(&plan, changes, true, &got)
                    .map_err(|e| format!("get_or_insert({key}, {value}): {e}"))?;
                let expected = match present {
                    Some(existing) => {
                        hit("get_or_insert: present");
                        Ok((existing, true))
                    }
                    None if starved => Err(Error::NoFreePage),
                    None => self.model_insert(key, value).map(|_| (value, false)),
                };
                self.hit_write("get_or_insert", &expected);
                ensure!(
                    got == expected,
                    "get_or_insert({key}, {value}): got {got:?}, expected {expected:?}"
                );
            }
            &Op::CompareExchange { key, expect, new } => {
                let plan = self.plan(Change::Value);
                if !Self::can_block(&plan) {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let current = expect.unwrap_or_else(|| self.oracle.get(&key).copied().unwrap_or(0));
                let got = via(map, &mut self.writer).compare_exchange(key, current, new);
                let swaps = self.oracle.get(&key) == Some(&current);
                let starved = Self::out_of_pages(&plan, swaps, true, &got)
                    .map_err(|e| format!("compare_exchange({key}, {current}, {new}): {e}"))?;
                let expected = if starved {
                    Err(Error::NoFreePage)
                } else if swaps {
                    self.oracle.insert(key, new);
                    self.version += 1;
                    Ok(true)
                } else {
                    Ok(false)
                };
                hit(if expected == Ok(true) {
                    "compare_exchange: swapped"
                } else {
                    "compare_exchange: mismatch"
                });
                ensure!(
                    got == expected,
                    "compare_exchange({key}, {current}, {new}): got {got:?}, expected {expected:?}"
                );
            }
            &Op::RemoveIf { key, modulus } => {
                let plan = self.plan(Change::Entry);
                if !Self::can_block(&plan) {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let got = via(map, &mut self.writer)
                    .remove_if(key, |x| x.value() % modulus == 0)
                    .map(|o| o.map(|x| x.value()));
                let removes = self.oracle.get(&key).is_some_and(|x| x % modulus == 0);
                let starved = Self::out_of_pages(&plan, removes, true, &got)
                    .map_err(|e| format!("remove_if({key}, % {modulus}): {e}"))?;
                let expected = if starved {
                    Err(Error::NoFreePage)
                } else if removes {
                    Ok(self.model_remove(key))
                } else {
                    Ok(None)
                };
                hit(if expected.is_ok_and(|r| r.is_some()) {
                    "remove_if: removed"
                } else {
                    "remove_if: kept"
                });
                ensure!(
                    got == expected,
                    "remove_if({key}, % {modulus}): got {got:?}, expected {expected:?}"
                );
            }
            Op::Clear => {
                // A table of more than one page: the clear needs no page, so it can always block
                // (given a generation slot). A table of one page: the clear copies it.
                let plan = self.plan(Change::Clear);
                ensure!(
                    !multi_page::<N>() || Self::can_block(&plan) == plan.free_generation,
                    "a clear that needs no page would wait for pages"
                );
                if !Self::can_block(&plan) {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let got = via(map, &mut self.writer).clear();
                let starved = Self::out_of_pages(&plan, !self.oracle.is_empty(), true, &got)
                    .map_err(|e| format!("clear: {e}"))?;
                if starved {
                    // Impossible (`out_of_pages` fails it first): counted for the never-lists.
                    hit("clear: NoFreePage");
                }
                ensure!(got == Ok(()), "clear: {got:?}");
                if !self.oracle.is_empty() {
                    self.oracle.clear();
                    self.version += 1;
                }
            }
            Op::Update {
                ops,
                abort,
                try_,
                versioned,
            } => return self.exec_update(ops, *abort, *try_, *versioned),
            &Op::PanicInUpdate { ref ops, try_ } => {
                let plan = self.plan(Change::Txn);
                if !plan.free_generation {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let use_try = try_ || !Self::can_block(&plan);
                let change = |tx: &mut Txn<'_, K, V, N>| -> Result<(), Error> {
                    for op in ops {
                        apply_blind(tx, op);
                    }
                    panic!("{INJECTED_PANIC} (update closure)");
                };
                let mut via = via(map, &mut self.writer);
                let by_writer = matches!(via, Via::Writer(_));
                let result = catch_unwind(AssertUnwindSafe(|| via.update(use_try, false, change)));
                ensure!(
                    result.is_err(),
                    "a panicking update returned {:?}",
                    result.ok()
                );
                hit("update closure panicked");
                if by_writer {
                    hit("Writer: update closure panicked");
                }
            }
            &Op::HoldSnapshot { try_ } => {
                // Never waits, however many are held (and registered readers there are).
                let snap = map.snapshot();
                if try_ {
                    // A second one at once, dropped at once: it must not disturb the first.
                    let again = map.snapshot();
                    ensure!(
                        again.version() == snap.version(),
                        "two snapshots in a row: versions {} and {}",
                        snap.version(),
                        again.version()
                    );
                }
                self.held.push(Held {
                    snap,
                    oracle: self.oracle.clone(),
                    version: self.version,
                });
                if self.held.len() >= 2 {
                    hit("two or more snapshots held");
                }
                if self.held.len() > R {
                    hit("more snapshots held than reader slots");
                }
            }
            &Op::DropSnapshot(i) => {
                if !self.held.is_empty() {
                    let i = i % self.held.len();
                    self.held.remove(i);
                }
            }
            Op::RegisterReader => {
                let free = self.free_reader();
                match map.reader() {
                    Ok(reader) => {
                        ensure!(free, "reader() succeeded with every reader slot taken");
                        self.readers.push(reader);
                    }
                    Err(e) => {
                        ensure!(
                            !free && e == Error::NoReaderSlot,
                            "reader(): {e:?} (a slot was free: {free})"
                        );
                        hit("reader(): NoReaderSlot");
                    }
                }
            }
            &Op::DropReader(i) => {
                if !self.readers.is_empty() {
                    let i = i % self.readers.len();
                    self.readers.remove(i);
                }
            }
            &Op::ReaderRead { reader, key } => {
                if self.readers.is_empty() {
                    return Ok(());
                }
                let i = reader % self.readers.len();
                let reader = &mut self.readers[i];
                check_view(&reader.snapshot(), &self.oracle, self.version)
                    .map_err(|e| format!("reader snapshot: {e}"))?;
                let got = reader.get(&key).map(|x| x.value());
                ensure!(
                    got == self.oracle.get(&key).copied(),
                    "reader.get({key}) = {got:?}"
                );
                hit("read through a registered Reader");
            }
            Op::ReaderHold { reader, ops } => {
                if self.readers.is_empty() {
                    return Ok(());
                }
                // Out of `readers` while its snapshot borrows it; a panic in an op drops it (and
                // the bomb that caught the panic forgets `reader_pin`), freeing its slot.
                let i = reader % self.readers.len();
                let mut reader = self.readers.swap_remove(i);
                let (oracle, version) = (self.oracle.clone(), self.version);
                let snap = reader.snapshot();
                self.reader_pin = Some(version);
                let result = ops.iter().try_for_each(|op| {
                    self.exec(op)
                        .and_then(|()| self.verify())
                        .and_then(|()| check_view(&snap, &oracle, version))
                        .map_err(|e| format!("under a reader's snapshot, {op:?}: {e}"))
                });
                self.reader_pin = None;
                drop(snap);
                self.readers.push(reader);
                result?;
                if self.version > version {
                    hit(if self.version > version + 1 {
                        "a Reader's snapshot held across two writes"
                    } else {
                        "a Reader's snapshot held across a write"
                    });
                }
            }
            Op::CloneBomb { after, op } => {
                let bomb = panic_on_clone_after(*after);
                let result = catch_unwind(AssertUnwindSafe(|| self.exec(op)));
                let fired = bomb.fired();
                drop(bomb);
                return match result {
                    Ok(inner) => {
                        // PanicInUpdate catches its own panic, which may be the clone's.
                        let catches = matches!(**op, Op::PanicInUpdate { .. });
                        ensure!(
                            !fired || catches,
                            "the injected clone panic fired but did not escape"
                        );
                        inner
                    }
                    Err(payload) => {
                        // The unwind dropped any reader snapshot `op` held.
                        self.reader_pin = None;
                        let message = panic_message(&*payload);
                        ensure!(
                            fired && message.contains(INJECTED_PANIC),
                            "unexpected panic: {message}"
                        );
                        hit("clone panicked");
                        if self.writer.is_some() {
                            hit("Writer: clone panicked");
                        }
                        Ok(())
                    }
                };
            }
            Op::DropBomb { after, op } => {
                let bomb = panic_on_drop_after(*after);
                let result = catch_unwind(AssertUnwindSafe(|| self.exec(op)));
                let fired = bomb.fired();
                drop(bomb);
                let payload = match result {
                    Ok(inner) => {
                        ensure!(!fired, "the injected drop panic fired but did not escape");
                        return inner;
                    }
                    Err(payload) => payload,
                };
                let message = panic_message(&*payload);
                ensure!(
                    fired && message.contains(INJECTED_PANIC),
                    "unexpected panic: {message}"
                );
                // The model is as before `op` (the map is called first). A drop that panicked
                // before the publishing CAS (of a reused page's old entry, in a `Txn`, of a
                // rejected key) published nothing; only an insert or a remove drops something
                // after it (the key and value it was given, the value it returned), and then
                // its change stands (`verify` accounts for the pages it copied).
                let published = self.map.stats().publishes as u64 - self.version;
                match (published, &**op) {
                    (0, _) => {
                        hit("drop panicked, nothing published");
                        if self.writer.is_some() {
                            hit("Writer: drop panicked, nothing published");
                        }
                    }
                    (1, &Op::Insert { key, value, .. }) => {
                        self.model_insert(key, value)
                            .map_err(|e| format!("insert published, but the model says {e:?}"))?;
                        hit("drop panicked after publishing");
                        if self.writer.is_some() {
                            hit("Writer: drop panicked after publishing");
                        }
                    }
                    (1, &Op::Remove { key, .. }) => {
                        ensure!(
                            self.model_remove(key).is_some(),
                            "remove of an absent key published"
                        );
                        hit("drop panicked after publishing");
                    }
                    (n, op) => return Err(format!("a drop panic in {op:?} published {n} times")),
                }
            }
            Op::TakeWriter => match (map.writer(), self.writer.is_some()) {
                (Ok(writer), false) => {
                    ensure!(
                        std::ptr::eq(writer.map(), map),
                        "Writer::map is another map"
                    );
                    self.writer = Some(writer);
                    hit(if self.given_back {
                        "Writer taken again"
                    } else {
                        "Writer taken"
                    });
                }
                (Err(Error::WriterHeld), true) => hit("writer(): WriterHeld"),
                (got, held) => {
                    return Err(format!(
                        "writer() with a Writer held: {held}, gave {:?}",
                        got.map(drop)
                    ))
                }
            },
            Op::DropWriter => {
                if self.writer.take().is_some() {
                    self.given_back = true;
                }
            }
            &Op::WriterRead { key } => {
                let Some(writer) = &self.writer else {
                    return Ok(());
                };
                check_view(&writer.snapshot(), &self.oracle, self.version)
                    .map_err(|e| format!("Writer's snapshot: {e}"))?;
                let got = writer.get(&key).map(|x| x.value());
                ensure!(
                    got == self.oracle.get(&key).copied(),
                    "Writer::get({key}) = {got:?}"
                );
                hit("read through the Writer");
            }
            Op::Shared(op) => {
                if self.writer.is_some() {
                    return self.exec_refused(op);
                }
                return self.exec(op);
            }
        }
        Ok(())
    }

    /// Runs `op` through the map while the harness holds the `Writer`: a write must return
    /// `WriterHeld` without running its closure, publishing nothing (the model stays as it
    /// is); anything else runs as ever.
    fn exec_refused(&mut self, op: &Op) -> Result<(), String> {
        let map = self.map;
        let mut ran = false;
        let got = match *op {
            Op::Insert { key, value, try_ } => Via::Map(map).insert(key, value, try_).map(drop),
            Op::Remove { key, try_ } => Via::Map(map).remove(key, try_).map(drop),
            Op::GetOrInsert { key, value } => {
                let got = map
                    .get_or_insert(k(key), v(value))
                    .map(|(x, loaded)| (x.value(), loaded));
                // Present: a read, which any context may make.
                if let Some(&present) = self.oracle.get(&key) {
                    ensure!(
                        got == Ok((present, true)),
                        "get_or_insert({key}) of a present key with a Writer held: {got:?}"
                    );
                    return Ok(());
                }
                got.map(drop)
            }
            Op::CompareExchange { key, expect, new } => {
                let current = expect.unwrap_or_else(|| self.oracle.get(&key).copied().unwrap_or(0));
                Via::Map(map).compare_exchange(key, current, new).map(drop)
            }
            Op::RemoveIf { key, .. } => Via::Map(map)
                .remove_if(key, |_| {
                    ran = true;
                    true
                })
                .map(drop),
            Op::Clear => map.clear(),
            Op::Update {
                ref ops,
                try_,
                versioned,
                ..
            } => refused_update(map, ops, try_, versioned, false, &mut ran),
            Op::PanicInUpdate { ref ops, try_ } => {
                refused_update(map, ops, try_, false, true, &mut ran)
            }
            _ => return self.exec(op),
        };
        ensure!(!ran, "{op:?} ran its closure with a Writer held");
        ensure!(
            got == Err(Error::WriterHeld),
            "{op:?} through the map with a Writer held: {got:?}"
        );
        hit("map write refused: WriterHeld");
        Ok(())
    }

    fn exec_update(
        &mut self,
        ops: &[TxOp],
        abort: bool,
        try_: bool,
        versioned: bool,
    ) -> Result<(), String> {
        let map = self.map;
        let plan = self.plan(Change::Txn);
        let use_try = try_ || !Self::can_block(&plan);
        let oracle = &self.oracle;
        let mut runs = 0;
        let mut mismatches: Vec<String> = Vec::new();
        let mut outcome: Option<TxOutcome> = None;
        // Whether the copy ran out of pages: from then on every change returns `NoFreePage` and
        // changes nothing, and the write publishes nothing.
        let mut starved = false;
        let change = |tx: &mut Txn<'_, K, V, N>| -> Result<usize, Error> {
            runs += 1;
            // What the copy holds: the oracle with the changes so far (frozen once starved).
            let mut work = oracle.clone();
            // Whether a change was made, and whether one wrote a slot (and so owns a page: every
            // change but a clear of a table of more than one page, which copies none), and whether
            // a clear emptied the copy.
            let (mut changed, mut paged, mut cleared) = (false, false, false);
            let (start, _) = contents(tx.iter());
            if start != work {
                mismatches.push(format!("txn starts from {start:?}, not {work:?}"));
            }
            for op in ops {
                // This op's results are those of a copy that just ran out of pages.
                let mut starves = false;
                let out = Err(Error::NoFreePage);
                match *op {
                    TxOp::Insert(key, value, propagate) => {
                        let full = !work.contains_key(&key) && work.len() == N;
                        let expected = if starved {
                            out
                        } else if full {
                            Err(Error::Full)
                        } else {
                            Ok(work.get(&key).copied())
                        };
                        let got = tx
                            .insert(k(key), v(value))
                            .map(|old| old.map(|o| o.value()));
                        if got == out && expected.is_ok() {
                            starves = true;
                        } else if got != expected {
                            mismatches.push(format!(
                                "tx.insert({key}, {value}): {got:?}, expected {expected:?}"
                            ));
                        } else if got.is_ok() {
                            (changed, paged) = (true, true);
                            work.insert(key, value);
                        }
                        if propagate && got.is_err() {
                            starved |= starves;
                            outcome = Some(TxOutcome {
                                work,
                                changed,
                                paged,
                                cleared,
                                early: true,
                            });
                            return Err(Error::Full);
                        }
                    }
                    TxOp::Remove(key) => {
                        let expected = if starved {
                            out
                        } else {
                            Ok(work.get(&key).copied())
                        };
                        let got = values(tx.remove(&key));
                        if got == out && expected.as_ref().is_ok_and(Option::is_some) {
                            starves = true;
                        } else if got != expected {
                            mismatches
                                .push(format!("tx.remove({key}): {got:?}, expected {expected:?}"));
                        } else if let Ok(Some(_)) = got {
                            (changed, paged) = (true, true);
                            work.remove(&key);
                        }
                    }
                    TxOp::AddMut(key, add) => {
                        let expected = if starved {
                            out
                        } else {
                            Ok(work.get(&key).map(|x| x + add))
                        };
                        let got = tx.get_mut(&key).map(|x| {
                            x.map(|x| {
                                *x = v(x.value() + add);
                                x.value()
                            })
                        });
                        if got == out && expected.as_ref().is_ok_and(Option::is_some) {
                            starves = true;
                        } else if got != expected {
                            mismatches.push(format!(
                                "tx.get_mut({key}) += {add}: {got:?}, expected {expected:?}"
                            ));
                        } else if let Ok(Some(x)) = got {
                            (changed, paged) = (true, true);
                            work.insert(key, x);
                        }
                    }
                    TxOp::Retain(m) => {
                        // Each entry meets the predicate once (a stateful one must be able to
                        // count on it); a retain that runs out of pages stops at the entry it
                        // could not remove (met, and kept), and keeps the rest; one on a copy
                        // already out of pages asks about nothing.
                        let mut met = BTreeMap::new();
                        let got = tx.retain(|key, x| {
                            *met.entry(key.value()).or_insert(0) += 1;
                            x.value() % m != 0
                        });
                        let (now, _) = contents(tx.iter());
                        let kept: Oracle = work
                            .iter()
                            .filter(|&(_, x)| x % m != 0)
                            .map(|(&key, &x)| (key, x))
                            .collect();
                        let once = met.values().all(|&n| n == 1)
                            && met.keys().all(|key| work.contains_key(key));
                        let removes = kept.len() != work.len();
                        if !once {
                            mismatches.push(format!("tx.retain met {met:?}, for {work:?}"));
                        } else if starved {
                            if got != Err(Error::NoFreePage) || !met.is_empty() {
                                mismatches
                                    .push(format!("tx.retain out of pages: {got:?}, met {met:?}"));
                            }
                            // `now` is checked against `work` below.
                        } else if got.is_ok() && now == kept && met.keys().eq(work.keys()) {
                            changed |= removes;
                            paged |= removes;
                            work = kept;
                        } else if got == Err(Error::NoFreePage)
                            && removes
                            && within(&kept, &now)
                            && within(&now, &work)
                            && now
                                .keys()
                                .any(|key| met.contains_key(key) && !kept.contains_key(key))
                            && (table_pages::<N>() > 1 || now == work)
                        {
                            starves = true;
                            // The entries it removed before it stopped are gone from the copy.
                            changed |= now.len() < work.len();
                            work = now;
                        } else {
                            mismatches.push(format!(
                                "tx.retain(% {m}): {got:?}, left {now:?} of {work:?}, met {met:?}"
                            ));
                        }
                    }
                    TxOp::Clear => {
                        // All or nothing: a clear that runs out of pages removes no entry (one
                        // cleared in part would leave keys its own lookups cannot find). In a
                        // table of more than one page it needs no page, so it never runs out on
                        // its own; a table of one page copies it (unless a change before did).
                        let got = tx.clear();
                        let (now, _) = contents(tx.iter());
                        if starved {
                            if got != Err(Error::NoFreePage) {
                                mismatches.push(format!("tx.clear out of pages: {got:?}"));
                            }
                        } else if got.is_ok() && now.is_empty() {
                            if !work.is_empty() {
                                changed = true;
                                cleared = true;
                                paged |= !multi_page::<N>();
                            }
                            work.clear();
                        } else if got == Err(Error::NoFreePage)
                            && now == work
                            && !multi_page::<N>()
                            && !paged
                        {
                            starves = true;
                        } else {
                            mismatches.push(format!(
                                "tx.clear: {got:?}, left {now:?} of {work:?} (pages owned: \
                                 {paged})"
                            ));
                        }
                    }
                    TxOp::Get(key) => {
                        let got = tx.get(&key).map(|x| x.value());
                        if got != work.get(&key).copied()
                            || tx.contains_key(&key) != work.contains_key(&key)
                        {
                            mismatches.push(format!(
                                "tx.get({key}): {got:?}, expected {:?}",
                                work.get(&key)
                            ));
                        }
                    }
                }
                if starves && table_pages::<N>() == 1 && paged {
                    // The copy owns the table's one page: no change can need another.
                    mismatches.push(format!("{op:?} ran out of pages in a table of one page"));
                }
                starved |= starves;
                // A change that ran out of pages changed nothing (insert, remove, get_mut,
                // clear) or only some of what it would have (retain: `work` is what is left).
                let (now, count) = contents(tx.iter());
                if now != work
                    || count != tx.len()
                    || tx.len() != work.len()
                    || tx.is_empty() != work.is_empty()
                {
                    mismatches.push(format!(
                        "after {op:?} (out of pages: {starved}): txn {now:?} (len {}), expected \
                         {work:?}",
                        tx.len()
                    ));
                }
            }
            let len = work.len();
            outcome = Some(TxOutcome {
                work,
                changed,
                paged,
                cleared,
                early: false,
            });
            if abort {
                Err(Error::Aborted)
            } else {
                Ok(len)
            }
        };
        let got = via(map, &mut self.writer).update(use_try, versioned, change);
        // The version an `_versioned` form reported (`Some(None)`: it published nothing).
        let (got, reported) = match got {
            Ok((len, reported)) => (Ok(len), reported),
            Err(e) => (Err(e), None),
        };
        ensure!(mismatches.is_empty(), "update({ops:?}): {mismatches:?}");
        self.hit_write("update", &got);
        if !plan.free_generation {
            ensure!(
                got == Err(Error::NoFreeGeneration) && runs == 0,
                "update with no free generation: got {got:?} after {runs} runs"
            );
            return Ok(());
        }
        ensure!(
            runs == 1,
            "single-threaded update ran its closure {runs} times"
        );
        let TxOutcome {
            work,
            changed,
            paged,
            cleared,
            early,
        } = outcome.expect("the closure ran");
        ensure!(
            starved == (got == Err(Error::NoFreePage)),
            "update({ops:?}): the copy ran out of pages: {starved}, yet the update gave {got:?}"
        );
        Self::out_of_pages(&plan, changed || starved, !use_try, &got)
            .map_err(|e| format!("update({ops:?}) try={use_try}: {e}"))?;
        if starved {
            hit("txn ran out of pages");
            return Ok(());
        }
        let expected = if early {
            Err(Error::Full)
        } else if abort {
            Err(Error::Aborted)
        } else {
            Ok(work.len())
        };
        ensure!(
            got == expected,
            "update({ops:?}, abort {abort}): got {got:?}, expected {expected:?}"
        );
        if got.is_ok() {
            let published = changed.then_some(self.version + 1);
            ensure!(
                reported.is_none_or(|reported| reported == published),
                "update_versioned({ops:?}) reported {reported:?}, published {published:?}"
            );
            if reported.is_some() {
                hit("update_versioned: version checked");
            }
            if changed {
                hit("update: published");
                self.oracle = work;
                self.version += 1;
                // What `verify` checks the publication's copies against: a transaction that
                // only cleared (and changed nothing that writes a slot) copies no page; one
                // that wrote a slot copies at least that page, after a clear too.
                let plan = self.planned.as_mut().expect("planned");
                plan.clears = cleared;
                plan.min_pages = usize::from(paged);
                if !paged {
                    plan.max_pages = 0;
                }
                if cleared && paged && multi_page::<N>() {
                    hit("txn cleared and wrote a slot");
                }
            } else {
                hit("update: changed nothing");
                ensure!(work == self.oracle, "an unchanged txn ended with {work:?}");
            }
        }
        Ok(())
    }

    /// After every step: the current contents and version, every held snapshot still exactly as
    /// when it was taken, the counters, and the pages the step's write copied (which the page
    /// model then records).
    fn verify(&mut self) -> Result<(), String> {
        for (i, held) in self.held.iter().enumerate() {
            check_view(&held.snap, &held.oracle, held.version)
                .map_err(|e| format!("held snapshot {i}: {e}"))?;
        }
        let stats = self.map.stats();
        ensure!(
            stats.publishes as u64 == self.version,
            "{stats:?}, but {} changes",
            self.version
        );
        ensure!(
            stats.cas_retries == 0 && stats.slot_waits == 0 && stats.page_waits == 0,
            "single-threaded, yet {stats:?}"
        );
        let published = stats.publishes - self.stats.publishes;
        let copies = stats.page_copies - self.stats.page_copies;
        match (published, self.planned.take()) {
            (0, _) => ensure!(copies == 0, "{copies} pages copied, nothing published"),
            (1, Some(plan)) => {
                let claimable = if plan.exact { plan.guaranteed } else { P };
                ensure!(
                    copies >= plan.min_pages && copies <= claimable && copies <= plan.max_pages,
                    "a write copied {copies} pages, with {claimable} of {P} spare pages claimable \
                     at most, for a change of {} to {} pages",
                    plan.min_pages,
                    plan.max_pages
                );
                ensure!(
                    self.pages.published.len() as u64 == self.version,
                    "page model out of step"
                );
                self.pages.published.push(Published {
                    copies,
                    cleared: plan.clears,
                });
                // Impossible under the old rule, where a pin blocked every page replaced after
                // it (so at most P of them). (Not after a clear that left pages in records: a
                // refill then moves into the pool a page that may have died before the pin.)
                if self
                    .pinned()
                    .any(|u| self.pages.copies_since(u) > P && !self.pages.cleared_by::<N>(u))
                {
                    hit(HELD_ACROSS_MORE_THAN_P);
                }
                hit(match (copies, plan.one_key) {
                    (0, _) => "a publication that cleared copied no page",
                    (1, _) => "write copied one page",
                    (_, true) => "one-key write copied two pages",
                    (_, false) => "write copied two or more pages",
                });
            }
            (1, None) => return Err("a step published without a planned write".into()),
            (n, _) => return Err(format!("one step published {n} generations")),
        }
        self.stats = stats;
        check_view(&self.map.snapshot(), &self.oracle, self.version)
            .map_err(|e| format!("current: {e}"))?;
        Ok(())
    }
}

/// Empties `map`, which nothing pins, with `clear`: it needs no spare page in a table of 16
/// slots or more, and one (of at least one) in a table of one page, so it never fails.
fn empty<KK, VV, const N: usize, const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<KK, VV, N, G, R, P>,
) -> Result<(), String>
where
    KK: Hash + Eq + Clone,
    VV: Clone,
{
    let copies = map.stats().page_copies;
    ensure!(map.clear() == Ok(()), "clear of a map nothing pins failed");
    let copied = map.stats().page_copies - copies;
    ensure!(
        copied <= usize::from(!multi_page::<N>()),
        "a clear copied {copied} pages, in a table of {} pages",
        table_pages::<N>()
    );
    ensure!(map.snapshot().is_empty(), "cleared, yet not empty");
    Ok(())
}

/// With nothing held: all `R` reader slots can be registered (and then no more); a registered
/// reader that read holds nothing once its snapshot dropped; and every generation slot and every
/// spare page is usable. With the readers idle, the probe pins one generation after another with
/// one-off snapshots while writing one key (a page a write, so each pin blocks the one page of
/// its generation that the write after it replaced): the write that finds every generation busy
/// (`G - 1` pinned and the current one) or every spare page blocked (`P` pins) fails, at exactly
/// the write and with exactly the error the model predicts (generations are claimed first). Then
/// one reader's snapshot (a hazard pin, not a count) blocks exactly one page however many writes
/// follow: with `P >= 2`, more than `P` writes go through under it; with `P = 1` the second finds
/// no page. A slot or page leaked by an earlier error or panic, a sticky reader pin, or a pin
/// that blocks pages of later generations makes this fail. `key()` must be one key.
fn probe_slots_with<KK, VV, const N: usize, const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<KK, VV, N, G, R, P>,
    key: impl Fn() -> KK,
    value: impl Fn(u32) -> VV,
) -> Result<(), String>
where
    KK: Hash + Eq + Clone,
    VV: Clone,
{
    empty(map)?;
    let mut readers = (0..R)
        .map(|i| {
            map.reader()
                .map_err(|e| format!("reader slot {i} of {R}: {e:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ensure!(
        matches!(map.reader(), Err(Error::NoReaderSlot)),
        "an extra reader slot for reader()"
    );
    // Every registered reader reads a different version, and then idles.
    for (i, reader) in readers.iter_mut().enumerate() {
        drop(reader.snapshot());
        let r = map.try_insert(key(), value(i as u32)).map(drop);
        ensure!(r.is_ok(), "write {i} with {} idle readers: {r:?}", i + 1);
    }
    ensure!(
        map.get(&key()).is_some(),
        "a one-off read with every reader slot registered"
    );

    // Pin i + 1 generations (the current one included) and block the i pages that the writes
    // after the pins replaced, one each, then write: the write that fails is write `stop`.
    let stop = (G - 1).min(P);
    let mut held = Vec::new();
    for i in 0..=stop {
        held.push(map.snapshot());
        let copies = map.stats().page_copies;
        let r = map.try_insert(key(), value(i as u32)).map(drop);
        if i < stop {
            ensure!(
                r.is_ok(),
                "write {i} with {} generations of {G} pinned and {i} pages of {P} blocked: {r:?}",
                i + 1
            );
            let copied = map.stats().page_copies - copies;
            ensure!(copied == 1, "a write of one key copied {copied} pages");
        } else {
            let expected = if G - 1 <= P {
                Error::NoFreeGeneration
            } else {
                Error::NoFreePage
            };
            ensure!(
                r == Err(expected),
                "{} generations of {G} pinned and {i} pages of {P} blocked, yet try_insert gave \
                 {r:?}, not {expected:?}",
                i + 1
            );
        }
    }
    let versions: BTreeSet<u64> = held.iter().map(|s| s.version()).collect();
    ensure!(
        versions.len() == stop + 1,
        "held snapshots share generations: {versions:?}"
    );
    drop(held);
    ensure!(
        map.try_insert(key(), value(1000)).is_ok(),
        "try_insert after releasing the pins"
    );

    // One pin blocks only the page of its generation that the first write after it replaced:
    // with two spare pages or more, 2P + 1 writes go (each copies one page); with one, the
    // second finds no page. (With G = 2 the pin and the current generation leave writers no
    // slot: nothing to test.)
    if G >= 3 {
        let pin = match readers.first_mut() {
            Some(reader) => reader.snapshot(),
            None => map.snapshot(),
        };
        let writes = if P == 1 { 1 } else { 2 * P + 1 };
        for i in 0..writes {
            let copies = map.stats().page_copies;
            let r = map.try_insert(key(), value(i as u32)).map(drop);
            ensure!(
                r.is_ok(),
                "write {i} of {writes} under one pin, P = {P}: {r:?}"
            );
            let copied = map.stats().page_copies - copies;
            ensure!(copied == 1, "a write of one key copied {copied} pages");
        }
        if P == 1 {
            let r = map.try_insert(key(), value(2000)).map(drop);
            ensure!(
                r == Err(Error::NoFreePage),
                "one write under one pin blocks the only spare page, yet the next one gave {r:?}"
            );
        }
        drop(pin);
        let r = map.try_insert(key(), value(3000)).map(drop);
        ensure!(r.is_ok(), "try_insert after the pin dropped: {r:?}");
    }
    Ok(())
}

fn probe_slots<const N: usize, const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<K, V, N, G, R, P>,
) -> Result<(), String> {
    probe_slots_with(map, || k(0), v)
}

/// Runs one random case: every op against the model, a full check after each, then the slot
/// probe, then drop accounting.
fn run_case<const N: usize, const G: usize, const R: usize, const P: usize>(
    ops: &[Op],
) -> Result<(), TestCaseError> {
    silence_injected_panics();
    let _serial = tracking_lock();
    let before = drop_counts();
    {
        let map: SnapMap<K, V, N, G, R, P> = SnapMap::new();
        let mut harness = Harness::new(&map);
        for (step, op) in ops.iter().enumerate() {
            harness
                .exec(op)
                .and_then(|()| harness.verify())
                .map_err(|e| TestCaseError::fail(format!("step {step}, {op:?}: {e}")))?;
        }
        let Harness {
            held,
            readers,
            writer,
            ..
        } = harness;
        drop(held);
        drop(readers);
        // Given back (if held): the probe checks that every slot and page works for the map's
        // own writes.
        drop(writer);
        probe_slots(&map).map_err(|e| TestCaseError::fail(format!("slot probe: {e}")))?;
    }
    let after = drop_counts();
    prop_assert_eq!(after.bad_drops, before.bad_drops, "values dropped twice");
    prop_assert_eq!(
        after.created - before.created,
        after.dropped - before.dropped,
        "keys/values created (clones included) != dropped"
    );
    Ok(())
}

/// Runs `cases` random cases on a map of `N` entries, `G` generation slots, `R` reader slots
/// and `P` spare pages, then checks that the outcomes in `must_hit` each happened at least once
/// (a random test that never reached an error path tested nothing there) and those in
/// `must_not_hit` never did.
fn run_random<const N: usize, const G: usize, const R: usize, const P: usize>(
    name: &'static str,
    cases: u32,
    must_hit: &[&str],
    must_not_hit: &[&str],
) {
    run_random_ops::<N, G, R, P>(name, cases, op(), must_hit, must_not_hit);
}

/// [`run_random`], with cases of `ops`.
fn run_random_ops<const N: usize, const G: usize, const R: usize, const P: usize>(
    name: &'static str,
    cases: u32,
    ops: impl Strategy<Value = Op>,
    must_hit: &[&str],
    must_not_hit: &[&str],
) {
    let _watchdog = Watchdog::new(name, HANG_LIMIT);
    // PROPTEST_CASES overrides the count, for a longer soak run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    COVERAGE.with(|c| c.borrow_mut().clear());
    let config = Config {
        cases,
        max_shrink_iters: 4_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(ops, 1..60), |ops| {
        run_case::<N, G, R, P>(&ops)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let coverage = COVERAGE.with(|c| c.borrow().clone());
    println!("{name}: {cases} cases; outcomes {coverage:?}");
    for what in must_hit {
        assert!(
            coverage.contains_key(what),
            "{name}: no case reached `{what}`; outcomes: {coverage:?}"
        );
    }
    for what in must_not_hit {
        assert!(
            !coverage.contains_key(what),
            "{name}: `{what}` happened; outcomes: {coverage:?}"
        );
    }
}

/// Outcomes every configuration reaches.
const COMMON: &[&str] = &[
    "ok",
    "update: Aborted",
    "update: published",
    "update: changed nothing",
    "update closure panicked",
    "clone panicked",
    "drop panicked, nothing published",
    "drop panicked after publishing",
    "compare_exchange: swapped",
    "compare_exchange: mismatch",
    "remove_if: removed",
    "remove_if: kept",
    "get_or_insert: present",
    "two or more snapshots held",
    "read through a registered Reader",
    "a Reader's snapshot held across a write",
    "more snapshots held than reader slots",
    "reader(): NoReaderSlot",
    "write copied one page",
];

/// Outcomes of a pool that pins on old versions exhaust.
const FEW_PAGES: &[&str] = &[
    "try_ write got NoFreePage",
    "write: NoFreePage",
    "update: NoFreePage",
    "txn ran out of pages",
];

/// Outcomes of a pool small enough that a reader's snapshot can be what blocks a write.
const READER_BLOCKS: &[&str] = &["a Reader's snapshot blocked a write's pages"];

/// A write that the old rule (a pin blocks every page replaced after it) made impossible: a pin
/// blocks only pages of its own generation, so writes go on under it while other pages are free.
const HELD_ACROSS_MORE_THAN_P: &str =
    "a write succeeded while a snapshot was held across more than P page copies";

/// Outcomes of changes needing more pages than the pool has: transactions over more pages than
/// `P`, in a table of more pages than `P` (N >= 128, since `P >= 4`).
const BIG_CHANGES: &[&str] = &[
    "change needs more than P pages",
    "blocking write: NoFreePage",
];

/// Outcomes impossible by design, in every configuration: `SnapMap::new` requires `P >= 4` (or
/// every page of a smaller table) and no run of occupied slots exceeds 48, so a one-key write
/// (changing at most 4 pages) always fits in the pool, and a blocking one never returns
/// `NoFreePage`; and a clear needs no spare page (a table of more than one page) or one page of
/// at least one (a table of one page), so a blocking clear never does either. (`out_of_pages`
/// fails a case that gets there before it counts these.)
const NEVER_BY_DESIGN: &[&str] = &[
    "one-key change needs more than P pages",
    "clear: NoFreePage",
];

/// Outcomes of a table of more than one page, whose clears point its positions at the shared
/// zero page instead of copying them.
const ZERO_PAGE_CLEARS: &[&str] = &[
    "a publication that cleared copied no page",
    "txn cleared and wrote a slot",
];

fn outcomes(lists: &[&[&'static str]]) -> Vec<&'static str> {
    lists.iter().flat_map(|list| list.iter().copied()).collect()
}

/// Default slots and pages (G = 4, R = 2, P = 8), N = 8: a full map, and exhaustion of both
/// kinds of slot. Never of the pages: a table of one page, and at most `G - 1` = 3 old versions
/// pinned while a write can claim a slot, each blocking one page of the 8.
#[test]
fn random_ops_match_oracle_n8_g4_r2() {
    let must = outcomes(&[
        COMMON,
        &[
            "insert: Full",
            "update: Full",
            "write: NoFreeGeneration",
            "a Reader's snapshot held across two writes",
            HELD_ACROSS_MORE_THAN_P,
        ],
    ]);
    let never = outcomes(&[
        FEW_PAGES,
        READER_BLOCKS,
        BIG_CHANGES,
        NEVER_BY_DESIGN,
        ZERO_PAGE_CLEARS,
    ]);
    run_random::<8, 4, 2, 8>("random_ops_match_oracle_n8_g4_r2", 1_000, &must, &never);
}

/// A table of one page, G = 6 and P = 3: up to four old versions pinned, each blocking one page,
/// so pins exhaust the pool exactly when three distinct old versions are pinned (the model is
/// exact here), and a snapshot held across many writes blocks one.
#[test]
fn random_ops_match_oracle_n8_g6_r2_p3() {
    let must = outcomes(&[COMMON, FEW_PAGES, READER_BLOCKS, &[HELD_ACROSS_MORE_THAN_P]]);
    let never = outcomes(&[BIG_CHANGES, NEVER_BY_DESIGN, ZERO_PAGE_CLEARS]);
    run_random::<8, 6, 2, 3>("random_ops_match_oracle_n8_g6_r2_p3", 2_000, &must, &never);
}

/// One spare page (P = 1, enough for a table of one page): a snapshot held across one write
/// blocks every later one.
#[test]
fn random_ops_match_oracle_n8_g4_r2_p1() {
    let must = outcomes(&[COMMON, FEW_PAGES, READER_BLOCKS]);
    let never = outcomes(&[
        &[HELD_ACROSS_MORE_THAN_P],
        BIG_CHANGES,
        NEVER_BY_DESIGN,
        ZERO_PAGE_CLEARS,
    ]);
    run_random::<8, 4, 2, 1>("random_ops_match_oracle_n8_g4_r2_p1", 3_000, &must, &never);
}

/// The smallest map with a registered reader (G = 3, R = 1), N = 4, with two spare pages: two
/// held snapshots of old versions block every write through its generation; one old version at
/// most is pinned while a write can claim a slot, blocking one page of the two, so pages never
/// run out.
#[test]
fn random_ops_match_oracle_n4_g3_r1_p2() {
    let must = outcomes(&[
        COMMON,
        &[
            "insert: Full",
            "get_or_insert: Full",
            "write: NoFreeGeneration",
            "update: NoFreeGeneration",
            "a Reader's snapshot held across two writes",
            HELD_ACROSS_MORE_THAN_P,
        ],
    ]);
    let never = outcomes(&[
        FEW_PAGES,
        READER_BLOCKS,
        BIG_CHANGES,
        NEVER_BY_DESIGN,
        ZERO_PAGE_CLEARS,
    ]);
    run_random::<4, 3, 1, 2>("random_ops_match_oracle_n4_g3_r1_p2", 3_000, &must, &never);
}

/// G = 6, R = 3 and many spare pages (P = 32): 16 entries never fill up with 12 keys, held
/// snapshots pin several generations at once, and pages never run out (a table of one page, which
/// a clear copies as any write does: 16 slots are one page).
#[test]
fn random_ops_match_oracle_n16_g6_r3_p32() {
    let must = outcomes(&[COMMON, &["a Reader's snapshot held across two writes"]]);
    let never = outcomes(&[
        &["insert: Full", "update: Full"],
        FEW_PAGES,
        BIG_CHANGES,
        NEVER_BY_DESIGN,
        ZERO_PAGE_CLEARS,
    ]);
    run_random::<16, 6, 3, 32>(
        "random_ops_match_oracle_n16_g6_r3_p32",
        1_000,
        &must,
        &never,
    );
}

/// Two pages and two spare (N = 32, P = 2, the least a table of two pages may have; it was 1
/// before the page budget): a pin across a write blocks a spare page, and two pins exhaust the
/// pool. No change can need more than `P` pages any more: that is left to N = 128. Clears copy
/// nothing.
#[test]
fn random_ops_match_oracle_n32_g4_r2_p2() {
    let must = outcomes(&[
        COMMON,
        FEW_PAGES,
        READER_BLOCKS,
        ZERO_PAGE_CLEARS,
        &["one-key write copied two pages", HELD_ACROSS_MORE_THAN_P],
    ]);
    let never = outcomes(&[BIG_CHANGES, NEVER_BY_DESIGN]);
    run_random::<32, 4, 2, 2>("random_ops_match_oracle_n32_g4_r2_p2", 2_000, &must, &never);
}

/// Four pages and four spare (N = 64, P = 4, the least allowed: it was 2 before the page
/// budget): writes copy one or two pages, and pins block up to every spare page; a transaction
/// over all four pages fits in the pool, so no change needs more than it has (see N = 128).
/// (`READER_BLOCKS` is rare here, a few times a run: with more pages than one the bounds seldom
/// pin a `NoFreePage` on the reader alone.)
#[test]
fn random_ops_match_oracle_n64_g4_r2_p4() {
    let must = outcomes(&[
        COMMON,
        FEW_PAGES,
        ZERO_PAGE_CLEARS,
        &[
            "write copied two or more pages",
            "one-key write copied two pages",
            "a Reader's snapshot held across two writes",
            HELD_ACROSS_MORE_THAN_P,
        ],
    ]);
    let never = outcomes(&[BIG_CHANGES, NEVER_BY_DESIGN]);
    run_random::<64, 4, 2, 4>("random_ops_match_oracle_n64_g4_r2_p4", 1_000, &must, &never);
}

/// Eight pages and four spare (N = 128, P = 4): [`KEYS`] spread over more pages than the pool
/// holds, so a transaction over five or more of them needs more pages than `P` (refused by every
/// form), while a one-key write never does; pins block spare pages as above.
#[test]
fn random_ops_match_oracle_n128_g4_r2_p4() {
    let must = outcomes(&[
        COMMON,
        FEW_PAGES,
        BIG_CHANGES,
        ZERO_PAGE_CLEARS,
        &[HELD_ACROSS_MORE_THAN_P],
    ]);
    let never = outcomes(&[NEVER_BY_DESIGN]);
    run_random::<128, 4, 2, 4>(
        "random_ops_match_oracle_n128_g4_r2_p4",
        1_000,
        &must,
        &never,
    );
}

// =============================================================================================
// The sole writer: the same operations through a `Writer`, taken and dropped between them
// =============================================================================================

/// Outcomes every configuration of the `Writer` runs reaches: the `Writer` taken, refused while
/// held, given back and taken again; writes through it succeeding, aborting, panicking in a
/// closure, a `Clone` or a `Drop` (before and after publishing); writes through the map refused
/// while it is held and working once it is dropped; reads through it.
const WRITER: &[&str] = &[
    "Writer taken",
    "Writer taken again",
    "writer(): WriterHeld",
    "map write refused: WriterHeld",
    "map write after a Writer was dropped",
    "read through the Writer",
    "Writer: ok",
    "Writer: Aborted",
    "Writer: update closure panicked",
    "Writer: clone panicked",
    "Writer: drop panicked, nothing published",
    "Writer: drop panicked after publishing",
    "update_versioned: version checked",
];

/// Outcomes no `Writer` run may reach: a write through it failing otherwise than the map's
/// would (`Contended`, `WriterHeld`, `Reentrant`).
const WRITER_NEVER: &[&str] = &["Writer: other error"];

/// As `random_ops_match_oracle_n8_g4_r2`, through the `Writer`: it finds every generation
/// pinned exactly when the map's writers would (the current one and each pinned one are busy).
#[test]
fn random_writer_ops_match_oracle_n8_g4_r2() {
    let must = outcomes(&[
        COMMON,
        WRITER,
        &["insert: Full", "Writer: Full", "Writer: NoFreeGeneration"],
    ]);
    let never = outcomes(&[
        FEW_PAGES,
        READER_BLOCKS,
        BIG_CHANGES,
        NEVER_BY_DESIGN,
        ZERO_PAGE_CLEARS,
        WRITER_NEVER,
    ]);
    run_random_ops::<8, 4, 2, 8>(
        "random_writer_ops_match_oracle_n8_g4_r2",
        1_000,
        writer_op(),
        &must,
        &never,
    );
}

/// As `random_ops_match_oracle_n8_g6_r2_p3`, through the `Writer`: in a table of one page the
/// page model is exact, so its `try_` forms must return `NoFreePage` exactly when pins hold
/// every spare page.
#[test]
fn random_writer_ops_match_oracle_n8_g6_r2_p3() {
    let must = outcomes(&[COMMON, FEW_PAGES, WRITER, &["Writer: NoFreePage"]]);
    let never = outcomes(&[BIG_CHANGES, NEVER_BY_DESIGN, ZERO_PAGE_CLEARS, WRITER_NEVER]);
    run_random_ops::<8, 6, 2, 3>(
        "random_writer_ops_match_oracle_n8_g6_r2_p3",
        1_500,
        writer_op(),
        &must,
        &never,
    );
}

/// As `random_ops_match_oracle_n4_g3_r1_p2`, through the `Writer` (the smallest map with a
/// registered reader: one held old version takes the only slot it could write into).
#[test]
fn random_writer_ops_match_oracle_n4_g3_r1_p2() {
    let must = outcomes(&[
        COMMON,
        WRITER,
        &["get_or_insert: Full", "Writer: NoFreeGeneration"],
    ]);
    let never = outcomes(&[
        FEW_PAGES,
        READER_BLOCKS,
        BIG_CHANGES,
        NEVER_BY_DESIGN,
        ZERO_PAGE_CLEARS,
        WRITER_NEVER,
    ]);
    run_random_ops::<4, 3, 1, 2>(
        "random_writer_ops_match_oracle_n4_g3_r1_p2",
        2_000,
        writer_op(),
        &must,
        &never,
    );
}

/// As `random_ops_match_oracle_n128_g4_r2_p4`, through the `Writer`: transactions needing more
/// pages than the pool has, clears through the shared zero page, pins holding pages.
#[test]
fn random_writer_ops_match_oracle_n128_g4_r2_p4() {
    let must = outcomes(&[
        COMMON,
        FEW_PAGES,
        BIG_CHANGES,
        ZERO_PAGE_CLEARS,
        WRITER,
        &["Writer: NoFreePage"],
    ]);
    let never = outcomes(&[NEVER_BY_DESIGN, WRITER_NEVER]);
    run_random_ops::<128, 4, 2, 4>(
        "random_writer_ops_match_oracle_n128_g4_r2_p4",
        1_000,
        writer_op(),
        &must,
        &never,
    );
}

// =============================================================================================
// Targeted tests
// =============================================================================================

fn snapshot_contents<const N: usize>(snap: &Snapshot<'_, K, V, N>) -> Oracle {
    contents(snap.iter()).0
}

fn plain(entries: &[(u8, u32)]) -> Oracle {
    entries.iter().copied().collect()
}

fn values<T: Copy>(result: Result<Option<Tracked<T>>, Error>) -> Result<Option<T>, Error> {
    result.map(|o| o.map(|x| x.value()))
}

/// Runs `test` with the tracking lock held and checks drop accounting afterwards. A blocking
/// write that waits for a page or slot the test itself holds aborts the binary.
fn with_drop_accounting(name: &'static str, test: impl FnOnce()) {
    let _watchdog = Watchdog::new(name, HANG_LIMIT);
    silence_injected_panics();
    let _serial = tracking_lock();
    let before = drop_counts();
    test();
    drop_counts().assert_balanced_since(&before, name);
}

#[test]
fn full_map_rejects_new_keys_and_changes_nothing() {
    with_drop_accounting("full_map_rejects_new_keys_and_changes_nothing", || {
        let map: SnapMap<K, V, 8> = SnapMap::new();
        for i in 0..8u8 {
            assert_eq!(values(map.insert(k(i), v(u32::from(i)))), Ok(None));
        }
        let full: Oracle = (0..8u8).map(|i| (i, u32::from(i))).collect();
        let unchanged = |map: &SnapMap<K, V, 8>| {
            let snap = map.snapshot();
            assert_eq!(snapshot_contents(&snap), full);
            assert_eq!(snap.version(), 8);
            assert_eq!(map.stats().publishes, 8);
        };
        assert_eq!(values(map.insert(k(8), v(80))), Err(Error::Full));
        unchanged(&map);
        assert_eq!(values(map.try_insert(k(8), v(80))), Err(Error::Full));
        unchanged(&map);
        assert_eq!(
            map.get_or_insert(k(9), v(90)).map(|(x, _)| x.value()),
            Err(Error::Full)
        );
        unchanged(&map);
        // A batch that replaces one key and then needs a new one: all of it is discarded.
        let r = map.update(|tx| {
            tx.insert(k(1), v(11))?;
            tx.insert(k(8), v(80))?;
            Ok(())
        });
        assert_eq!(r, Err(Error::Full));
        unchanged(&map);
        // A Full inside a transaction that carries on leaves the copy as it was: nothing changed,
        // nothing published.
        let r = map.update(|tx| {
            assert_eq!(values(tx.insert(k(8), v(80))), Err(Error::Full));
            assert_eq!(tx.len(), 8);
            assert!(!tx.contains_key(&8));
            Ok(())
        });
        assert_eq!(r, Ok(()));
        unchanged(&map);
        // An existing key can still be replaced in a full map.
        assert_eq!(values(map.insert(k(3), v(33))), Ok(Some(3)));
        assert_eq!(
            map.get_or_insert(k(3), v(0))
                .map(|(x, loaded)| (x.value(), loaded)),
            Ok((33, true))
        );
        // Removing one key makes room for a new one in the same transaction.
        map.update(|tx| {
            tx.remove(&0)?.expect("key 0");
            tx.insert(k(8), v(80))?;
            Ok(())
        })
        .unwrap();
        let snap = map.snapshot();
        assert_eq!(snap.len(), 8);
        assert_eq!(snap.get(&0), None);
        assert_eq!(snap.get(&8).map(Tracked::value), Some(80));
        assert_eq!(snap.version(), 10);
    });
}

#[test]
fn exhausted_slots_give_errors_and_change_nothing() {
    with_drop_accounting("exhausted_slots_give_errors_and_change_nothing", || {
        let map: SnapMap<K, V, 8, 4, 2> = SnapMap::new();
        map.insert(k(0), v(0)).unwrap(); // version 1
        let s1 = map.snapshot();
        map.insert(k(1), v(1)).unwrap(); // version 2
        let s2 = map.snapshot();
        map.insert(k(2), v(2)).unwrap(); // version 3
        let s3 = map.snapshot();
        // Generations: versions 1, 2, 3 pinned, one free: this write takes it.
        map.insert(k(3), v(3)).unwrap(); // version 4
        let now = plain(&[(0, 0), (1, 1), (2, 2), (3, 3)]);

        // Every generation is pinned or current: writes fail without waiting, changing nothing,
        // whether or not they would have changed anything.
        assert_eq!(
            values(map.try_insert(k(4), v(4))),
            Err(Error::NoFreeGeneration)
        );
        assert_eq!(values(map.try_remove(&0)), Err(Error::NoFreeGeneration));
        assert_eq!(values(map.try_remove(&7)), Err(Error::NoFreeGeneration));
        let mut ran = false;
        assert_eq!(
            map.try_update(|tx| {
                ran = true;
                tx.clear()?;
                Ok(())
            }),
            Err(Error::NoFreeGeneration)
        );
        assert!(!ran, "the closure ran without a generation to write into");
        // Reads need no slot at all; get_or_insert of a present key is a read.
        assert_eq!(map.get(&3).map(|x| x.value()), Some(3));
        assert_eq!(
            map.get_or_insert(k(2), v(99))
                .map(|(x, loaded)| (x.value(), loaded)),
            Ok((2, true))
        );
        {
            // More one-off snapshots than reader slots, all of the current generation.
            let s4: Vec<_> = (0..4).map(|_| map.snapshot()).collect();
            assert!(s4
                .iter()
                .all(|s| snapshot_contents(s) == now && s.version() == 4));
            assert_eq!(
                values(map.try_insert(k(5), v(5))),
                Err(Error::NoFreeGeneration)
            );
        }
        // The pinned generations are untouched.
        assert_eq!(snapshot_contents(&s1), plain(&[(0, 0)]));
        assert_eq!(snapshot_contents(&s2), plain(&[(0, 0), (1, 1)]));
        assert_eq!(snapshot_contents(&s3), plain(&[(0, 0), (1, 1), (2, 2)]));
        assert_eq!((s1.version(), s2.version(), s3.version()), (1, 2, 3));
        assert_eq!(map.stats().publishes, 4);
        assert_eq!(map.stats().slot_waits, 0);

        // Releasing one pin frees one generation. Pin the current one (version 4), and one write
        // goes through (into version 1's slot); then every slot is busy again.
        drop(s1);
        let s4 = map.snapshot();
        assert_eq!(values(map.try_insert(k(4), v(4))), Ok(None)); // version 5
        assert_eq!(
            values(map.try_insert(k(5), v(5))),
            Err(Error::NoFreeGeneration)
        );
        assert_eq!(s4.version(), 4);
        drop((s2, s3, s4));

        // Registered readers own the reader slots, and then there are no more; once their
        // snapshots drop they pin nothing, and while they read, writers still have room
        // (G >= R + 2).
        let mut readers: Vec<_> = (0..2).map(|_| map.reader().expect("reader slot")).collect();
        assert!(matches!(map.reader(), Err(Error::NoReaderSlot)));
        assert_eq!(readers[0].snapshot().len(), 5);
        assert_eq!(values(map.try_insert(k(6), v(6))), Ok(None));
        assert_eq!(readers[1].get(&6).map(|x| x.value()), Some(6));
        assert_eq!(values(map.try_insert(k(7), v(7))), Ok(None));
        assert_eq!(values(map.insert(k(7), v(70))), Ok(Some(7)));
        assert!(map.get(&4).is_some());
        drop(readers);
        probe_slots(&map).unwrap();
    });
}

#[test]
fn panic_in_update_closure_changes_nothing_and_releases_slots() {
    with_drop_accounting(
        "panic_in_update_closure_changes_nothing_and_releases_slots",
        || {
            let map: SnapMap<K, V, 8, 4, 2> = SnapMap::new();
            for i in 0..5u8 {
                map.insert(k(i), v(u32::from(i) * 10)).unwrap();
            }
            let before = plain(&[(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
            let held = map.snapshot();
            // More panics than there are slots: a slot leaked per panic would run out.
            for round in 0..12 {
                let change = |tx: &mut Txn<'_, K, V, 8>| -> Result<(), Error> {
                    tx.insert(k(7), v(7))?;
                    tx.remove(&1)?;
                    *tx.get_mut(&2)?.unwrap() = v(99);
                    if round % 3 == 0 {
                        tx.clear()?;
                    }
                    panic!("{INJECTED_PANIC} (update closure, round {round})");
                };
                let result = catch_unwind(AssertUnwindSafe(|| {
                    if round % 2 == 0 {
                        map.update(change)
                    } else {
                        map.try_update(change)
                    }
                }));
                assert!(
                    result.is_err(),
                    "round {round}: the panic did not propagate"
                );
                let snap = map.snapshot();
                assert_eq!(snapshot_contents(&snap), before, "round {round}");
                assert_eq!(snap.version(), 5, "round {round}");
            }
            assert_eq!(snapshot_contents(&held), before);
            assert_eq!(map.stats().publishes, 5);
            drop(held);
            // Everything works afterwards, every slot included.
            assert_eq!(values(map.insert(k(7), v(70))), Ok(None));
            assert_eq!(values(map.remove(&0)), Ok(Some(0)));
            assert_eq!(map.snapshot().version(), 7);
            probe_slots(&map).unwrap();
        },
    );
}

#[test]
fn panic_in_clone_changes_nothing_and_releases_slots() {
    with_drop_accounting("panic_in_clone_changes_nothing_and_releases_slots", || {
        let map: SnapMap<K, V, 8, 4, 2> = SnapMap::new();
        for i in 0..5u8 {
            map.insert(k(i), v(u32::from(i) * 10)).unwrap();
        }
        let before = plain(&[(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
        let mut fired = 0;
        // Every clone position of each operation: in the page copy (5 keys and 5 values),
        // in the closure's clones of the new key and value, in the clone of a read. A snapshot
        // is held over each, and `first` over them all: each blocks only its own generation's
        // page (the table is one page), so the blocking writes never wait for them, however many
        // pages the writes under `first` copy.
        let first = map.snapshot();
        let copies = map.stats().page_copies;
        for after in 0..14u64 {
            for op in 0..6 {
                let held = map.snapshot();
                let version = held.version();
                let bomb = panic_on_clone_after(after);
                let result = catch_unwind(AssertUnwindSafe(|| match op {
                    0 => map.insert(k(7), v(70)).map(|_| ()),
                    1 => map
                        .update(|tx| {
                            tx.insert(k(7), v(70))?;
                            tx.remove(&0)?;
                            Ok(())
                        })
                        .map(drop),
                    2 => map.get_or_insert(k(7), v(70)).map(drop),
                    3 => map.compare_exchange(&1, &v(10), v(11)).map(drop),
                    4 => map.clear(),
                    _ => {
                        let _ = map.get(&3);
                        Ok(())
                    }
                }));
                let did_fire = bomb.fired();
                drop(bomb);
                assert_eq!(
                    snapshot_contents(&held),
                    before,
                    "after {after}, op {op}: held"
                );
                drop(held);
                let snap = map.snapshot();
                if did_fire {
                    fired += 1;
                    assert!(
                        result.is_err(),
                        "after {after}, op {op}: the clone panic did not propagate"
                    );
                    assert_eq!(
                        snapshot_contents(&snap),
                        before,
                        "after {after}, op {op}: changed by a panic"
                    );
                    assert_eq!(
                        snap.version(),
                        version,
                        "after {after}, op {op}: published by a panic"
                    );
                } else {
                    assert!(
                        matches!(result, Ok(Ok(()))),
                        "after {after}, op {op}: {result:?}"
                    );
                    drop(snap);
                    // Put it back the way it was (no bomb armed now).
                    map.update(|tx| {
                        tx.clear()?;
                        for (&key, &value) in &before {
                            tx.insert(k(key), v(value))?;
                        }
                        Ok(())
                    })
                    .unwrap();
                }
            }
        }
        assert!(
            fired >= 50,
            "only {fired} clone panics fired: the test did not test much"
        );
        assert_eq!(snapshot_contents(&first), before, "first");
        assert_eq!(first.version(), 5, "first");
        let under_first = map.stats().page_copies - copies;
        assert!(under_first > 8, "{under_first} pages copied under `first`");
        drop(first);
        probe_slots(&map).unwrap();
    });
}

#[test]
fn versions_bump_exactly_when_something_changes() {
    with_drop_accounting("versions_bump_exactly_when_something_changes", || {
        let map: SnapMap<K, V, 8> = SnapMap::new();
        let version = |map: &SnapMap<K, V, 8>| {
            let v = map.snapshot().version();
            assert_eq!(
                map.stats().publishes as u64,
                v,
                "publishes and versions disagree"
            );
            v
        };
        assert_eq!(version(&map), 0);
        // No-ops on an empty map.
        assert_eq!(map.clear(), Ok(()));
        assert_eq!(values(map.remove(&1)), Ok(None));
        assert_eq!(map.update(|_| Ok(())), Ok(()));
        assert_eq!(version(&map), 0);

        map.insert(k(1), v(10)).unwrap();
        assert_eq!(version(&map), 1);
        // One publication for a whole batch.
        map.update(|tx| {
            tx.insert(k(2), v(20))?;
            tx.insert(k(3), v(30))?;
            tx.insert(k(4), v(40))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(version(&map), 2);

        // Things that change nothing publish nothing.
        assert_eq!(values(map.remove(&9)), Ok(None));
        assert_eq!(values(map.try_remove(&9)), Ok(None));
        assert_eq!(values(map.remove_if(&9, |_| true)), Ok(None));
        assert_eq!(values(map.remove_if(&1, |_| false)), Ok(None));
        assert_eq!(map.compare_exchange(&1, &v(11), v(12)), Ok(false));
        assert_eq!(map.compare_exchange(&9, &v(10), v(12)), Ok(false));
        assert_eq!(
            map.get_or_insert(k(1), v(0))
                .map(|(x, loaded)| (x.value(), loaded)),
            Ok((10, true))
        );
        assert_eq!(
            map.update(|tx| {
                assert_eq!(tx.get(&1).map(|x| x.value()), Some(10));
                assert_eq!(tx.len(), 4);
                assert_eq!(tx.iter().count(), 4);
                assert!(tx.get_mut(&9)?.is_none());
                assert_eq!(values(tx.remove(&9)), Ok(None));
                tx.retain(|_, _| true)?;
                Ok(7)
            }),
            Ok(7)
        );
        assert_eq!(
            map.update(|tx| {
                tx.insert(k(5), v(50))?;
                tx.clear()?;
                Err::<(), _>(Error::Aborted)
            }),
            Err(Error::Aborted)
        );
        assert_eq!(version(&map), 2);
        assert_eq!(map.snapshot().len(), 4);

        // Each of these changes something: one publication each.
        let mut expected = 2;
        let mut changed = |map: &SnapMap<K, V, 8>, what: &str| {
            expected += 1;
            assert_eq!(version(map), expected, "{what}");
        };
        assert_eq!(map.compare_exchange(&1, &v(10), v(11)), Ok(true));
        changed(&map, "compare_exchange");
        assert_eq!(values(map.remove_if(&1, |x| x.value() == 11)), Ok(Some(11)));
        changed(&map, "remove_if");
        assert_eq!(values(map.remove(&2)), Ok(Some(20)));
        changed(&map, "remove");
        assert_eq!(
            map.get_or_insert(k(6), v(60))
                .map(|(x, loaded)| (x.value(), loaded)),
            Ok((60, false))
        );
        changed(&map, "get_or_insert of an absent key");
        map.update(|tx| {
            *tx.get_mut(&3)?.unwrap() = v(31);
            Ok(())
        })
        .unwrap();
        changed(&map, "get_mut");
        map.update(|tx| {
            tx.retain(|key, _| key.value() != 4)?;
            Ok(())
        })
        .unwrap();
        changed(&map, "retain that removed one");
        assert_eq!(map.clear(), Ok(()));
        changed(&map, "clear");
        assert!(map.snapshot().is_empty());
    });
}

/// `Snapshot::iter` and `Txn::iter` return `snapmap_core::Iter`, which implements
/// `ExactSizeIterator`: its `len()` must be the number of entries, and its `size_hint` exact.
#[test]
fn snapshot_and_txn_iterators_know_their_length() {
    let map: SnapMap<u8, u32, 8> = SnapMap::new();
    for i in 0..5 {
        map.insert(i, u32::from(i)).unwrap();
    }
    let snap = map.snapshot();
    let mut iter = snap.iter();
    assert_eq!(
        iter.size_hint(),
        (5, Some(5)),
        "Snapshot::iter().size_hint()"
    );
    iter.next();
    assert_eq!(iter.size_hint(), (4, Some(4)), "size_hint after one next()");
    // ExactSizeIterator::len asserts that size_hint is exact: it panics today.
    assert_eq!(snap.iter().len(), 5, "Snapshot::iter().len()");
    map.update(|tx| {
        assert_eq!(
            tx.iter().size_hint(),
            (5, Some(5)),
            "Txn::iter().size_hint()"
        );
        assert_eq!(tx.iter().len(), 5, "Txn::iter().len()");
        Ok(())
    })
    .unwrap();
}

thread_local! {
    /// `Hash`/`Eq` calls on `TouchyKey`s this thread may still make before one panics.
    static TOUCHES_BEFORE_PANIC: Cell<Option<u32>> = const { Cell::new(None) };
}

/// A key whose `Hash` or `Eq` panics on demand (after a per-thread countdown).
#[derive(Clone, Debug)]
struct TouchyKey(u8);

fn touch() {
    TOUCHES_BEFORE_PANIC.with(|left| match left.get() {
        Some(0) => {
            left.set(None);
            panic!("{INJECTED_PANIC} (TouchyKey Hash/Eq)");
        }
        Some(n) => left.set(Some(n - 1)),
        None => {}
    });
}

impl Hash for TouchyKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        touch();
        self.0.hash(state);
    }
}
impl PartialEq for TouchyKey {
    fn eq(&self, other: &Self) -> bool {
        touch();
        self.0 == other.0
    }
}
impl Eq for TouchyKey {}

#[test]
fn panic_in_key_hash_or_eq_changes_nothing_and_releases_slots() {
    with_drop_accounting(
        "panic_in_key_hash_or_eq_changes_nothing_and_releases_slots",
        || {
            type Map = SnapMap<TouchyKey, V, 8, 4, 2>;
            let map: Map = SnapMap::new();
            let before = plain(&[(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
            let reset = |map: &Map| {
                map.update(|tx| {
                    tx.clear()?;
                    for (&key, &value) in &before {
                        tx.insert(TouchyKey(key), v(value))?;
                    }
                    Ok(())
                })
                .unwrap();
            };
            let contents = |map: &Map| -> (Oracle, u64) {
                let snap = map.snapshot();
                (
                    snap.iter()
                        .map(|(key, value)| (key.0, value.value()))
                        .collect(),
                    snap.version(),
                )
            };
            reset(&map);
            let mut fired = 0;
            for after in 0..8u32 {
                for op in 0..8 {
                    // Held over one op (see `panic_in_clone_changes_nothing_and_releases_slots`).
                    let held = map.snapshot();
                    let (_, version) = contents(&map);
                    TOUCHES_BEFORE_PANIC.with(|left| left.set(Some(after)));
                    let result = catch_unwind(AssertUnwindSafe(|| match op {
                        0 => map.insert(TouchyKey(7), v(70)).map(drop),
                        1 => map.insert(TouchyKey(3), v(31)).map(drop),
                        2 => map.remove(&TouchyKey(2)).map(drop),
                        3 => map.get_or_insert(TouchyKey(6), v(60)).map(drop),
                        4 => map.compare_exchange(&TouchyKey(1), &v(10), v(11)).map(drop),
                        5 => map.remove_if(&TouchyKey(4), |_| true).map(drop),
                        6 => map.update(|tx| {
                            tx.insert(TouchyKey(5), v(50))?;
                            tx.remove(&TouchyKey(0))?;
                            if let Some(x) = tx.get_mut(&TouchyKey(1))? {
                                *x = v(12);
                            }
                            Ok(())
                        }),
                        _ => {
                            let _ = map.get(&TouchyKey(3));
                            let snap = map.snapshot();
                            let _ = snap.contains_key(&TouchyKey(9));
                            Ok(())
                        }
                    }));
                    let did_fire = TOUCHES_BEFORE_PANIC
                        .with(|left| left.replace(None))
                        .is_none();
                    let held_contents: Oracle = held
                        .iter()
                        .map(|(key, value)| (key.0, value.value()))
                        .collect();
                    assert_eq!(held_contents, before, "after {after}, op {op}: held");
                    drop(held);
                    let (now, version_now) = contents(&map);
                    // Every operation hashes its key at least once.
                    assert!(did_fire || after > 0, "op {op} never hashed its key");
                    if did_fire {
                        fired += 1;
                        assert!(
                            result.is_err(),
                            "after {after}, op {op}: the panic did not propagate"
                        );
                        assert_eq!(now, before, "after {after}, op {op}: changed by a panic");
                        assert_eq!(
                            version_now, version,
                            "after {after}, op {op}: published by a panic"
                        );
                    } else {
                        assert!(
                            matches!(result, Ok(Ok(()))),
                            "after {after}, op {op}: {result:?}"
                        );
                        reset(&map);
                    }
                }
            }
            assert!(fired >= 16, "only {fired} Hash/Eq panics fired");
            probe_slots_with(&map, || TouchyKey(0), v).unwrap();
        },
    );
}

/// The home slot of `key` in a table of `N` slots: the top bits of its 32-bit meta under Fx.
fn home_of<const N: usize>(key: u8) -> usize {
    (((FxBuildHasher.hash_one(key) >> 32) as u32 | 1) >> (32 - N.trailing_zeros())) as usize
}

/// A key homed early in page `page` of a table of `N` slots (so that inserting it into a map
/// of a few such keys copies that page alone), other than those in `not`.
fn key_on_page<const N: usize>(page: usize, not: &[u8]) -> u8 {
    (0..=u8::MAX)
        .find(|&key| {
            home_of::<N>(key) / 16 == page && home_of::<N>(key) % 16 < 8 && !not.contains(&key)
        })
        .expect("a key for the page")
}

/// Spare pages, single-threaded (N = 128: eight pages; P = 4, the least a one-key write may need).
/// A snapshot held across writes holds the pages of its own generation that they replaced, and no
/// others: writes that rewrite one page go on under it, more of them than there are spare pages,
/// while the first write of each other page blocks one more spare page. Then `try_` forms return
/// `NoFreePage` and change nothing (a transaction that runs out sees that change and every later
/// one fail, a clear and a retain included, and publishes nothing whatever it returns), a write
/// that changes nothing still goes, and a clear goes through, blocking, copying no page, with
/// every spare page blocked. Dropping the snapshot frees the pages, and the cleared positions take
/// entries again. A transaction that needs more pages than the pool has (five) fails from the
/// blocking form too, at once.
#[test]
fn spare_pages_run_out_with_errors_and_change_nothing() {
    with_drop_accounting("spare_pages_run_out_with_errors_and_change_nothing", || {
        type Map = SnapMap<K, V, 128, 4, 2, 4>;
        let mut keys = Vec::new();
        for page in 0..5 {
            keys.push(key_on_page::<128>(page, &keys));
        }
        let [a, b, c, d, e] = <[u8; 5]>::try_from(keys).unwrap();
        let absent = (0..=u8::MAX)
            .find(|key| ![a, b, c, d, e].contains(key))
            .unwrap();
        let map: Map = SnapMap::new();
        for key in [a, b, c, d] {
            assert_eq!(values(map.insert(k(key), v(0))), Ok(None));
        }
        assert_eq!(map.stats().page_copies, 4, "four one-page writes");
        let first = plain(&[(a, 0), (b, 0), (c, 0), (d, 0)]);
        let held = map.snapshot(); // version 4
                                   // The first write of a's page blocks version 4's copy of it; the next ones replace pages
                                   // born after 4, which `held` does not have: 2P + 1 of them go, one page each. A blocking
                                   // write that finds a page it may claim does not wait.
        for value in 1..=9 {
            let copies = map.stats().page_copies;
            let r = if value % 2 == 1 {
                map.try_insert(k(a), v(value))
            } else {
                map.insert(k(a), v(value))
            };
            assert_eq!(values(r), Ok(Some(value - 1)), "write {value} of a's page");
            assert_eq!(map.stats().page_copies - copies, 1, "write {value}");
        }
        // b's, c's and d's pages: version 4's copies go to the other spare pages, all blocked.
        for key in [b, c, d] {
            assert_eq!(values(map.insert(k(key), v(1))), Ok(Some(0)));
        }
        let now = plain(&[(a, 9), (b, 1), (c, 1), (d, 1)]);
        let unchanged = |map: &Map, version: u64, what: &str| {
            check_view(&map.snapshot(), &now, version).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(map.stats().publishes as u64, version, "{what}");
        };
        assert_eq!(values(map.try_insert(k(e), v(1))), Err(Error::NoFreePage));
        unchanged(&map, 16, "try_insert");
        // Even a's page, which the writes under `held` rewrote: the current copy is published,
        // so immutable, and the pool holds version 4's pages alone.
        assert_eq!(values(map.try_insert(k(a), v(6))), Err(Error::NoFreePage));
        assert_eq!(values(map.try_remove(&b)), Err(Error::NoFreePage));
        unchanged(&map, 16, "try_remove");
        // Writes that change nothing need no page.
        assert_eq!(values(map.try_remove(&absent)), Ok(None));
        assert_eq!(map.try_update(|tx| Ok(tx.len())), Ok(4));
        let mut runs = 0;
        let r = map.try_update(|tx| {
            runs += 1;
            assert_eq!(values(tx.insert(k(c), v(2))), Err(Error::NoFreePage));
            // Out of pages: every later change fails, even those that would need no page (a
            // removal of an absent key, a clear) and a retain, which asks about no entry.
            assert_eq!(values(tx.remove(&a)), Err(Error::NoFreePage));
            assert_eq!(values(tx.remove(&absent)), Err(Error::NoFreePage));
            assert!(matches!(tx.get_mut(&b), Err(Error::NoFreePage)));
            assert_eq!(tx.clear(), Err(Error::NoFreePage));
            let mut asked = 0;
            assert_eq!(
                tx.retain(|_, _| {
                    asked += 1;
                    false
                }),
                Err(Error::NoFreePage)
            );
            assert_eq!(asked, 0, "retain out of pages asked about entries");
            assert_eq!(values(tx.insert(k(absent), v(2))), Err(Error::NoFreePage));
            // Reads still work, on a copy as it was.
            assert_eq!(tx.get(&a).map(|x| x.value()), Some(9));
            assert_eq!(contents(tx.iter()).0, now, "a txn out of pages changed");
            Ok(())
        });
        assert_eq!((r, runs), (Err(Error::NoFreePage), 1));
        unchanged(&map, 16, "try_update");

        // A clear needs no spare page: with all four blocked, it goes through (the blocking form:
        // it never waits), copying none, and the held snapshot keeps what it saw.
        let copies = map.stats().page_copies;
        assert_eq!(map.clear(), Ok(()));
        check_view(&map.snapshot(), &Oracle::new(), 17).unwrap();
        assert_eq!(map.stats().page_copies, copies, "a clear copied pages");
        check_view(&held, &first, 4).unwrap();
        // Giving a cleared position entries again copies into a spare page: none is free.
        assert_eq!(values(map.try_insert(k(a), v(0))), Err(Error::NoFreePage));
        assert_eq!(map.try_update(|tx| tx.clear()), Ok(()), "nothing to clear");
        check_view(&map.snapshot(), &Oracle::new(), 17).unwrap();
        drop(held);
        // Every cleared position takes a page again, one each, the fifth one too.
        for (i, key) in [a, b, c, d, e].into_iter().enumerate() {
            let copies = map.stats().page_copies;
            assert_eq!(values(map.try_insert(k(key), v(0))), Ok(None), "refill {i}");
            assert_eq!(map.stats().page_copies - copies, 1, "refill {i}");
        }
        let now = plain(&[(a, 0), (b, 0), (c, 0), (d, 0), (e, 0)]);

        // Five pages to change, four spare: never possible, so the blocking form fails too, at
        // once, whatever the closure returns.
        let all = |tx: &mut Txn<'_, K, V, 128>| -> Result<(), Error> {
            for key in [a, b, c, d, e] {
                tx.insert(k(key), v(1))?;
            }
            Ok(())
        };
        assert_eq!(map.update(all), Err(Error::NoFreePage));
        let mut runs = 0;
        let r = map.update(|tx| {
            runs += 1;
            for key in [a, b, c, d, e] {
                let _ = tx.insert(k(key), v(1));
            }
            Err::<(), _>(Error::Aborted)
        });
        assert_eq!(
            (r, runs),
            (Err(Error::NoFreePage), 1),
            "out of pages, then aborted"
        );
        check_view(&map.snapshot(), &now, 22).unwrap();
        assert_eq!((map.stats().page_waits, map.stats().page_copies), (0, 21));
        // Four pages at a time go.
        map.update(|tx| {
            for key in [a, b, c, d] {
                tx.insert(k(key), v(1))?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(map.stats().page_copies, 25);
        assert_eq!(map.clear(), Ok(()));
        assert_eq!(map.stats().page_copies, 25, "a clear copied pages");
        check_view(&map.snapshot(), &Oracle::new(), 24).unwrap();
        probe_slots(&map).unwrap();
    });
}

/// A clear needs no spare page, in a transaction too (N = 64, P = 4, every spare page blocked by
/// one snapshot): `Txn::clear` from a `try_update` goes through and copies nothing, while a write
/// that gives a cleared position entries again needs a page, and in the same transaction makes
/// it run out. A transaction that writes, clears and writes again copies the pages it wrote:
/// those it wrote before the clear stay its own (emptied), and each it refills after it takes
/// one; the positions it only cleared copy nothing.
#[test]
fn a_clear_needs_no_spare_page() {
    with_drop_accounting("a_clear_needs_no_spare_page", || {
        type Map = SnapMap<K, V, 64, 4, 2, 4>;
        let mut keys = Vec::new();
        for page in 0..4 {
            keys.push(key_on_page::<64>(page, &keys));
        }
        let map: Map = SnapMap::new();
        for &key in &keys {
            assert_eq!(values(map.insert(k(key), v(0))), Ok(None));
        }
        let held = map.snapshot(); // version 4
        for &key in &keys {
            assert_eq!(values(map.try_insert(k(key), v(1))), Ok(Some(0)));
        }
        // Every spare page holds a page of version 4.
        assert_eq!(values(map.try_remove(&keys[0])), Err(Error::NoFreePage));
        let copies = map.stats().page_copies;
        let r = map.try_update(|tx| {
            tx.clear()?;
            assert!(tx.is_empty() && tx.iter().next().is_none());
            assert_eq!(tx.get(&keys[1]), None);
            Ok(())
        });
        assert_eq!(r, Ok(()), "Txn::clear with every spare page blocked");
        assert_eq!(map.stats().page_copies, copies, "a clear copied pages");
        check_view(&map.snapshot(), &Oracle::new(), 9).unwrap();
        // Refilling a cleared position needs a page, in a transaction too.
        let r = map.try_update(|tx| {
            tx.insert(k(keys[2]), v(2))?;
            Ok(())
        });
        assert_eq!(r, Err(Error::NoFreePage));
        // Back to four entries: a clear then an insert in one transaction, out of pages.
        drop(held);
        for &key in &keys {
            assert_eq!(values(map.insert(k(key), v(0))), Ok(None));
        }
        let held = map.snapshot(); // version 13
        for &key in &keys[1..] {
            assert_eq!(values(map.insert(k(key), v(1))), Ok(Some(0)));
        }
        // One spare page left: the transaction writes keys[0]'s page (copying it), clears (that
        // page stays its own, emptied; the other three point at the zero page), and refills
        // keys[3]'s position, which needs a second page: out of pages.
        let mut runs = 0;
        let r = map.try_update(|tx| {
            runs += 1;
            tx.insert(k(keys[0]), v(5))?;
            tx.clear()?;
            assert!(tx.is_empty());
            tx.insert(k(keys[3]), v(5))?;
            Ok(())
        });
        assert_eq!((r, runs), (Err(Error::NoFreePage), 1));
        check_view(
            &map.snapshot(),
            &plain(&[(keys[0], 0), (keys[1], 1), (keys[2], 1), (keys[3], 1)]),
            16,
        )
        .unwrap();
        // Writing keys[0]'s page again after the clear needs no second page: it is the
        // transaction's own.
        let copies = map.stats().page_copies;
        let r = map.try_update(|tx| {
            tx.insert(k(keys[0]), v(5))?;
            tx.clear()?;
            tx.insert(k(keys[0]), v(6))?;
            Ok(())
        });
        assert_eq!(r, Ok(()));
        assert_eq!(
            map.stats().page_copies - copies,
            1,
            "write, clear, write again"
        );
        check_view(&map.snapshot(), &plain(&[(keys[0], 6)]), 17).unwrap();
        let all_zero: Oracle = keys.iter().map(|&key| (key, 0)).collect();
        check_view(&held, &all_zero, 13).unwrap();
        drop(held);
        // With pages free: write two pages, clear, refill a third: three copies.
        let copies = map.stats().page_copies;
        map.update(|tx| {
            tx.insert(k(keys[1]), v(7))?;
            tx.insert(k(keys[2]), v(7))?;
            tx.clear()?;
            tx.insert(k(keys[3]), v(7))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            map.stats().page_copies - copies,
            3,
            "two written, one refilled"
        );
        check_view(&map.snapshot(), &plain(&[(keys[3], 7)]), 18).unwrap();
        probe_slots(&map).unwrap();
    });
}

/// A one-key write changes at most 4 pages (no run of occupied slots grows past 48), which a
/// map's `P` always covers: with the least pool allowed (N = 128, P = 4), the longest run,
/// 48 keys with one home from the end of a page on, spans four pages, and blocking inserts and
/// removals there never run out of pages (a bug would make them wait for ever: the watchdog
/// aborts). The 49th key is refused with `Full` in a table far from full.
#[test]
fn a_one_key_write_never_needs_more_than_p_pages() {
    with_drop_accounting("a_one_key_write_never_needs_more_than_p_pages", || {
        type Map = SnapMap<Tracked<u32>, V, 128, 4, 2, 4>;
        let home = |key: u32| ((FxBuildHasher.hash_one(key) >> 32) as u32 | 1) >> 25;
        let keys: Vec<u32> = (0u32..).filter(|&key| home(key) == 15).take(49).collect();
        let map: Map = SnapMap::new();
        for (i, &key) in keys[..48].iter().enumerate() {
            let copies = map.stats().page_copies;
            assert_eq!(
                values(map.insert(Tracked::new(key), v(0))),
                Ok(None),
                "key {i}"
            );
            // Slots 15 to 15 + i: pages 0 to (15 + i) / 16.
            let pages = i.div_ceil(16) + 1;
            assert_eq!(map.stats().page_copies - copies, pages, "key {i}");
        }
        assert_eq!(
            values(map.insert(Tracked::new(keys[48]), v(0))),
            Err(Error::Full)
        );
        assert_eq!(map.snapshot().len(), 48);
        // Removing the key at the front (slot 15) shifts the other 47 back, across all four
        // pages; putting it back walks it to the end of the run again, past the others.
        for (round, &front) in keys[..3].iter().enumerate() {
            let copies = map.stats().page_copies;
            assert_eq!(values(map.remove(&front)), Ok(Some(0)), "round {round}");
            assert_eq!(map.stats().page_copies - copies, 4, "round {round}: remove");
            let copies = map.stats().page_copies;
            let r = map.insert(Tracked::new(front), v(1));
            assert_eq!(values(r), Ok(None), "round {round}");
            assert_eq!(map.stats().page_copies - copies, 4, "round {round}: insert");
        }
        let snap = map.snapshot();
        assert_eq!((snap.len(), snap.longest_probe()), (48, 48));
        assert_eq!(map.stats().page_waits, 0);
    });
}

/// `insert` of a present key keeps the key the map has (as `HashMap` does) and drops the
/// caller's, in every form: the blocking and `try_` ones, and `Txn::insert`.
#[test]
fn insert_of_a_present_key_keeps_the_maps_key() {
    /// A key whose tag takes no part in `Hash` or `Eq`.
    #[derive(Clone, Debug)]
    struct Tagged(u8, Tracked<char>);
    impl Hash for Tagged {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }
    impl PartialEq for Tagged {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Tagged {}
    with_drop_accounting("insert_of_a_present_key_keeps_the_maps_key", || {
        let map: SnapMap<Tagged, V, 64, 4, 2, 4> = SnapMap::new();
        let tag = |map: &SnapMap<Tagged, V, 64, 4, 2, 4>, key: u8| {
            let snap = map.snapshot();
            let tags: Vec<(char, u32)> = snap
                .iter()
                .filter(|(k, _)| k.0 == key)
                .map(|(k, v)| (k.1.value(), v.value()))
                .collect();
            tags
        };
        assert_eq!(
            values(map.insert(Tagged(1, Tracked::new('a')), v(1))),
            Ok(None)
        );
        assert_eq!(
            values(map.insert(Tagged(1, Tracked::new('b')), v(2))),
            Ok(Some(1))
        );
        assert_eq!(tag(&map, 1), [('a', 2)]);
        assert_eq!(
            values(map.try_insert(Tagged(1, Tracked::new('c')), v(3))),
            Ok(Some(2))
        );
        assert_eq!(tag(&map, 1), [('a', 3)]);
        map.update(|tx| {
            assert_eq!(
                values(tx.insert(Tagged(1, Tracked::new('d')), v(4))),
                Ok(Some(3))
            );
            assert_eq!(
                values(tx.insert(Tagged(2, Tracked::new('e')), v(5))),
                Ok(None)
            );
            assert_eq!(
                values(tx.insert(Tagged(2, Tracked::new('f')), v(6))),
                Ok(Some(5))
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(tag(&map, 1), [('a', 4)]);
        assert_eq!(tag(&map, 2), [('e', 6)]);
        // Removed and inserted again: the new key.
        assert_eq!(
            values(map.remove(&Tagged(1, Tracked::new('x')))),
            Ok(Some(4))
        );
        assert_eq!(
            values(map.insert(Tagged(1, Tracked::new('g')), v(7))),
            Ok(None)
        );
        assert_eq!(tag(&map, 1), [('g', 7)]);
    });
}

/// The clusters of [`KEYS`] do what the random runs need of them: in tables of 32 and 64 slots,
/// a cluster's last key lands in the page after its home, so that inserting it copies two pages,
/// and so does removing the cluster's first key (which shifts the rest back across).
#[test]
fn key_clusters_cross_pages() {
    fn check<const N: usize>(clusters: &[&[u8]]) {
        for cluster in clusters {
            let map: SnapMap<u8, u32, N, 4, 2, 4> = SnapMap::new();
            let copies = || map.stats().page_copies;
            let mut last = 0;
            for &key in *cluster {
                let before = copies();
                assert_eq!(map.insert(key, 0), Ok(None));
                last = copies() - before;
            }
            assert_eq!(last, 2, "N = {N}: inserting the last of {cluster:?}");
            let before = copies();
            assert_eq!(map.remove(&cluster[0]), Ok(Some(0)));
            assert_eq!(
                copies() - before,
                2,
                "N = {N}: removing the first of {cluster:?}"
            );
        }
    }
    check::<32>(&[&KEYS[0..3], &KEYS[3..6]]);
    check::<64>(&[&KEYS[0..3], &KEYS[3..6], &KEYS[6..8], &KEYS[8..10]]);
}

// =============================================================================================
// Panicking `Drop`s and half-done copies (issue 9, items 1-3)
// =============================================================================================

/// A `Drop` that panics inside a write (of an old entry of the page it reuses, or in `clear`)
/// publishes nothing, and the half-emptied page it gives back must not poison the writes that
/// later reuse it. Every drop position of a `clear` on a map of five keys, then unrelated writes
/// that cycle through every spare page and generation slot, each checked against the oracle.
/// (With change logs, it used to drop an entry before its slot was logged and counted out of
/// `len`: later writes published generations without key 2, or `len` 5 with 4 entries.)
#[test]
fn panic_in_drop_during_a_write_publishes_nothing_and_loses_nothing() {
    with_drop_accounting(
        "panic_in_drop_during_a_write_publishes_nothing_and_loses_nothing",
        || {
            let mut fired = 0;
            for after in 0..24u64 {
                let map: SnapMap<K, V, 8> = SnapMap::new();
                let mut oracle = Oracle::new();
                for i in 0..5u8 {
                    map.insert(k(i), v(u32::from(i) * 10)).unwrap();
                    oracle.insert(i, u32::from(i) * 10);
                }
                let mut version = 5;
                let bomb = panic_on_drop_after(after);
                let result = catch_unwind(AssertUnwindSafe(|| map.clear()));
                let did_fire = bomb.fired();
                drop(bomb);
                if did_fire {
                    fired += 1;
                    assert!(
                        result.is_err(),
                        "after {after}: the panic did not propagate"
                    );
                } else {
                    assert_eq!(result.ok(), Some(Ok(())), "after {after}");
                    oracle.clear();
                    version += 1;
                }
                let check = |oracle: &Oracle, version: u64, when: &str| {
                    check_view(&map.snapshot(), oracle, version)
                        .unwrap_or_else(|e| panic!("drop {after} panicked, {when}: {e}"));
                };
                check(&oracle, version, "then the clear");
                for round in 0..8u32 {
                    assert_eq!(values(map.insert(k(9), v(round))), Ok(None));
                    oracle.insert(9, round);
                    version += 1;
                    check(&oracle, version, &format!("insert {round}"));
                    assert_eq!(values(map.remove(&9)), Ok(Some(round)));
                    oracle.remove(&9);
                    version += 1;
                    check(&oracle, version, &format!("remove {round}"));
                }
                probe_slots(&map).unwrap();
            }
            assert!(fired >= 10, "only {fired} drop panics fired");
        },
    );
}

/// A `Clone` that panics halfway through a page copy leaves the page it claimed with some slots
/// copied and the rest as they were (or as an older table left them): the page goes back to the
/// pool, nothing is published or counted, every page and slot is free again, and each entry is
/// dropped exactly once. Every clone position: a one-key write copying one page into the page the
/// previous write replaced (N = 8, P = 1), and a transaction changing every key of a table of
/// four pages (N = 64), which copies each page on first write (so each entry is cloned once).
/// (With whole-table copies, the map's drop used to underflow a copy's `len` in debug builds.)
#[test]
fn panic_in_clone_during_a_page_copy_then_drop_drops_everything_once() {
    fn every_clone_position<const N: usize, const P: usize>(
        keys: u8,
        write: impl Fn(&SnapMap<K, V, N, 4, 2, P>) -> Result<(), Error>,
    ) -> u64 {
        for after in 0.. {
            let before = drop_counts();
            let map: SnapMap<K, V, N, 4, 2, P> = SnapMap::new();
            for i in 0..keys {
                map.insert(k(i), v(u32::from(i))).unwrap();
            }
            let (contents, version) = {
                let snap = map.snapshot();
                (snapshot_contents(&snap), snap.version())
            };
            let copies = map.stats().page_copies;
            let bomb = panic_on_clone_after(after);
            let result = catch_unwind(AssertUnwindSafe(|| write(&map)));
            let fired = bomb.fired();
            drop(bomb);
            if !fired {
                assert!(matches!(result, Ok(Ok(()))), "after {after}: {result:?}");
                return after;
            }
            assert!(
                result.is_err(),
                "after {after}: the panic did not propagate"
            );
            check_view(&map.snapshot(), &contents, version)
                .unwrap_or_else(|e| panic!("clone {after} panicked: {e}"));
            assert_eq!(
                map.stats().page_copies,
                copies,
                "clone {after}: copies counted"
            );
            probe_slots(&map).unwrap_or_else(|e| panic!("clone {after} panicked: {e}"));
            drop(map);
            drop_counts().assert_balanced_since(&before, &format!("clone {after} panicked"));
        }
        unreachable!()
    }
    with_drop_accounting(
        "panic_in_clone_during_a_page_copy_then_drop_drops_everything_once",
        || {
            let fired = every_clone_position::<8, 1>(6, |map| map.insert(k(7), v(7)).map(drop));
            assert_eq!(fired, 12, "clones copying a page of 6 entries");
            let fired = every_clone_position::<64, 4>(12, |map| {
                map.update(|tx| {
                    for key in 0..12 {
                        let value = tx.get_mut(&key)?.ok_or(Error::Aborted)?;
                        *value = v(value.value() + 100);
                    }
                    Ok(())
                })
            });
            assert_eq!(fired, 2 * 12, "clones copying the pages of 12 entries");
        },
    );
}

/// A `Drop` that panics while the map itself drops must not leak the rest of the pages: at every
/// drop position, every key and value is dropped exactly once. (Eight keys, G = 2 and P = 2: the
/// home page and the two spare pages hold the tables of the last three writes, 6 + 7 + 8 entries,
/// 42 live keys and values; a panic used to leave the rest of its table.)
#[test]
fn panic_in_drop_while_the_map_drops_drops_everything_once() {
    with_drop_accounting(
        "panic_in_drop_while_the_map_drops_drops_everything_once",
        || {
            for after in 0..42u64 {
                let before = drop_counts();
                let map: SnapMap<K, V, 8, 2, 0, 2> = SnapMap::new();
                for i in 0..8u8 {
                    map.insert(k(i), v(u32::from(i))).unwrap();
                }
                assert_eq!(drop_counts().live_since(&before), 42);
                let bomb = panic_on_drop_after(after);
                let result = catch_unwind(AssertUnwindSafe(move || drop(map)));
                assert!(
                    bomb.fired() && result.is_err(),
                    "drop {after} of 42 did not panic"
                );
                drop(bomb);
                drop_counts().assert_balanced_since(&before, &format!("drop {after} panicked"));
            }
        },
    );
}

/// A `Drop` that panics while a write gives a cleared position entries again (dropping an old
/// entry of the spare page it reuses, before it copies) leaves that position writable. The
/// position's record (see `snapmap-core`'s `cleared`) once changed hands before the copy, and the
/// unwind, which tells the records a writer holds from its index, did not give it back: every
/// later write to the position found it taken (`try_` forms returned `NoFreePage` with nothing
/// pinned, blocking forms spun for ever).
#[test]
fn panic_in_drop_while_refilling_a_cleared_position_leaves_it_writable() {
    with_drop_accounting(
        "panic_in_drop_while_refilling_a_cleared_position_leaves_it_writable",
        || {
            let map: SnapMap<K, V, 32, 4, 2, 2> = SnapMap::new();
            let a = key_on_page::<32>(0, &[]);
            // Three writes of a's page: both spare pages then hold an old copy of `a`.
            for value in 0..3 {
                map.insert(k(a), v(value)).unwrap();
            }
            assert_eq!(map.clear(), Ok(()));
            // The refill claims a spare page holding an old `a` and drops it first: it panics.
            let bomb = panic_on_drop_after(0);
            let result = catch_unwind(AssertUnwindSafe(|| map.try_insert(k(a), v(9))));
            assert!(bomb.fired() && result.is_err(), "the drop did not panic");
            drop(bomb);
            check_view(&map.snapshot(), &Oracle::new(), 4).unwrap();
            // Nothing is pinned: the write must go through.
            assert_eq!(values(map.try_insert(k(a), v(9))), Ok(None));
            probe_slots(&map).unwrap();
        },
    );
}
