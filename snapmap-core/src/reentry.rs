//! Detects a write to a map from inside a write to the same map on the same thread (under `std`,
//! which has thread-locals): from an [`update`](crate::SnapMap::update) closure, say. Such a
//! write would publish, make the outer write lose its race and run its closure again, which
//! writes again: a livelock. Detected, it returns [`Error::Reentrant`](crate::Error::Reentrant).
//!
//! Each write in progress on a thread is a frame on that thread's stack, linked to the one it
//! runs inside of; a new write walks the list (as deep as the nesting of writes to different
//! maps, usually empty) looking for its own map.

#[cfg(feature = "std")]
mod imp {
    use core::cell::Cell;
    use core::ptr;

    struct Frame {
        map: *const (),
        outer: *const Frame,
    }

    #[cfg(not(loom))]
    std::thread_local! {
        /// This thread's innermost write in progress, or null.
        static INNERMOST: Cell<*const Frame> = const { Cell::new(ptr::null()) };
    }
    // Loom runs its threads on one OS thread: they need its own thread-locals.
    #[cfg(loom)]
    loom::thread_local! {
        static INNERMOST: Cell<*const Frame> = Cell::new(ptr::null());
    }

    /// Whether this thread is inside a write to `map`.
    pub(crate) fn writing(map: *const ()) -> bool {
        let mut frame = INNERMOST.with(Cell::get);
        while !frame.is_null() {
            // SAFETY: every frame on the list is alive: `nest` links it for the duration of its
            // call only, and unlinks it on return or unwind, innermost first (one thread).
            let current = unsafe { &*frame };
            if current.map == map {
                return true;
            }
            frame = current.outer;
        }
        false
    }

    /// Runs `write` with `map` on this thread's list of writes in progress.
    pub(crate) fn nest<T>(map: *const (), write: impl FnOnce() -> T) -> T {
        struct Unlink(*const Frame);
        impl Drop for Unlink {
            fn drop(&mut self) {
                INNERMOST.with(|top| top.set(self.0));
            }
        }
        let frame = Frame {
            map,
            outer: INNERMOST.with(Cell::get),
        };
        let _unlink = Unlink(frame.outer);
        INNERMOST.with(|top| top.set(&frame));
        write()
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    /// Without thread-locals, nothing to detect with (see [`Error::Reentrant`](crate::Error)).
    #[inline(always)]
    pub(crate) fn writing(_map: *const ()) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn nest<T>(_map: *const (), write: impl FnOnce() -> T) -> T {
        write()
    }
}

pub(crate) use imp::{nest, writing};
