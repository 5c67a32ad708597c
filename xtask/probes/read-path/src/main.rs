//! The read path, linked alone: a registered [`Reader`]'s get, and a held snapshot's lookup,
//! `contains_key`, iteration and drop. Nothing here provides `critical-section`'s
//! `_critical_section_1_0_acquire`, so if any of these reads takes a critical section the link
//! fails. `cargo xtask build-targets` links it for every thumb target, then links the `mutant`
//! feature, which must fail: on targets without compare-and-swap it adds a one-off
//! `SnapMap::get` (whose pin count is a critical section there), elsewhere
//! `critical_section::with` itself, since the library never needs one there.
#![no_std]
#![no_main]

use core::hint::black_box;

use snapmap_core::{Reader, SnapMap};

type MapReader = Reader<'static, u32, u32, 16, 4, 2>;

static MAP: SnapMap<u32, u32, 16, 4, 2> = SnapMap::new();

/// Every read the probe makes.
fn reads(reader: &mut MapReader, key: u32) -> u32 {
    let got = reader.get(&key).unwrap_or(0);
    let snapshot = reader.snapshot();
    let found = snapshot.get(&key).copied().unwrap_or(0) + u32::from(snapshot.contains_key(&!key));
    let sum = snapshot
        .iter()
        .fold(got ^ found, |acc, (k, v)| acc.wrapping_add(*k ^ *v));
    sum ^ snapshot.len() as u32 ^ snapshot.version() as u32
}

#[cfg(feature = "mutant")]
fn mutant(key: u32) -> u32 {
    #[cfg(not(target_has_atomic = "ptr"))]
    return MAP.get(&key).unwrap_or(0);
    #[cfg(target_has_atomic = "ptr")]
    critical_section::with(|_| key)
}

/// The entry point the linker looks for (the probe is linked, never run). Registering a reader
/// is a write (a compare-and-swap: a critical section on thumbv6m), so the reader is an
/// `Option` the optimizer cannot see into: the reads are compiled and linked all the same.
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut reader: Option<MapReader> = black_box(None);
    let _ = &MAP;
    loop {
        let key = black_box(7);
        #[cfg(feature = "mutant")]
        black_box(mutant(key));
        if let Some(reader) = reader.as_mut() {
            black_box(reads(reader, key));
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
