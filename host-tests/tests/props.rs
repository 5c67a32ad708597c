//! Property tests of `snapmap-core`: random operation sequences against a `BTreeMap` oracle,
//! single-threaded, plus targeted tests of the error and panic paths.
//!
//! Keys and values are [`Tracked`], so every case also checks that every key and value the map
//! was given or copied was dropped exactly once, and that nothing read through a snapshot had
//! been dropped. The model predicts slot exhaustion exactly (a single thread holding snapshots
//! and `Reader`s): blocking forms are only called when they cannot wait, and otherwise the
//! `try_` forms must return the predicted `NoReaderSlot` / `NoFreeGeneration`.

use host_tests::{
    drop_counts, panic_on_clone_after, panic_on_drop_after, silence_injected_panics, tracking_lock,
    Tracked, Watchdog, INJECTED_PANIC,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use snapmap_core::{Error, Reader, SnapMap, Snapshot, Stats, Txn};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

type K = Tracked<u8>;
type V = Tracked<u32>;
type Oracle = BTreeMap<u8, u32>;

/// Keys are drawn from `0..KEYS`, more than the capacity of the small maps, so inserts hit Full.
const KEYS: u8 = 12;
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
    for key in 0..=KEYS {
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
    /// Insert; on `Full`, `propagate` returns the error from the closure (failing the update),
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
    UnpinReader(usize),
    ReaderRead {
        reader: usize,
        key: u8,
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
        4 => (0..KEYS, 0..60u32, any::<bool>()).prop_map(|(key, value, p)| TxOp::Insert(key, value, p)),
        2 => (0..KEYS).prop_map(TxOp::Remove),
        2 => (0..KEYS, 0..3u32).prop_map(|(key, add)| TxOp::AddMut(key, add)),
        1 => (2..5u32).prop_map(TxOp::Retain),
        1 => Just(TxOp::Clear),
        2 => (0..KEYS).prop_map(TxOp::Get),
    ]
}

fn plain_op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
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
        1 => any::<usize>().prop_map(Op::UnpinReader),
        2 => (any::<usize>(), key).prop_map(|(reader, key)| Op::ReaderRead { reader, key }),
    ]
}

/// The operations a drop bomb goes off in: writes whose published effect the model can tell
/// from the version alone (see `Op::DropBomb` in `exec`), and a read.
fn drop_bomb_op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        3 => (key.clone(), 0..60u32, any::<bool>()).prop_map(|(key, value, try_)| Op::Insert { key, value, try_ }),
        2 => (key.clone(), any::<bool>()).prop_map(|(key, try_)| Op::Remove { key, try_ }),
        1 => (key, any::<bool>()).prop_map(|(key, try_)| Op::Get { key, try_ }),
        1 => Just(Op::Clear),
        3 => (prop::collection::vec(tx_op(), 0..8), prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(ops, abort, try_)| Op::Update { ops, abort, try_ }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        24 => plain_op(),
        1 => (0..30u64, plain_op()).prop_map(|(after, op)| Op::CloneBomb { after, op: Box::new(op) }),
        1 => (0..24u64, drop_bomb_op()).prop_map(|(after, op)| Op::DropBomb { after, op: Box::new(op) }),
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

/// Applies one transaction op to a `Txn` without checking anything (for panicking closures).
/// Counts an operation's outcome: `Ok`, or which error.
fn hit_result<T>(what: &'static str, result: &Result<T, Error>) {
    hit(match (what, result) {
        (_, Ok(_)) => "ok",
        ("insert", Err(Error::Full)) => "insert: Full",
        ("get_or_insert", Err(Error::Full)) => "get_or_insert: Full",
        ("update", Err(Error::Full)) => "update: Full",
        ("update", Err(Error::Aborted)) => "update: Aborted",
        ("update", Err(Error::NoFreeGeneration)) => "update: NoFreeGeneration",
        (_, Err(Error::NoFreeGeneration)) => "write: NoFreeGeneration",
        (_, Err(_)) => "other error",
    });
}

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

/// A registered reader, and the version its pin keeps from reuse between reads (the version
/// it read last, until it is unpinned).
struct Registered<'m, const N: usize, const G: usize, const R: usize, const L: usize> {
    reader: Reader<'m, K, V, N, G, R, L>,
    pinned: Option<u64>,
}

/// The map under test with everything needed to predict it: the oracle's contents, the version
/// (bumped exactly when a write changed something), and the snapshots and readers held.
struct Harness<'m, const N: usize, const G: usize, const R: usize, const L: usize> {
    map: &'m SnapMap<K, V, N, G, R, L>,
    oracle: Oracle,
    version: u64,
    /// The counters after the previous step, to tell which kind of copy each write made.
    stats: Stats,
    held: Vec<Held<'m, N>>,
    readers: Vec<Registered<'m, N, G, R, L>>,
}

impl<'m, const N: usize, const G: usize, const R: usize, const L: usize> Harness<'m, N, G, R, L> {
    fn new(map: &'m SnapMap<K, V, N, G, R, L>) -> Self {
        Self {
            map,
            oracle: Oracle::new(),
            version: 0,
            stats: Stats::default(),
            held: Vec::new(),
            readers: Vec::new(),
        }
    }

    /// A reader slot is free: each registered reader owns one (one-off snapshots take none).
    fn free_reader(&self) -> bool {
        self.readers.len() < R
    }

    /// A generation slot is free: the busy ones are the current one and each distinct one pinned
    /// (by a held snapshot, or by a registered reader since its last read).
    fn free_generation(&self) -> bool {
        let busy: BTreeSet<u64> = self
            .held
            .iter()
            .map(|h| h.version)
            .chain(self.readers.iter().filter_map(|r| r.pinned))
            .chain([self.version])
            .collect();
        busy.len() < G
    }

    /// What a write would wait for (the `try_` form's error): a generation slot (its base pin is
    /// counted on the current generation, which takes none). Even a write that changes nothing
    /// needs one.
    fn write_block(&self) -> Option<Error> {
        (!self.free_generation()).then_some(Error::NoFreeGeneration)
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
                let blocked = self.write_block();
                let use_try = try_ || blocked.is_some();
                let got = if use_try {
                    map.try_insert(k(key), v(value))
                } else {
                    map.insert(k(key), v(value))
                };
                let got = got.map(|old| old.map(|o| o.value()));
                let expected = match blocked {
                    Some(e) => Err(e),
                    None => self.model_insert(key, value),
                };
                hit_result("insert", &expected);
                ensure!(
                    got == expected,
                    "insert({key}, {value}) try={use_try}: got {got:?}, expected {expected:?}"
                );
            }
            &Op::Remove { key, try_ } => {
                let blocked = self.write_block();
                let use_try = try_ || blocked.is_some();
                let got = if use_try {
                    map.try_remove(&key)
                } else {
                    map.remove(&key)
                };
                let got = got.map(|old| old.map(|o| o.value()));
                let expected = match blocked {
                    Some(e) => Err(e),
                    None => Ok(self.model_remove(key)),
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
                // Reads first, and writes (needing a generation) only if absent.
                if !self.oracle.contains_key(&key) && !self.free_generation() {
                    hit("get_or_insert skipped: would wait");
                    return Ok(());
                }
                let got = map
                    .get_or_insert(k(key), v(value))
                    .map(|(x, loaded)| (x.value(), loaded));
                let expected = match self.oracle.get(&key) {
                    Some(&existing) => {
                        hit("get_or_insert: present");
                        Ok((existing, true))
                    }
                    None => self.model_insert(key, value).map(|_| (value, false)),
                };
                hit_result("get_or_insert", &expected);
                ensure!(
                    got == expected,
                    "get_or_insert({key}, {value}): got {got:?}, expected {expected:?}"
                );
            }
            &Op::CompareExchange { key, expect, new } => {
                if self.write_block().is_some() {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let current = expect.unwrap_or_else(|| self.oracle.get(&key).copied().unwrap_or(0));
                let got = map.compare_exchange(&key, &v(current), v(new));
                let expected = if self.oracle.get(&key) == Some(&current) {
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
                if self.write_block().is_some() {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let got = map
                    .remove_if(&key, |x| x.value() % modulus == 0)
                    .map(|o| o.map(|x| x.value()));
                let expected = match self.oracle.get(&key) {
                    Some(&x) if x % modulus == 0 => Ok(self.model_remove(key)),
                    _ => Ok(None),
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
                if self.write_block().is_some() {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let got = map.clear();
                ensure!(got == Ok(()), "clear: {got:?}");
                if !self.oracle.is_empty() {
                    self.oracle.clear();
                    self.version += 1;
                }
            }
            Op::Update { ops, abort, try_ } => return self.exec_update(ops, *abort, *try_),
            &Op::PanicInUpdate { ref ops, try_ } => {
                if self.write_block().is_some() {
                    hit("write skipped: would wait");
                    return Ok(());
                }
                let change = |tx: &mut Txn<'_, K, V, N>| -> Result<(), Error> {
                    for op in ops {
                        apply_blind(tx, op);
                    }
                    panic!("{INJECTED_PANIC} (update closure)");
                };
                let result = catch_unwind(AssertUnwindSafe(|| {
                    if try_ {
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
                        self.readers.push(Registered {
                            reader,
                            pinned: None,
                        });
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
            &Op::UnpinReader(i) => {
                if !self.readers.is_empty() {
                    let i = i % self.readers.len();
                    let registered = &mut self.readers[i];
                    registered.reader.unpin();
                    if registered.pinned.take().is_some() {
                        hit("reader unpinned");
                    }
                }
            }
            &Op::ReaderRead { reader, key } => {
                if self.readers.is_empty() {
                    return Ok(());
                }
                let i = reader % self.readers.len();
                let registered = &mut self.readers[i];
                if registered.pinned == Some(self.version) {
                    hit("reader read a generation it still pinned");
                }
                registered.pinned = Some(self.version);
                let reader = &mut registered.reader;
                check_view(&reader.snapshot(), &self.oracle, self.version)
                    .map_err(|e| format!("reader snapshot: {e}"))?;
                let got = reader.get(&key).map(|x| x.value());
                ensure!(
                    got == self.oracle.get(&key).copied(),
                    "reader.get({key}) = {got:?}"
                );
                hit("read through a registered Reader");
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
                // before the publishing CAS (in the catch-up, in a `Txn`, of a rejected key)
                // published nothing; only an insert or a remove drops something after it (the
                // key and value it was given, the value it returned), and then its change stands.
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
        let blocked = self.write_block();
        let use_try = try_ || blocked.is_some();
        let oracle = &self.oracle;
        let mut runs = 0;
        let mut mismatches: Vec<String> = Vec::new();
        // (working copy, changed, returned Full early)
        let mut outcome: Option<(Oracle, bool, bool)> = None;
        let change = |tx: &mut Txn<'_, K, V, N>| -> Result<usize, Error> {
            runs += 1;
            let mut work = oracle.clone();
            let mut changed = false;
            let (start, _) = contents(tx.iter());
            if start != work {
                mismatches.push(format!("txn starts from {start:?}, not {work:?}"));
            }
            for op in ops {
                match *op {
                    TxOp::Insert(key, value, propagate) => {
                        let expected = if !work.contains_key(&key) && work.len() == N {
                            Err(Error::Full)
                        } else {
                            changed = true;
                            Ok(work.insert(key, value))
                        };
                        let got = tx
                            .insert(k(key), v(value))
                            .map(|old| old.map(|o| o.value()));
                        if got != expected {
                            mismatches.push(format!(
                                "tx.insert({key}, {value}): {got:?}, expected {expected:?}"
                            ));
                        }
                        if propagate && got.is_err() {
                            outcome = Some((work, changed, true));
                            return Err(Error::Full);
                        }
                    }
                    TxOp::Remove(key) => {
                        let expected = work.remove(&key);
                        changed |= expected.is_some();
                        let got = tx.remove(&key).map(|o| o.value());
                        if got != expected {
                            mismatches
                                .push(format!("tx.remove({key}): {got:?}, expected {expected:?}"));
                        }
                    }
                    TxOp::AddMut(key, add) => {
                        let expected = work.get_mut(&key).map(|x| {
                            *x += add;
                            *x
                        });
                        changed |= expected.is_some();
                        let got = tx.get_mut(&key).map(|x| {
                            *x = v(x.value() + add);
                            x.value()
                        });
                        if got != expected {
                            mismatches.push(format!(
                                "tx.get_mut({key}) += {add}: {got:?}, expected {expected:?}"
                            ));
                        }
                    }
                    TxOp::Retain(m) => {
                        let before = work.clone();
                        work.retain(|_, x| *x % m != 0);
                        changed |= work.len() != before.len();
                        // Each entry meets the predicate once (a stateful one must be able to
                        // count on it).
                        let mut met = BTreeMap::new();
                        tx.retain(|key, x| {
                            *met.entry(key.value()).or_insert(0) += 1;
                            x.value() % m != 0
                        });
                        if !met.keys().eq(before.keys()) || met.values().any(|&n| n != 1) {
                            mismatches.push(format!("tx.retain met {met:?}, for {before:?}"));
                        }
                    }
                    TxOp::Clear => {
                        changed |= !work.is_empty();
                        work.clear();
                        tx.clear();
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
                let (now, count) = contents(tx.iter());
                if now != work
                    || count != tx.len()
                    || tx.len() != work.len()
                    || tx.is_empty() != work.is_empty()
                {
                    mismatches.push(format!(
                        "after {op:?}: txn {now:?} (len {}), expected {work:?}",
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
        if let Some(e) = blocked {
            ensure!(
                got == Err(e) && runs == 0,
                "update blocked by {e:?}: got {got:?} after {runs} runs"
            );
            return Ok(());
        }
        ensure!(
            runs == 1,
            "single-threaded update ran its closure {runs} times"
        );
        let (work, changed, full) = outcome.expect("the closure ran");
        let expected = if full {
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
    /// when it was taken, the counters, and reader-slot exhaustion exactly when predicted.
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
            stats.cas_retries == 0 && stats.slot_waits == 0,
            "single-threaded, yet {stats:?}"
        );
        // A write that reached its copy (published or not) copied the whole table or patched it.
        match stats.full_copies - self.stats.full_copies {
            0 if stats.publishes > self.stats.publishes => hit("write patched its copy"),
            0 => {}
            1 => hit("write copied the whole table"),
            n => return Err(format!("one step made {n} whole-table copies")),
        }
        self.stats = stats;
        // Without logs only the first write patches: its copy and its base are both the empty
        // version 0, with nothing to copy.
        if L == 0 {
            ensure!(
                stats.full_copies + 1 >= stats.publishes,
                "L = 0, yet a write patched its copy: {stats:?}"
            );
        }
        check_view(&self.map.snapshot(), &self.oracle, self.version)
            .map_err(|e| format!("current: {e}"))?;
        Ok(())
    }
}

/// With nothing held: all `R` reader slots can be registered (and then no more), and registered
/// readers, idle or pinning, never stop a write; all `G` generation slots are usable: pin one
/// generation after another with one-off snapshots while writing, and the write that needs a slot
/// beyond them fails with `NoFreeGeneration` exactly when they are all busy. A slot leaked by an
/// earlier error or panic makes this fail. `key()` must be one key.
fn probe_slots_with<KK, VV, const N: usize, const G: usize, const R: usize, const L: usize>(
    map: &SnapMap<KK, VV, N, G, R, L>,
    key: impl Fn() -> KK,
    value: impl Fn(u32) -> VV,
) -> Result<(), String>
where
    KK: Hash + Eq + Clone,
    VV: Clone,
{
    ensure!(map.clear() == Ok(()), "clear");
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
    // Every registered reader pins a different generation, and then idles: writes still go.
    for (i, reader) in readers.iter_mut().enumerate() {
        drop(reader.snapshot());
        let r = map.try_insert(key(), value(i as u32)).map(drop);
        ensure!(r.is_ok(), "write {i} with {} idle readers: {r:?}", i + 1);
    }
    ensure!(
        map.get(&key()).is_some(),
        "a one-off read with every reader slot registered"
    );
    drop(readers);

    ensure!(map.clear() == Ok(()), "clear");
    // Pin G - 1 generations, writing after each pin: then the current one makes G busy.
    let pins = G - 1;
    let mut held = Vec::new();
    for i in 0..pins {
        held.push(map.snapshot());
        let r = map.try_insert(key(), value(i as u32)).map(drop);
        ensure!(
            r.is_ok(),
            "write {i} with {} generations pinned of {G}: {r:?}",
            i + 1
        );
    }
    let versions: BTreeSet<u64> = held.iter().map(|s| s.version()).collect();
    ensure!(
        versions.len() == pins,
        "held snapshots share generations: {versions:?}"
    );
    let last = map.try_insert(key(), value(999)).map(drop);
    ensure!(
        last == Err(Error::NoFreeGeneration),
        "all {G} generations busy, yet try_insert gave {last:?}"
    );
    drop(held);
    ensure!(
        map.try_insert(key(), value(1000)).is_ok(),
        "try_insert after releasing the pins"
    );
    Ok(())
}

fn probe_slots<const N: usize, const G: usize, const R: usize, const L: usize>(
    map: &SnapMap<K, V, N, G, R, L>,
) -> Result<(), String> {
    probe_slots_with(map, || k(0), v)
}

/// Runs one random case: every op against the model, a full check after each, then the slot
/// probe, then drop accounting.
fn run_case<const N: usize, const G: usize, const R: usize, const L: usize>(
    ops: &[Op],
) -> Result<(), TestCaseError> {
    silence_injected_panics();
    let _serial = tracking_lock();
    let before = drop_counts();
    {
        let map: SnapMap<K, V, N, G, R, L> = SnapMap::new();
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

/// Runs `cases` random cases on a map of `N` entries, `G` generation slots and `R` reader slots,
/// then checks that the outcomes in `must_hit` each happened at least once (a random test that
/// never reached an error path tested nothing there) and those in `must_not_hit` never did.
fn run_random<const N: usize, const G: usize, const R: usize, const L: usize>(
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
        run_case::<N, G, R, L>(&ops)
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
    "reader read a generation it still pinned",
    "reader unpinned",
    "more snapshots held than reader slots",
    "reader(): NoReaderSlot",
    "write copied the whole table",
];

/// Default slots (G = 4, R = 2, L = 32), N = 8: a full map, and exhaustion of both kinds of
/// slot.
#[test]
fn random_ops_match_oracle_n8_g4_r2() {
    let must: Vec<&str> = COMMON
        .iter()
        .copied()
        .chain([
            "insert: Full",
            "update: Full",
            "write: NoFreeGeneration",
            "write patched its copy",
        ])
        .collect();
    run_random::<8, 4, 2, 32>("random_ops_match_oracle_n8_g4_r2", 1_000, &must, &[]);
}

/// No change logs (L = 0): every write copies the whole table.
#[test]
fn random_ops_match_oracle_n8_g4_r2_l0() {
    run_random::<8, 4, 2, 0>("random_ops_match_oracle_n8_g4_r2_l0", 300, COMMON, &[]);
}

/// The smallest map with a registered reader (G = 3, R = 1), N = 4, with a 2-change log that
/// transactions overflow: two held snapshots of old versions block every write.
#[test]
fn random_ops_match_oracle_n4_g3_r1() {
    let must: Vec<&str> = COMMON
        .iter()
        .copied()
        .chain([
            "insert: Full",
            "get_or_insert: Full",
            "write: NoFreeGeneration",
            "update: NoFreeGeneration",
            "write patched its copy",
        ])
        .collect();
    run_random::<4, 3, 1, 2>("random_ops_match_oracle_n4_g3_r1", 1_000, &must, &[]);
}

/// G = 6, R = 3: 16 entries never fill up with 12 keys. With a 5-change log, held snapshots send
/// writers to slots several versions old.
#[test]
fn random_ops_match_oracle_n16_g6_r3() {
    let must: Vec<&str> = COMMON
        .iter()
        .copied()
        .chain(["write patched its copy"])
        .collect();
    run_random::<16, 6, 3, 5>(
        "random_ops_match_oracle_n16_g6_r3",
        1_000,
        &must,
        &["insert: Full", "update: Full"],
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

/// Runs `test` with the tracking lock held and checks drop accounting afterwards.
fn with_drop_accounting(name: &str, test: impl FnOnce()) {
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

        // Registered readers own the reader slots, and then there are no more; with both idle
        // on other generations, writers still have room (G >= R + 2).
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
        let held = map.snapshot();
        let mut fired = 0;
        // Every clone position of each operation: in the table copy (5 keys and 5 values),
        // in the closure's clones of the new key and value, in the clone of a read.
        for after in 0..14u64 {
            for op in 0..6 {
                let version = map.snapshot().version();
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
        assert_eq!(snapshot_contents(&held), before);
        drop(held);
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
            let held = map.snapshot();
            let mut fired = 0;
            for after in 0..8u32 {
                for op in 0..8 {
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
            let held_contents: Oracle = held
                .iter()
                .map(|(key, value)| (key.0, value.value()))
                .collect();
            assert_eq!(held_contents, before);
            drop(held);
            probe_slots_with(&map, || TouchyKey(0), v).unwrap();
        },
    );
}

// =============================================================================================
// Panicking `Drop`s and half-done copies (issue 9, items 1-3)
// =============================================================================================

/// A `Drop` that panics inside a write (where its catch-up overwrites old entries, or in
/// `clear`) publishes nothing, and the copy it abandons must not poison the writes that later
/// patch from it. Every drop position of a `clear` on a map of five keys, then unrelated writes
/// that cycle through every generation slot, each checked against the oracle. (It used to drop
/// an entry before its slot was on the change log and counted out of `len`: later writes
/// published generations without key 2, or `len` 5 with 4 entries.)
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

/// A `Clone` that panics halfway through a whole-table copy (`L = 0`) leaves that copy with some
/// slots copied and the rest as they were: it must still count and drop each entry exactly
/// once. (The map's drop used to underflow the copy's `len` in debug builds.)
#[test]
fn panic_in_clone_during_a_whole_copy_then_drop_drops_everything_once() {
    with_drop_accounting(
        "panic_in_clone_during_a_whole_copy_then_drop_drops_everything_once",
        || {
            let mut fired = 0;
            for after in 0..14u64 {
                let before = drop_counts();
                let map: SnapMap<K, V, 8, 4, 2, 0> = SnapMap::new();
                for i in 0..6u8 {
                    map.insert(k(i), v(u32::from(i))).unwrap();
                }
                let contents = snapshot_contents(&map.snapshot());
                let bomb = panic_on_clone_after(after);
                let result = catch_unwind(AssertUnwindSafe(|| map.insert(k(7), v(7))));
                if bomb.fired() {
                    fired += 1;
                    assert!(
                        result.is_err(),
                        "after {after}: the panic did not propagate"
                    );
                    assert_eq!(snapshot_contents(&map.snapshot()), contents);
                }
                drop(bomb);
                drop(map);
                drop_counts().assert_balanced_since(&before, &format!("clone {after} panicked"));
            }
            assert!(fired >= 12, "only {fired} clone panics fired");
        },
    );
}

/// A `Drop` that panics while the map itself drops must not leak the rest of that generation's
/// table: at every drop position, every key and value is dropped exactly once. (G = 2 and eight
/// keys: 30 live keys and values in two tables; a panic used to leave the rest of its table.)
#[test]
fn panic_in_drop_while_the_map_drops_drops_everything_once() {
    with_drop_accounting(
        "panic_in_drop_while_the_map_drops_drops_everything_once",
        || {
            for after in 0..30u64 {
                let before = drop_counts();
                let map: SnapMap<K, V, 8, 2, 0> = SnapMap::new();
                for i in 0..8u8 {
                    map.insert(k(i), v(u32::from(i))).unwrap();
                }
                assert_eq!(drop_counts().live_since(&before), 30);
                let bomb = panic_on_drop_after(after);
                let result = catch_unwind(AssertUnwindSafe(move || drop(map)));
                assert!(
                    bomb.fired() && result.is_err(),
                    "drop {after} of 30 did not panic"
                );
                drop(bomb);
                drop_counts().assert_balanced_since(&before, &format!("drop {after} panicked"));
            }
        },
    );
}
