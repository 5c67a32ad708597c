//! Instructions (cycles) per operation on one core: a loop of [`ITERS`] operations, minus the
//! same loop with an empty body (the loop and the key selection), times the units per tick,
//! over [`ITERS`]. Each figure is measured [`REPEATS`] times: the repeats agree within the one
//! tick of phase (the xtask checks that, and that two runs print the same bytes).
//!
//! Core 1 is still held in reset here, so nothing else runs.

use crate::clock::{self, UNITS_PER_TICK};
use crate::maps::{self, write_key, Floor, FloorFull, BATCH, ENTRIES, KEYS, PEER, SNAP, SNAP_FULL};
use crate::out;
use core::hint::black_box;
use firmware_demo::cs;

/// Operations per loop: a multiple of 64, so every key is read equally often.
pub const ITERS: u32 = 1024;
/// Measurements of each figure.
const REPEATS: usize = 3;

/// SysTick ticks taken by `ITERS` calls of `op`.
#[inline(never)]
fn loop_ticks<F: FnMut(usize)>(mut op: F) -> u32 {
    let start = clock::now();
    for i in 0..ITERS as usize {
        op(black_box(i));
    }
    clock::ticks_between(start, clock::now())
}

/// Prints one figure: `OP id=.. instr=<per op> cs=<critical sections per op> ticks=.. empty=..`.
fn report(id: &str, ticks: [u32; REPEATS], empty: [u32; REPEATS], critical_sections: u32) {
    let net = u64::from(ticks[0].saturating_sub(empty[0])) * u64::from(UNITS_PER_TICK);
    // Per operation, in thousandths of an instruction.
    let milli = net * 1000 / u64::from(ITERS);
    out!(
        "OP id={} instr={}.{:03} cs={} iters={} ticks={},{},{} empty={},{},{}",
        id,
        milli / 1000,
        milli % 1000,
        critical_sections / ITERS,
        ITERS,
        ticks[0],
        ticks[1],
        ticks[2],
        empty[0],
        empty[1],
        empty[2]
    );
}

/// Measures `$op` (an expression of the loop index `$i`) against `$empty`, `REPEATS` times.
macro_rules! measure {
    ($id:expr, |$i:ident| empty: $empty:expr, op: $op:expr) => {{
        let mut ticks = [0; REPEATS];
        let mut empty = [0; REPEATS];
        let mut critical_sections = 0;
        // One loop untimed first, so that a cost the state before leaves to the first
        // operations (reusing the pages the fill retired, say) is not charged to one repeat
        // alone.
        loop_ticks(|$i| {
            let _ = black_box($op);
        });
        for r in 0..REPEATS {
            empty[r] = loop_ticks(|$i| {
                let _ = black_box($empty);
            });
            let before = cs::taken_here();
            ticks[r] = loop_ticks(|$i| {
                let _ = black_box($op);
            });
            critical_sections = cs::taken_here().wrapping_sub(before);
        }
        report($id, ticks, empty, critical_sections);
    }};
}

/// The key of read `i`.
#[inline(always)]
fn read_key(i: usize) -> &'static u32 {
    &KEYS[i % ENTRIES]
}

pub fn run() {
    let mut floor = Floor::new();
    let mut floor_full = FloorFull::new();
    maps::fill(&mut floor, &mut floor_full);

    // Plausibility: ten `nop`s must measure 10.000 instructions.
    measure!("calibration-10-nops", |i| empty: i, op: {
        // SAFETY: no-operation instructions.
        unsafe {
            core::arch::asm!(
                "nop", "nop", "nop", "nop", "nop", "nop", "nop", "nop", "nop", "nop",
                options(nomem, nostack, preserves_flags)
            )
        };
        i
    });

    // get (hit)
    measure!("get/floor", |i| empty: read_key(i), op: floor.get(black_box(read_key(i))).copied());
    measure!("get/floor-full", |i| empty: read_key(i),
        op: floor_full.get(black_box(read_key(i))).copied());
    measure!("get/mutex", |i| empty: read_key(i), op: maps::peer_get(black_box(read_key(i))));
    {
        let mut reader = SNAP.reader().expect("a free reader slot");
        measure!("get/snapmap-reader", |i| empty: read_key(i),
            op: reader.get(black_box(read_key(i))));
        let snapshot = reader.snapshot();
        measure!("get/snapmap-held", |i| empty: read_key(i),
            op: snapshot.get(black_box(read_key(i))).copied());
    }
    measure!("get/snapmap-oneoff", |i| empty: read_key(i), op: SNAP.get(black_box(read_key(i))));
    {
        let mut reader = SNAP_FULL.reader().expect("a free reader slot");
        measure!("get/snapmap-reader-full", |i| empty: read_key(i),
            op: reader.get(black_box(read_key(i))));
    }

    // insert (replacing an existing key's value: the table stays at 64 entries)
    measure!("insert/floor", |i| empty: write_key(i, 0),
        op: floor.insert(black_box(write_key(i, 0)), i as u32));
    measure!("insert/mutex", |i| empty: write_key(i, 0), op: critical_section::with(|cs| {
        PEER.borrow_ref_mut(cs).insert(black_box(write_key(i, 0)), i as u32)
    }));
    measure!("insert/snapmap", |i| empty: write_key(i, 0),
        op: SNAP.insert(black_box(write_key(i, 0)), i as u32));

    // What a snapmap write costs before its change: a transaction that changes nothing still
    // pins its base, claims a slot and copies the table, then gives the slot back unpublished.
    measure!("update-noop/snapmap", |i| empty: write_key(i, 0),
        op: SNAP.update(|_| Ok(black_box(i))));

    // batch of 8 inserts
    measure!("batch8/floor", |i| empty: {
        for j in 0..BATCH {
            black_box(write_key(i, j));
        }
    }, op: {
        for j in 0..BATCH {
            let _ = black_box(floor.insert(black_box(write_key(i, j)), i as u32));
        }
    });
    measure!("batch8/mutex", |i| empty: {
        for j in 0..BATCH {
            black_box(write_key(i, j));
        }
    }, op: maps::peer_batch(i, i as u32, || {}));
    measure!("batch8/snapmap", |i| empty: {
        for j in 0..BATCH {
            black_box(write_key(i, j));
        }
    }, op: maps::snap_batch(i, i as u32, || {}));

    // The same through the map's sole writer: no base pin, no compare-and-swap, no critical
    // section.
    {
        let mut writer = SNAP.writer().expect("no other writer");
        measure!("insert/snapmap-sole", |i| empty: write_key(i, 0),
            op: writer.insert(black_box(write_key(i, 0)), i as u32));
        measure!("update-noop/snapmap-sole", |i| empty: write_key(i, 0),
            op: writer.update(|_| Ok(black_box(i))));
        measure!("batch8/snapmap-sole", |i| empty: {
            for j in 0..BATCH {
                black_box(write_key(i, j));
            }
        }, op: maps::sole_batch(&mut writer, i, i as u32, || {}));
    }

    let stats = SNAP.stats();
    out!(
        "STATS at=one-core map=snapmap publishes={} cas_retries={} slot_waits={} page_waits={} page_copies={}",
        stats.publishes,
        stats.cas_retries,
        stats.slot_waits,
        stats.page_waits,
        stats.page_copies
    );
}
