//! Bringing up CPU1 of the SSE-200.
//!
//! CPU1 leaves reset when CPU0 clears bit 1 of CPUWAIT; it then loads its stack pointer and reset
//! vector from INITSVTOR1. cortex-m-rt's reset handler must not run twice (it initializes
//! `.data` and `.bss`), so CPU1 gets a vector table of its own in RAM: CPU0's table, copied at
//! run time, with CPU1's stack and a reset stub of its own in the first two words. The stub
//! enables the FPU (cortex-m-rt does that only on the CPU it starts) before any Rust code runs.

use super::reg;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};
use cortex_m::peripheral::SCB;

/// Entries of CPU1's vector table: the 16 system exceptions and the first 16 interrupts (CPU1
/// enables no interrupt; the table only has to cover what could be raised).
const VECTORS: usize = 32;
/// CPU1's stack, in bytes.
const STACK_SIZE: usize = 16 * 1024;

/// CPU1's vector table. VTOR needs the table aligned to its size rounded up to a power of two
/// (32 words: 128 bytes).
#[repr(C, align(128))]
struct VectorTable(UnsafeCell<[usize; VECTORS]>);

/// CPU1's stack (8-byte aligned, as the AAPCS wants at public interfaces).
#[repr(C, align(8))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: the table is written once, by CPU0 in `release` before CPU1 is started (and `release`
// runs at most once, see `Board::start_core1`); afterwards only CPU1's exception entry reads it.
unsafe impl Sync for VectorTable {}
// SAFETY: only CPU1 touches its stack, through its stack pointer; Rust never references it.
unsafe impl Sync for Stack {}

static CORE1_VECTORS: VectorTable = VectorTable(UnsafeCell::new([0; VECTORS]));
static CORE1_STACK: Stack = Stack(UnsafeCell::new([0; STACK_SIZE]));
/// The `fn() -> !` CPU1 runs, handed over by `release`.
static CORE1_ENTRY: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

// CPU1's reset vector: SP already holds the top of CPU1's stack (vector 0). Enable CP10/CP11
// (the FPU) in CPACR, then wait for the write to take effect, before the first Rust code, which
// may use floating-point registers anywhere (the target is hard-float).
core::arch::global_asm!(
    ".section .text.snapmap_core1_reset,\"ax\",%progbits",
    ".global snapmap_core1_reset",
    ".type snapmap_core1_reset,%function",
    ".thumb_func",
    "snapmap_core1_reset:",
    "    movw r0, #0xED88", // CPACR = 0xE000_ED88
    "    movt r0, #0xE000",
    "    ldr r1, [r0]",
    "    orr r1, r1, #0x00F00000", // CP10, CP11: full access
    "    str r1, [r0]",
    "    dsb",
    "    isb",
    "    bl {main}",
    "    udf #0",
    ".size snapmap_core1_reset, . - snapmap_core1_reset",
    main = sym core1_main,
);

extern "C" {
    /// The reset stub above (never called from Rust: its address goes in the vector table).
    fn snapmap_core1_reset();
}

/// CPU1's first Rust code: runs the entry handed over by `release`.
extern "C" fn core1_main() -> ! {
    // Acquire: pairs with the Release store in `release`, so everything CPU0 wrote before it
    // (the statics `entry` will use) is visible here.
    let entry = CORE1_ENTRY.load(Ordering::Acquire);
    if entry.is_null() {
        // Only a release by something other than `release` could get here.
        super::exit(false);
    }
    // SAFETY: the only non-null value ever stored is a `fn() -> !` (see `release`).
    let entry = unsafe { core::mem::transmute::<*mut (), fn() -> !>(entry) };
    entry()
}

/// Builds CPU1's vector table and lets CPU1 run `entry`. Runs at most once, on CPU0.
pub(super) fn release(entry: fn() -> !) {
    let table = CORE1_VECTORS.0.get();
    // SAFETY: CPU1 has not been started, so CPU0 is the only user of the table (see the Sync
    // impl). VTOR holds the address of CPU0's table, which cortex-m-rt made at least VECTORS
    // words long (16 exceptions and 240 interrupts); reading it has no side effect.
    unsafe {
        let core0_table = (*SCB::PTR).vtor.read() as *const usize;
        for i in 2..VECTORS {
            (*table)[i] = ptr::read_volatile(core0_table.add(i));
        }
        (*table)[0] = CORE1_STACK.0.get() as usize + STACK_SIZE;
        (*table)[1] = snapmap_core1_reset as *const () as usize;
    }
    // Release: the table and everything else written so far happen-before CPU1's Acquire load.
    CORE1_ENTRY.store(entry as *mut (), Ordering::Release);
    // The table must have reached memory before CPU1 fetches its vectors from it.
    cortex_m::asm::dsb();
    // SAFETY: INITSVTOR1 takes CPU1's Secure vector table address (128-byte aligned, checked
    // by the type); clearing CPUWAIT bit 1 releases CPU1, which nothing else does.
    unsafe {
        ptr::write_volatile(reg::INITSVTOR1, table as usize as u32);
        let wait = ptr::read_volatile(reg::CPUWAIT);
        ptr::write_volatile(reg::CPUWAIT, wait & !0b10);
    }
}
