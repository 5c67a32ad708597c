//! Entry points for `cargo xtask build-targets`'s read-path check on thumbv6m-none-eabi.
//!
//! Functions named `snapmap_probe_read_*` are the strictly lock-free read path: a registered
//! [`Reader`] taking snapshots, looking keys up, iterating, and dropping the snapshot. xtask
//! checks in the generated assembly that nothing reachable from them references the
//! `critical-section` implementation or an atomic libcall. Functions named
//! `snapmap_probe_write_*` are writer-side (and slot registration) and must reference
//! `critical-section`: that shows the check can see it at all.
#![no_std]

use snapmap_core::{Reader, SnapMap};

type Map = SnapMap<u32, u32, 16, 4, 2>;
type MapReader = Reader<'static, u32, u32, 16, 4, 2>;

static MAP: Map = SnapMap::new();

/// Read path: one-key lookup through a registered reader.
#[no_mangle]
pub fn snapmap_probe_read_get(reader: &mut MapReader, key: u32) -> Option<u32> {
    reader.get(&key)
}

/// Read path: a snapshot, its metadata, a lookup, an iteration, and its drop (unpin).
#[no_mangle]
pub fn snapmap_probe_read_snapshot(reader: &mut MapReader, key: u32) -> (u64, usize, u32) {
    let snapshot = reader.snapshot();
    let found = snapshot.get(&key).copied().unwrap_or(0) + u32::from(snapshot.contains_key(&!key));
    let sum = snapshot
        .iter()
        .fold(found, |acc, (k, v)| acc.wrapping_add(*k ^ *v));
    (snapshot.version(), snapshot.len(), sum)
}

/// Writer side: registering a reader claims a slot by compare-and-swap.
#[no_mangle]
pub fn snapmap_probe_write_register() -> Option<MapReader> {
    MAP.reader().ok()
}

/// Writer side: insert.
#[no_mangle]
pub fn snapmap_probe_write_insert(key: u32, value: u32) -> bool {
    MAP.insert(key, value).is_ok()
}

/// Writer side: a batch.
#[no_mangle]
pub fn snapmap_probe_write_update(key: u32) -> bool {
    MAP.update(|tx| {
        tx.insert(key, 1)?;
        tx.remove(&key.wrapping_add(1));
        Ok(())
    })
    .is_ok()
}

/// One-off read through a counted pin: counting (an increment and a decrement) takes a critical
/// section on thumbv6m (documented); reported, not checked.
#[no_mangle]
pub fn snapmap_probe_borrowed_get(key: u32) -> Option<u32> {
    MAP.get(&key)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
