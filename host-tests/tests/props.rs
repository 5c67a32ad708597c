//! Property tests of `snapmap-core`: random operation sequences against a `BTreeMap` oracle,
//! single-threaded, plus targeted tests of the error and panic paths.
//!
//! Keys and values are [`Tracked`], so every case also checks that every key and value the map
//! was given or copied was dropped exactly once, and that nothing read through a snapshot had
//! been dropped. The model predicts exhaustion of reader and generation slots exactly (a single
//! thread holding snapshots and `Reader`s), and of spare pages by bounds (exactly for a table of
//! one page; see [`PageModel`]). Blocking forms are only called when they cannot wait, and
//! otherwise the `try_` forms must return the predicted `NoReaderSlot` / `NoFreeGeneration`, and
//! `NoFreePage` only where the bounds allow it.

use host_tests::{
    drop_counts, panic_on_clone_after, panic_on_drop_after, silence_injected_panics, tracking_lock,
    Tracked, Watchdog, INJECTED_PANIC,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use snapmap_core::{Error, FxBuildHasher, Reader, SnapMap, Snapshot, Stats, Txn};
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
    Update {
        ops: Vec<TxOp>,
        abort: bool,
        try_: bool,
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
        3 => (prop::collection::vec(tx_op(), 0..8), prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(ops, abort, try_)| Op::Update { ops, abort, try_ }),
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
        4 => (prop::collection::vec(tx_op(), 0..8), prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(ops, abort, try_)| Op::Update { ops, abort, try_ }),
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
            tx.remove(&key);
        }
        TxOp::AddMut(key, add) => {
            if let Some(value) = tx.get_mut(&key) {
                *value = v(value.value() + add);
            }
        }
        TxOp::Retain(m) => tx.retain(|_, value| value.value() % m != 0),
        TxOp::Clear => tx.clear(),
        TxOp::Get(key) => {
            let _ = tx.get(&key);
        }
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
/// generation `u` that later publications replaced: at most the table's pages, and at most the
/// pages copied since `u` (each publication replaced as many pages as it copied). Two pins of one
/// version block the same pages. Which pages (and so how many) the harness cannot tell without
/// the table's layout, except in a table of one page: every write copies that page, so each pin
/// older than the current version blocks exactly one, its own generation's.
///
/// So a write planned with the distinct old pinned versions `U` has at least
/// `P - sum of min(pages, copies_since(u))` pages it may claim (its [`Plan::guaranteed`]), exactly
/// that many in a table of one page. A write's change needs at least one page if it changes
/// anything, and at most [`Plan::max_pages`].
struct PageModel {
    /// The pages copied by the publication of each version (none for version 0).
    copies: Vec<usize>,
}

impl PageModel {
    fn new() -> Self {
        Self { copies: vec![0] }
    }

    /// Pages copied by the publications after version `u`.
    fn copies_since(&self, u: u64) -> usize {
        self.copies[u as usize + 1..].iter().sum()
    }

    /// The most spare pages the pins on the versions `pinned` (all older than the current one)
    /// may block, in a table of `N` slots.
    fn blocked_at_most<const N: usize>(&self, pinned: &BTreeSet<u64>) -> usize {
        pinned
            .iter()
            .map(|&u| table_pages::<N>().min(self.copies_since(u)))
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
    /// than 16, but may cross into the next page), every page of the table for a transaction.
    max_pages: usize,
    /// Whether it changes one key (not a transaction or a clear).
    one_key: bool,
    /// Whether a reader's snapshot (of a version older than the current one that no held
    /// snapshot shares) is all that keeps `guaranteed` below `max_pages`.
    reader_blocks: bool,
}

/// What a one-key write changes (see [`Plan::max_pages`]).
#[derive(Clone, Copy)]
enum OneKey {
    /// The value of a present key: in one slot.
    Value,
    /// Whether the key is there: the slots of its probe run.
    Entry,
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

    /// Plans (and records, for `verify`) a write of one key, or of a transaction or clear.
    fn plan(&mut self, one_key: Option<OneKey>) -> Plan {
        let max_pages = match one_key {
            None => table_pages::<N>(),
            Some(OneKey::Value) => 1,
            Some(OneKey::Entry) => table_pages::<N>().min(2),
        };
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
            one_key: one_key.is_some(),
            reader_blocks,
        };
        self.planned = Some(plan);
        plan
    }

    /// Whether a blocking form of the planned write is sure not to wait: a generation slot is
    /// free, and so are the pages of any change it can make (it succeeds), or every spare page
    /// (it succeeds, or fails with `NoFreePage` for a change needing more than `P` pages). With
    /// pages blocked it could wait for itself.
    fn can_block(plan: &Plan) -> bool {
        plan.free_generation && (plan.guaranteed >= plan.max_pages || plan.guaranteed == P)
    }

    /// Checks a write's `NoFreePage`, or its absence, against the pool model (`changes`: whether
    /// the change changes anything, and so needs a page; `blocking`: which form was called).
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
                let plan = self.plan(Some(if present {
                    OneKey::Value
                } else {
                    OneKey::Entry
                }));
                let use_try = try_ || !Self::can_block(&plan);
                let got = if use_try {
                    map.try_insert(k(key), v(value))
                } else {
                    map.insert(k(key), v(value))
                };
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
                hit_result("insert", &expected);
                ensure!(
                    got == expected,
                    "insert({key}, {value}) try={use_try}: got {got:?}, expected {expected:?}"
                );
            }
            &Op::Remove { key, try_ } => {
                let present = self.oracle.contains_key(&key);
                let plan = self.plan(Some(OneKey::Entry));
                let use_try = try_ || !Self::can_block(&plan);
                let got = if use_try {
                    map.try_remove(&key)
                } else {
                    map.remove(&key)
                };
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
                hit_result("remove", &expected);
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
                let plan = self.plan(Some(OneKey::Entry));
                if present.is_none() && !Self::can_block(&plan) {
                    hit("get_or_insert skipped: would wait");
                    return Ok(());
                }
                let got = map
                    .get_or_insert(k(key), v(value))
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
                hit_result("get_or_insert", &expected);
                ensure!(
                    got == expected,
                    "get_or_insert({key}, {value}): got {got:?}, expected {expected:?}"
                );
            }
            &Op::CompareExchange { key, expect, new } => {
                let plan = self.plan(Some(OneKey::Value));
                if !Self::can_block(&plan) {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let current = expect.unwrap_or_else(|| self.oracle.get(&key).copied().unwrap_or(0));
                let got = map.compare_exchange(&key, &v(current), v(new));
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
                let plan = self.plan(Some(OneKey::Entry));
                if !Self::can_block(&plan) {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let got = map
                    .remove_if(&key, |x| x.value() % modulus == 0)
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
                let plan = self.plan(None);
                if !Self::can_block(&plan) {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let got = map.clear();
                let starved = Self::out_of_pages(&plan, !self.oracle.is_empty(), true, &got)
                    .map_err(|e| format!("clear: {e}"))?;
                if starved {
                    hit("clear: NoFreePage");
                } else {
                    ensure!(got == Ok(()), "clear: {got:?}");
                    if !self.oracle.is_empty() {
                        self.oracle.clear();
                        self.version += 1;
                    }
                }
            }
            Op::Update { ops, abort, try_ } => return self.exec_update(ops, *abort, *try_),
            &Op::PanicInUpdate { ref ops, try_ } => {
                let plan = self.plan(None);
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
                let result = catch_unwind(AssertUnwindSafe(|| {
                    if use_try {
                        map.try_update(change)
                    } else {
                        map.update(change)
                    }
                }));
                ensure!(
                    result.is_err(),
                    "a panicking update returned {:?}",
                    result.ok()
                );
                hit("update closure panicked");
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
                    (0, _) => hit("drop panicked, nothing published"),
                    (1, &Op::Insert { key, value, .. }) => {
                        self.model_insert(key, value)
                            .map_err(|e| format!("insert published, but the model says {e:?}"))?;
                        hit("drop panicked after publishing");
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
        }
        Ok(())
    }

    fn exec_update(&mut self, ops: &[TxOp], abort: bool, try_: bool) -> Result<(), String> {
        let map = self.map;
        let plan = self.plan(None);
        let use_try = try_ || !Self::can_block(&plan);
        let oracle = &self.oracle;
        let mut runs = 0;
        let mut mismatches: Vec<String> = Vec::new();
        // (working copy, changed, returned early)
        let mut outcome: Option<(Oracle, bool, bool)> = None;
        // Whether the copy ran out of pages: from then on its changes do nothing (`insert`
        // fails, `remove` and `get_mut` find nothing), and the write publishes nothing.
        let mut starved = false;
        let change = |tx: &mut Txn<'_, K, V, N>| -> Result<usize, Error> {
            runs += 1;
            // What the copy holds: the oracle with the changes so far (frozen once starved).
            let mut work = oracle.clone();
            // Whether a change was made or tried (and so claimed or sought a page).
            let mut changed = false;
            let (start, _) = contents(tx.iter());
            if start != work {
                mismatches.push(format!("txn starts from {start:?}, not {work:?}"));
            }
            for op in ops {
                // This op's results are those of a copy that just ran out of pages.
                let mut starves = false;
                match *op {
                    TxOp::Insert(key, value, propagate) => {
                        let full = !work.contains_key(&key) && work.len() == N;
                        let expected = if full {
                            Err(Error::Full)
                        } else if starved {
                            Err(Error::NoFreePage)
                        } else {
                            Ok(work.get(&key).copied())
                        };
                        let got = tx
                            .insert(k(key), v(value))
                            .map(|old| old.map(|o| o.value()));
                        if got == Err(Error::NoFreePage) && expected.is_ok() {
                            starves = true;
                        } else if got != expected {
                            mismatches.push(format!(
                                "tx.insert({key}, {value}): {got:?}, expected {expected:?}"
                            ));
                        } else if got.is_ok() {
                            changed = true;
                            work.insert(key, value);
                        }
                        if propagate && got.is_err() {
                            starved |= starves;
                            outcome = Some((work, changed, true));
                            return Err(Error::Full);
                        }
                    }
                    TxOp::Remove(key) => {
                        let expected = work.get(&key).copied().filter(|_| !starved);
                        let got = tx.remove(&key).map(|o| o.value());
                        if got.is_none() && expected.is_some() {
                            starves = true;
                        } else if got != expected {
                            mismatches
                                .push(format!("tx.remove({key}): {got:?}, expected {expected:?}"));
                        } else if got.is_some() {
                            changed = true;
                            work.remove(&key);
                        }
                    }
                    TxOp::AddMut(key, add) => {
                        let expected = work.get(&key).map(|x| x + add).filter(|_| !starved);
                        let got = tx.get_mut(&key).map(|x| {
                            *x = v(x.value() + add);
                            x.value()
                        });
                        if got.is_none() && expected.is_some() {
                            starves = true;
                        } else if got != expected {
                            mismatches.push(format!(
                                "tx.get_mut({key}) += {add}: {got:?}, expected {expected:?}"
                            ));
                        } else if let Some(x) = got {
                            changed = true;
                            work.insert(key, x);
                        }
                    }
                    TxOp::Retain(m) => {
                        // Each entry meets the predicate once (a stateful one must be able to
                        // count on it); a retain that runs out of pages stops at the entry it
                        // could not remove, and keeps the rest.
                        let mut met = BTreeMap::new();
                        tx.retain(|key, x| {
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
                            // Nothing changes; `now` is checked against `work` below.
                        } else if now == kept && met.keys().eq(work.keys()) {
                            changed |= removes;
                            work = kept;
                        } else if removes && within(&kept, &now) && within(&now, &work) {
                            starves = true;
                            work = now;
                        } else {
                            mismatches.push(format!(
                                "tx.retain(% {m}) left {now:?} of {work:?}, met {met:?}"
                            ));
                        }
                    }
                    TxOp::Clear => {
                        // All or nothing: a clear that runs out of pages removes no entry (one
                        // cleared in part would leave keys its own lookups cannot find).
                        tx.clear();
                        let (now, _) = contents(tx.iter());
                        if starved {
                            // Nothing changes; `now` is checked against `work` below.
                        } else if now.is_empty() {
                            changed |= !work.is_empty();
                            work.clear();
                        } else if now == work {
                            starves = true;
                        } else {
                            mismatches.push(format!("tx.clear left {now:?} of {work:?}"));
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
            outcome = Some((work, changed, false));
            if abort {
                Err(Error::Aborted)
            } else {
                Ok(len)
            }
        };
        let got = if use_try {
            map.try_update(change)
        } else {
            map.update(change)
        };
        ensure!(mismatches.is_empty(), "update({ops:?}): {mismatches:?}");
        hit_result("update", &got);
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
        let (work, changed, early) = outcome.expect("the closure ran");
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
            if changed {
                hit("update: published");
                self.oracle = work;
                self.version += 1;
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
                    copies >= 1 && copies <= claimable && copies <= plan.max_pages,
                    "a write copied {copies} pages, with {claimable} of {P} spare pages claimable \
                     at most, for a change of at most {} pages",
                    plan.max_pages
                );
                ensure!(
                    self.pages.copies.len() as u64 == self.version,
                    "page model out of step"
                );
                self.pages.copies.push(copies);
                // Impossible under the old rule, where a pin blocked every page replaced after
                // it (so at most P of them).
                if self.pinned().any(|u| self.pages.copies_since(u) > P) {
                    hit(HELD_ACROSS_MORE_THAN_P);
                }
                hit(match (copies, plan.one_key) {
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

/// Empties `map`, which nothing pins: with `clear`, or, if that needs more spare pages than
/// there are (entries in more than `P` pages), one entry at a time (some entry can always go:
/// one at the end of its run is in one page).
fn empty<KK, VV, const N: usize, const G: usize, const R: usize, const P: usize>(
    map: &SnapMap<KK, VV, N, G, R, P>,
) -> Result<(), String>
where
    KK: Hash + Eq + Clone,
    VV: Clone,
{
    match map.clear() {
        Ok(()) => return Ok(()),
        Err(Error::NoFreePage) => ensure!(
            P < table_pages::<N>(),
            "clear: NoFreePage with {P} spare pages, for a table of {} pages",
            table_pages::<N>()
        ),
        Err(e) => return Err(format!("clear: {e:?}")),
    }
    loop {
        let keys: Vec<KK> = map.snapshot().iter().map(|(key, _)| key.clone()).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let removed = keys
            .iter()
            .any(|key| matches!(map.try_remove(key), Ok(Some(_))));
        ensure!(removed, "none of {} entries could be removed", keys.len());
    }
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
        let Harness { held, readers, .. } = harness;
        drop(held);
        drop(readers);
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
    let result = runner.run(&prop::collection::vec(op(), 1..60), |ops| {
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

/// Outcomes of changes needing more pages than the pool has (a table of more pages than `P`).
const BIG_CHANGES: &[&str] = &[
    "change needs more than P pages",
    "blocking write: NoFreePage",
    "clear: NoFreePage",
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
    let never = outcomes(&[FEW_PAGES, READER_BLOCKS]);
    run_random::<8, 4, 2, 8>("random_ops_match_oracle_n8_g4_r2", 1_000, &must, &never);
}

/// A table of one page, G = 6 and P = 3: up to four old versions pinned, each blocking one page,
/// so pins exhaust the pool exactly when three distinct old versions are pinned (the model is
/// exact here), and a snapshot held across many writes blocks one.
#[test]
fn random_ops_match_oracle_n8_g6_r2_p3() {
    let must = outcomes(&[COMMON, FEW_PAGES, READER_BLOCKS, &[HELD_ACROSS_MORE_THAN_P]]);
    run_random::<8, 6, 2, 3>("random_ops_match_oracle_n8_g6_r2_p3", 2_000, &must, &[]);
}

/// One spare page (P = 1): a snapshot held across one write blocks every later one.
#[test]
fn random_ops_match_oracle_n8_g4_r2_p1() {
    let must = outcomes(&[COMMON, FEW_PAGES, READER_BLOCKS]);
    run_random::<8, 4, 2, 1>(
        "random_ops_match_oracle_n8_g4_r2_p1",
        3_000,
        &must,
        &[HELD_ACROSS_MORE_THAN_P],
    );
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
    let never = outcomes(&[FEW_PAGES, READER_BLOCKS]);
    run_random::<4, 3, 1, 2>("random_ops_match_oracle_n4_g3_r1_p2", 3_000, &must, &never);
}

/// G = 6, R = 3 and many spare pages (P = 32): 16 entries never fill up with 12 keys, held
/// snapshots pin several generations at once, and pages never run out (a table of one page).
#[test]
fn random_ops_match_oracle_n16_g6_r3_p32() {
    let must = outcomes(&[COMMON, &["a Reader's snapshot held across two writes"]]);
    let never = outcomes(&[&["insert: Full", "update: Full"], FEW_PAGES]);
    run_random::<16, 6, 3, 32>(
        "random_ops_match_oracle_n16_g6_r3_p32",
        1_000,
        &must,
        &never,
    );
}

/// Two pages and one spare (N = 32, P = 1): a clear or a transaction of both pages, and a key
/// whose probe run crosses into the other page, need more pages than the pool has; a pin across
/// a write blocks the spare page. (`READER_BLOCKS` is rare here, a few times a run: with more
/// pages than one the bounds seldom pin a `NoFreePage` on the reader alone.)
#[test]
fn random_ops_match_oracle_n32_g4_r2_p1() {
    let must = outcomes(&[
        COMMON,
        FEW_PAGES,
        BIG_CHANGES,
        &["one-key change needs more than P pages"],
    ]);
    run_random::<32, 4, 2, 1>(
        "random_ops_match_oracle_n32_g4_r2_p1",
        2_000,
        &must,
        &[HELD_ACROSS_MORE_THAN_P],
    );
}

/// Four pages and two spare (N = 64, P = 2): writes copy one or two pages, changes of three or
/// four need more than the pool has, and a pin blocks up to both spare pages. (`READER_BLOCKS`
/// is rare here, as with N = 32.)
#[test]
fn random_ops_match_oracle_n64_g4_r2_p2() {
    let must = outcomes(&[
        COMMON,
        FEW_PAGES,
        BIG_CHANGES,
        &[
            "write copied two or more pages",
            "one-key write copied two pages",
            "a Reader's snapshot held across two writes",
            HELD_ACROSS_MORE_THAN_P,
        ],
    ]);
    run_random::<64, 4, 2, 2>("random_ops_match_oracle_n64_g4_r2_p2", 1_000, &must, &[]);
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
            tx.remove(&0).expect("key 0");
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
                tx.clear();
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
                    tx.remove(&1);
                    *tx.get_mut(&2).unwrap() = v(99);
                    if round % 3 == 0 {
                        tx.clear();
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
                            tx.remove(&0);
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
                        tx.clear();
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
                assert!(tx.get_mut(&9).is_none());
                tx.remove(&9);
                tx.retain(|_, _| true);
                Ok(7)
            }),
            Ok(7)
        );
        assert_eq!(
            map.update(|tx| {
                tx.insert(k(5), v(50))?;
                tx.clear();
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
            *tx.get_mut(&3).unwrap() = v(31);
            Ok(())
        })
        .unwrap();
        changed(&map, "get_mut");
        map.update(|tx| {
            tx.retain(|key, _| key.value() != 4);
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
                    tx.clear();
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
                            tx.remove(&TouchyKey(0));
                            if let Some(x) = tx.get_mut(&TouchyKey(1)) {
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

/// Spare pages, single-threaded (N = 64: four pages; P = 2). A snapshot held across writes holds
/// the pages of its own generation that they replaced, and no others: writes that rewrite one
/// page go on under it, more of them than there are spare pages, while the first write of a
/// second page blocks the other spare page. Then `try_` forms return `NoFreePage` and change
/// nothing (a transaction that runs out sees `insert` fail and its other changes do nothing, and
/// publishes nothing whatever it returns), a write that changes nothing still goes, and dropping
/// the snapshot frees them. A change that needs more pages than the pool has (a clear of a map
/// with entries in three pages) fails from the blocking forms too, at once.
#[test]
fn spare_pages_run_out_with_errors_and_change_nothing() {
    with_drop_accounting("spare_pages_run_out_with_errors_and_change_nothing", || {
        type Map = SnapMap<K, V, 64, 4, 2, 2>;
        // The home slot of a key in a table of 64 slots: the top 6 bits of its 32-bit meta.
        let home = |key: u8| ((FxBuildHasher.hash_one(key) >> 32) as u32 | 1) >> 26;
        // A key in each of pages 0, 1 and 2, early enough in its page that its insert (into a
        // map of three keys) copies that page alone; and a key that is never inserted.
        let [a, b, c] = [0, 1, 2].map(|page| {
            (0..=u8::MAX)
                .find(|&key| home(key) / 16 == page && home(key) % 16 < 8)
                .expect("a key for each page")
        });
        let absent = (0..=u8::MAX).find(|key| ![a, b, c].contains(key)).unwrap();
        let map: Map = SnapMap::new();
        for key in [a, b, c] {
            assert_eq!(values(map.insert(k(key), v(0))), Ok(None));
        }
        assert_eq!(map.stats().page_copies, 3, "three one-page writes");
        let first = plain(&[(a, 0), (b, 0), (c, 0)]);
        let held = map.snapshot(); // version 3
                                   // The first write of a's page blocks version 3's copy of it; the next ones replace pages
                                   // born after 3, which `held` does not have: 2P + 1 of them go, one page each. A blocking
                                   // write that finds a page it may claim does not wait.
        for value in 1..=5 {
            let copies = map.stats().page_copies;
            let r = if value % 2 == 1 {
                map.try_insert(k(a), v(value))
            } else {
                map.insert(k(a), v(value))
            };
            assert_eq!(values(r), Ok(Some(value - 1)), "write {value} of a's page");
            assert_eq!(map.stats().page_copies - copies, 1, "write {value}");
        }
        // b's page: version 3's copy goes to the other spare page, and both are blocked.
        assert_eq!(values(map.insert(k(b), v(1))), Ok(Some(0)));
        let now = plain(&[(a, 5), (b, 1), (c, 0)]);
        let unchanged = |map: &Map, what: &str| {
            check_view(&map.snapshot(), &now, 9).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(map.stats().publishes, 9, "{what}");
        };
        assert_eq!(values(map.try_insert(k(c), v(1))), Err(Error::NoFreePage));
        unchanged(&map, "try_insert");
        // Even a's page, which the writes under `held` rewrote: the current copy is published,
        // so immutable, and the pool holds version 3's pages alone.
        assert_eq!(values(map.try_insert(k(a), v(6))), Err(Error::NoFreePage));
        assert_eq!(values(map.try_remove(&b)), Err(Error::NoFreePage));
        unchanged(&map, "try_remove");
        // Writes that change nothing need no page.
        assert_eq!(values(map.try_remove(&absent)), Ok(None));
        assert_eq!(map.try_update(|tx| Ok(tx.len())), Ok(3));
        let mut runs = 0;
        let r = map.try_update(|tx| {
            runs += 1;
            assert_eq!(values(tx.insert(k(c), v(2))), Err(Error::NoFreePage));
            assert_eq!(
                tx.remove(&a).map(|x| x.value()),
                None,
                "remove out of pages"
            );
            assert!(tx.get_mut(&b).is_none(), "get_mut out of pages");
            tx.clear();
            assert_eq!(contents(tx.iter()).0, now, "a txn out of pages changed");
            Ok(())
        });
        assert_eq!((r, runs), (Err(Error::NoFreePage), 1));
        unchanged(&map, "try_update");
        check_view(&held, &first, 3).unwrap();
        drop(held);
        assert_eq!(
            values(map.try_insert(k(c), v(1))),
            Ok(Some(0)),
            "pages freed"
        );
        let now = plain(&[(a, 5), (b, 1), (c, 1)]);

        // Three pages to clear, two spare: never possible, so the blocking forms fail too.
        assert_eq!(map.clear(), Err(Error::NoFreePage));
        let mut runs = 0;
        let r = map.update(|tx| {
            runs += 1;
            tx.clear();
            Err::<(), _>(Error::Aborted)
        });
        assert_eq!(
            (r, runs),
            (Err(Error::NoFreePage), 1),
            "out of pages, then aborted"
        );
        check_view(&map.snapshot(), &now, 10).unwrap();
        assert_eq!((map.stats().page_waits, map.stats().page_copies), (0, 10));
        // Two pages at a time go.
        map.update(|tx| {
            tx.remove(&a);
            tx.remove(&b);
            Ok(())
        })
        .unwrap();
        assert_eq!(map.stats().page_copies, 12);
        assert_eq!(map.clear(), Ok(()));
        check_view(&map.snapshot(), &Oracle::new(), 12).unwrap();
        probe_slots(&map).unwrap();
    });
}

/// The clusters of [`KEYS`] do what the random runs need of them: in tables of 32 and 64 slots,
/// a cluster's last key lands in the page after its home, so that inserting it copies two pages,
/// and so does removing the cluster's first key (which shifts the rest back across).
#[test]
fn key_clusters_cross_pages() {
    fn check<const N: usize>(clusters: &[&[u8]]) {
        for cluster in clusters {
            let map: SnapMap<u8, u32, N, 4, 2, 2> = SnapMap::new();
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
                        let value = tx.get_mut(&key).ok_or(Error::Aborted)?;
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
