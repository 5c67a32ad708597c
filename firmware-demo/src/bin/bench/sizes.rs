//! `size_of` on the Cortex-M33 (32-bit, reader slots 32-byte aligned), at the host benchmark's
//! shapes (so the two tables compare), at this benchmark's, and at the demo's.

use crate::out;
use core::cell::RefCell;
use core::mem::size_of;
use critical_section::Mutex;
use heapless::index_map::FnvIndexMap;
use snapmap_core::SnapMap;

/// The host memory census's value type: a 12-byte struct.
type Value12 = [u32; 3];
/// The demo's entry: four `u32`s.
type Entry16 = [u32; 4];

/// One line per shape: `SnapMap` against `G` plain `FnvIndexMap`s of the same capacity. The
/// shape's label comes last (it has spaces).
macro_rules! census {
    ($label:expr, $g:expr, $snap:ty, $table:ty) => {
        out!(
            "SIZE snapmap={} table={} g={} shape={}",
            size_of::<$snap>(),
            size_of::<$table>(),
            $g,
            $label
        )
    };
}

pub fn report() {
    census!("u32->u32, N=128, G=4, R=2, P=8 (this benchmark)", 4,
        SnapMap<u32, u32, 128, 4, 2, 8>, FnvIndexMap<u32, u32, 128>);
    out!(
        "SIZE mutex={} shape=u32->u32, N=128 (this benchmark)",
        size_of::<Mutex<RefCell<FnvIndexMap<u32, u32, 128>>>>()
    );
    census!("u8->16 bytes, N=64, G=5, R=2, P=8 (the demo)", 5,
        SnapMap<u8, Entry16, 64, 5, 2, 8>, FnvIndexMap<u8, Entry16, 64>);
    census!("u8->16 bytes, N=64, G=5, R=2, P=4 (the demo's shape, one batch of spare pages)", 5,
        SnapMap<u8, Entry16, 64, 5, 2, 4>, FnvIndexMap<u8, Entry16, 64>);
    census!("u16->12 bytes, N=128, G=4, R=2, P=8", 4,
        SnapMap<u16, Value12, 128, 4, 2, 8>, FnvIndexMap<u16, Value12, 128>);
    census!("u64->u64, N=1024, G=4, R=2, P=8", 4,
        SnapMap<u64, u64, 1024, 4, 2, 8>, FnvIndexMap<u64, u64, 1024>);
    census!("u64->u64, N=2048, G=4, R=2, P=8 (the defaults)", 4,
        SnapMap<u64, u64, 2048, 4, 2, 8>, FnvIndexMap<u64, u64, 2048>);
    census!("u64->u64, N=2048, G=16, R=2, P=8", 16,
        SnapMap<u64, u64, 2048, 16, 2, 8>, FnvIndexMap<u64, u64, 2048>);
}
