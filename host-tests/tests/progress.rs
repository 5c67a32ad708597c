//! Progress between writers: a write that needs more time or more pages than another writer's
//! lands anyway, within a bounded number of attempts.
//!
//! A write whose attempt loses to another writer (a lost race, or pages that died after its scan)
//! starts over; after three such losses in a row it takes the map's turn, and the other writers
//! start no new attempt until it lands. So against one other writer it runs its change at most
//! five times: three losses, at most one more to the attempt the other had in flight, and the
//! one that lands.

use host_tests::Watchdog;
use snapmap_core::{Error, SnapMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// A `try_update` that changes two pages, while another thread makes 8 one-page writes (every
/// spare page of a default map) and finishes, inside the update's first attempt: every spare page
/// then died after that attempt's scan. The attempt runs out of pages, sees that a publication
/// came since its scan, and scans again: it lands on the second attempt. (It returned
/// `NoFreePage` before, with nothing held.)
#[test]
fn a_write_out_of_pages_after_a_publication_scans_again() {
    let _watchdog = Watchdog::new(
        "a_write_out_of_pages_after_a_publication_scans_again",
        LIMIT,
    );
    // 256 slots, 16 pages: keys 0..64 cover most of them.
    let map: SnapMap<u32, u32, 256> = SnapMap::new();
    for key in 0..64 {
        map.insert(key, 0).unwrap();
    }
    let first_run = AtomicBool::new(true);
    let runs = AtomicU32::new(0);
    let start = Barrier::new(2);
    let done = Barrier::new(2);
    let result = thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for key in 0..8 {
                map.insert(key * 8, 1).unwrap();
            }
            done.wait();
        });
        map.try_update(|tx| {
            runs.fetch_add(1, Ordering::Relaxed);
            if first_run.swap(false, Ordering::Relaxed) {
                start.wait();
                done.wait();
            }
            // Two keys far apart: two pages.
            tx.insert(1, 2)?;
            tx.insert(60, 2)?;
            Ok(())
        })
    });
    assert_eq!(result, Ok(()));
    assert_eq!(runs.load(Ordering::Relaxed), 2, "{:?}", map.stats());
    assert_eq!((map.get(&1), map.get(&60)), (Some(2), Some(2)));
}

/// A blocking `update` whose closure takes 1 ms, against a thread inserting flat out: each
/// update lands within five runs of its closure (it never did, on two dedicated cores, before
/// writers took turns). So that the inserter really does publish inside each run on a loaded
/// machine too, a run lasts until it has (or 5 ms, which is what it takes while the update has
/// the turn and the inserter waits). Reports the worst count.
#[test]
fn a_slow_write_lands_against_a_flat_out_writer() {
    let _watchdog = Watchdog::new("a_slow_write_lands_against_a_flat_out_writer", LIMIT);
    let map: SnapMap<u32, u32, 256> = SnapMap::new();
    let stop = AtomicBool::new(false);
    let inserted = AtomicU32::new(0);
    let mut worst = 0;
    thread::scope(|s| {
        let inserter = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                map.insert(n % 128, n).unwrap();
                inserted.fetch_add(1, Ordering::Relaxed);
                n = n.wrapping_add(1);
            }
        });
        while inserted.load(Ordering::Relaxed) < 1000 {
            thread::yield_now();
        }
        for round in 0..20u32 {
            let mut runs = 0;
            map.update(|tx| {
                runs += 1;
                let (started, before) = (Instant::now(), inserted.load(Ordering::Relaxed));
                while started.elapsed() < Duration::from_millis(1)
                    || (inserted.load(Ordering::Relaxed) == before
                        && started.elapsed() < Duration::from_millis(5))
                {
                    std::hint::spin_loop();
                }
                tx.insert(1000 + round, round)?;
                tx.insert(2000 + round, round)?;
                Ok(())
            })
            .unwrap();
            worst = worst.max(runs);
        }
        stop.store(true, Ordering::Relaxed);
        inserter.join().unwrap();
    });
    println!(
        "a 1 ms update against a flat-out inserter ({} inserts): worst {worst} runs; {:?}",
        inserted.load(Ordering::Relaxed),
        map.stats()
    );
    assert!(worst <= 5, "an update ran its closure {worst} times");
    for round in 0..20 {
        assert_eq!(map.get(&(1000 + round)), Some(round));
    }
}

/// The turn, step by step: inside each run of an update's closure another thread makes one
/// `try_insert` and waits for its result. The first three win their race, so the update runs
/// again; after its third loss the update takes the turn, the fourth `try_insert` returns
/// `Contended` instead of publishing, and the update lands on its fourth run. (Without turns it
/// would lose every time: it gives up after 50 runs here.)
#[test]
fn after_three_losses_a_write_takes_the_turn() {
    let _watchdog = Watchdog::new("after_three_losses_a_write_takes_the_turn", LIMIT);
    let map: SnapMap<u32, u32, 64> = SnapMap::new();
    let (go, went) = (Barrier::new(2), Barrier::new(2));
    let stop = AtomicBool::new(false);
    let mut outcomes = Vec::new();
    let mut runs = 0;
    let result = thread::scope(|s| {
        let other = s.spawn(|| {
            let mut outcomes = Vec::new();
            loop {
                go.wait();
                if stop.load(Ordering::Relaxed) {
                    return outcomes;
                }
                outcomes.push(map.try_insert(7, outcomes.len() as u32).map(drop));
                went.wait();
            }
        });
        let result = map.update(|tx| {
            runs += 1;
            if runs > 50 {
                return Err(Error::Aborted);
            }
            go.wait();
            went.wait();
            tx.insert(1, 1)?;
            Ok(())
        });
        stop.store(true, Ordering::Relaxed);
        go.wait();
        outcomes = other.join().unwrap();
        result
    });
    assert_eq!(result, Ok(()), "{runs} runs");
    assert_eq!(
        outcomes,
        [Ok(()), Ok(()), Ok(()), Err(Error::Contended)],
        "the other thread's writes, one per run"
    );
    assert_eq!(runs, 4);
    // The turn was given back: the other thread's writes go through again.
    assert_eq!(map.try_insert(7, 9), Ok(Some(2)));
}
