//! Waiting for a change (`Reader::changed`) and writes that report their version
//! (`update_versioned`), under `std` threads.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use snapmap_core::SnapMap;

/// Wakes a parked thread, and remembers that it did.
struct Unpark {
    thread: thread::Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Polls `future` to completion on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&unpark));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        while !unpark.woken.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

/// Polls once with a waker that records whether it was woken.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> (Poll<F::Output>, Arc<Unpark>) {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&unpark));
    let poll = future.poll(&mut Context::from_waker(&waker));
    (poll, unpark)
}

#[test]
fn writes_report_the_version_they_published() {
    let map: SnapMap<u8, u32, 8> = SnapMap::new();
    assert_eq!(
        map.update_versioned(|tx| tx.insert(1, 1)),
        Ok((None, Some(1)))
    );
    assert_eq!(
        map.update_versioned(|tx| tx.insert(1, 2)),
        Ok((Some(1), Some(2)))
    );
    // Nothing changed: nothing published, no version.
    assert_eq!(
        map.update_versioned(|tx| Ok(tx.get(&1).copied())),
        Ok((Some(2), None))
    );
    assert_eq!(
        map.try_update_versioned(|tx| tx.insert(2, 5)),
        Ok((None, Some(3)))
    );
    assert_eq!(map.snapshot().version(), 3);
    // An error publishes nothing.
    let failed: Result<((), Option<u64>), _> =
        map.update_versioned(|_| Err(snapmap_core::Error::Aborted));
    assert_eq!(failed, Err(snapmap_core::Error::Aborted));
}

#[test]
fn changed_waits_for_a_newer_version_and_coalesces() {
    let map: SnapMap<u8, u32, 8> = SnapMap::new();
    let mut reader = map.reader().unwrap();
    {
        // Nothing was ever written: pending.
        let mut waiting = pin!(reader.changed());
        let (poll, unpark) = poll_once(waiting.as_mut());
        assert!(poll.is_pending());
        map.insert(1, 10).unwrap();
        assert!(
            unpark.woken.load(Ordering::Acquire),
            "the write woke the waiter"
        );
        let (poll, _) = poll_once(waiting.as_mut());
        let Poll::Ready(snapshot) = poll else {
            panic!("still pending after a write")
        };
        assert_eq!((snapshot.version(), snapshot.get(&1)), (1, Some(&10)));
    }
    assert_eq!(reader.seen(), 1);
    // Three writes, one wait: the latest version.
    for v in 11..14 {
        map.insert(1, v).unwrap();
    }
    let snapshot = block_on(reader.changed());
    assert_eq!((snapshot.version(), snapshot.get(&1)), (4, Some(&13)));
    drop(snapshot);
    // Nothing new since: pending again, and a write that changes nothing wakes nobody.
    let mut waiting = pin!(reader.changed());
    let (poll, unpark) = poll_once(waiting.as_mut());
    assert!(poll.is_pending());
    map.update(|tx| Ok(tx.get(&1).copied())).unwrap();
    assert!(!unpark.woken.load(Ordering::Acquire));
    map.insert(1, 14).unwrap();
    assert!(unpark.woken.load(Ordering::Acquire));
}

#[test]
fn a_dropped_wait_stops_waiting() {
    let map: SnapMap<u8, u32, 8, 4, 2> = SnapMap::new();
    let mut reader = map.reader().unwrap();
    let unpark = {
        let mut waiting = pin!(reader.changed());
        let (poll, unpark) = poll_once(waiting.as_mut());
        assert!(poll.is_pending());
        unpark
    };
    map.insert(1, 1).unwrap();
    assert!(
        !unpark.woken.load(Ordering::Acquire),
        "a cancelled wait was woken"
    );
    // The reader waits again, and is woken again.
    let other = map.reader().unwrap();
    drop(other);
    assert_eq!(block_on(reader.changed()).version(), 1);
}

/// A writer thread publishes flat out (with pauses now and then, so that readers do wait) while
/// two threads await every change: each sees versions only go up, and each ends having seen the
/// last one.
#[test]
fn waiters_on_other_threads_see_every_change_happen() {
    const WRITES: u32 = 20_000;
    let map: Arc<SnapMap<u32, u32, 16, 5, 2>> = Arc::new(SnapMap::new());
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let mut reader = map.reader().unwrap();
                let (mut wakeups, mut coalesced) = (0u64, 0u64);
                loop {
                    let last = reader.seen();
                    let snapshot = reader.changed().await_blocking();
                    let version = snapshot.version();
                    assert!(version > last, "version {version} after {last}");
                    wakeups += 1;
                    coalesced += version - last - 1;
                    if snapshot.get(&0) == Some(&WRITES) {
                        return (wakeups, coalesced, version);
                    }
                }
            })
        })
        .collect();
    let mut last = 0;
    for i in 1..=WRITES {
        let ((), version) = map
            .update_versioned(|tx| tx.insert(0, i).map(drop))
            .unwrap();
        let version = version.unwrap();
        assert!(version > last);
        last = version;
        if i % 1000 == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    for waiter in waiters {
        let (wakeups, coalesced, version) = waiter.join().unwrap();
        assert_eq!(version, last, "a waiter missed the last version");
        assert_eq!(wakeups + coalesced, last);
    }
}

trait BlockOn: Future + Sized {
    fn await_blocking(self) -> Self::Output {
        block_on(self)
    }
}
impl<F: Future> BlockOn for F {}
