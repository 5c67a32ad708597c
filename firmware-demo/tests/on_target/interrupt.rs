//! A reader in an interrupt handler that preempts the writer at arbitrary points of its
//! publish (pin, claim, copy, CAS, retire): on one core, the way reads and writes interleave.

use core::sync::atomic::{AtomicBool, Ordering};
use firmware_demo::counter::SoloCounter;
use firmware_demo::{cs, tick};
#[cfg(feature = "board-rp2040")]
use rp2040_hal::pac::interrupt;
use snapmap_core::{Reader, SnapMap};

const KEYS: u8 = 16;
/// The timer interrupt's rate while the test runs (`firmware_demo::tick`: the core's SysTick,
/// or TIMER alarm 0 on the RP2040).
const TICK_HZ: u32 = 20_000;
/// The test needs at least this many interrupt reads and writes...
const MIN_TICKS: u32 = 500;
const MIN_WRITES: u32 = 1_000;
/// ...and gives up (fails) if the interrupts have not come after this many writes.
const MAX_WRITES: u32 = 200_000;

/// Every key holds `(stamp, stamp ^ key)`: one batch stamps all of them.
type Map = SnapMap<u8, (u32, u32), { KEYS as usize }, 4, 2>;
static MAP: Map = SnapMap::new();

/// The handler reads only while this is set.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Written only by the timer interrupt handler.
static TICKS: SoloCounter = SoloCounter::new();
static VIOLATIONS: SoloCounter = SoloCounter::new();
static CS_WHILE_READING: SoloCounter = SoloCounter::new();

fn batch(stamp: u32) {
    MAP.update(|tx| {
        for key in 0..KEYS {
            tx.insert(key, (stamp, stamp ^ u32::from(key)))?;
        }
        Ok(())
    })
    .unwrap();
}

/// The main thread publishes batches as fast as it can while the timer interrupt reads every
/// 50 us.
pub fn reader_in_interrupt_during_writes() {
    batch(0);
    ACTIVE.store(true, Ordering::Relaxed);
    tick::start(TICK_HZ).unwrap();
    let mut writes = 0;
    while writes < MIN_WRITES || TICKS.get() < MIN_TICKS {
        assert!(writes < MAX_WRITES, "the timer interrupt did not come");
        writes += 1;
        batch(writes);
    }
    tick::stop();
    ACTIVE.store(false, Ordering::Relaxed);
    let stats = MAP.stats();
    note!(
        "{} batches written, {} snapshots checked in the interrupt, {} violations, {} critical sections while reading, {} CAS retries",
        writes,
        TICKS.get(),
        VIOLATIONS.get(),
        CS_WHILE_READING.get(),
        stats.cas_retries
    );
    assert_eq!(
        VIOLATIONS.get(),
        0,
        "the interrupt saw a torn batch or a version going back"
    );
    assert_eq!(
        CS_WHILE_READING.get(),
        0,
        "reading in the interrupt took critical sections"
    );
    assert_eq!(
        MAP.snapshot().version(),
        u64::from(writes) + 1,
        "an update was lost"
    );
}

/// What the handler keeps between interrupts.
struct TickState {
    reader: Option<Reader<'static, u8, (u32, u32), { KEYS as usize }, 4, 2>>,
    last_version: u64,
}

impl TickState {
    const fn new() -> Self {
        Self {
            reader: None,
            last_version: 0,
        }
    }
}

#[cfg(not(feature = "board-rp2040"))]
#[cortex_m_rt::exception]
fn SysTick() {
    // Handler-local static: cortex-m-rt hands this handler `&mut` to it, exclusively.
    static mut STATE: TickState = TickState::new();
    on_tick(STATE);
}

#[cfg(feature = "board-rp2040")]
#[interrupt]
fn TIMER_IRQ_0() {
    // Handler-local static: cortex-m-rt hands this handler `&mut` to it, exclusively.
    static mut STATE: TickState = TickState::new();
    on_tick(STATE);
}

/// One checked snapshot per interrupt.
fn on_tick(state: &mut TickState) {
    tick::acknowledge();
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    if state.reader.is_none() {
        state.reader = MAP.reader().ok();
    }
    let Some(reader) = &mut state.reader else {
        VIOLATIONS.add(1);
        return;
    };
    let before = cs::taken_here();
    let consistent = {
        let snapshot = reader.snapshot();
        let stamp = snapshot.get(&0).map(|(stamp, _)| *stamp);
        let all_stamped = snapshot.len() == usize::from(KEYS)
            && snapshot
                .iter()
                .all(|(key, value)| Some(value.0) == stamp && value.1 == value.0 ^ u32::from(*key));
        let in_order = snapshot.version() >= state.last_version;
        state.last_version = snapshot.version();
        all_stamped && in_order
    };
    CS_WHILE_READING.add(cs::taken_here().wrapping_sub(before));
    TICKS.add(1);
    if !consistent {
        VIOLATIONS.add(1);
    }
}
