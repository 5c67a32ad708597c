//! Core 0 posts numbered jobs, core 1 runs them: a one-slot mailbox between the two cores.
//!
//! Core 0 [`post`](Mailbox::post)s job 1, 2, 3, ... and watches core 1 pick each one up
//! ([`started`](Mailbox::started)) and complete it ([`finished`](Mailbox::finished)). Core 1
//! sits in [`serve`](Mailbox::serve), asleep in `wfe` while there is nothing new, and runs its
//! job with each new number.
//!
//! Every number has a single writer (core 0 the posted one, core 1 the started and finished
//! ones), so plain atomic loads and stores do, no read-modify-write (ARMv6-M has none).
//! What a job needs beyond its number (a function, a configuration, a buffer) core 0 writes
//! before posting it, and reads back what the job produced after seeing it finished: the
//! Release / Acquire pairs here order both.

use core::sync::atomic::{AtomicU32, Ordering};

/// A job mailbox from core 0 to core 1 (see the [module docs](self)).
///
/// Core 0 posts the next job only after the last one finished; were it to post twice in a row,
/// core 1 would run the later number only.
pub struct Mailbox {
    /// The job core 0 posted last; written by core 0 only.
    posted: AtomicU32,
    /// The job core 1 started last; written by core 1 only.
    started: AtomicU32,
    /// The job core 1 finished last; written by core 1 only.
    finished: AtomicU32,
}

impl Mailbox {
    /// An empty mailbox: nothing posted yet, the first job will be number 1.
    pub const fn new() -> Self {
        Self {
            posted: AtomicU32::new(0),
            started: AtomicU32::new(0),
            finished: AtomicU32::new(0),
        }
    }

    /// Core 0: posts the next job and wakes core 1; returns the job's number (1 for the first).
    ///
    /// Whatever core 0 wrote before the call is visible to core 1's job.
    #[inline(always)]
    pub fn post(&self) -> u32 {
        // Relaxed: core 0 is this number's only writer, so it reads back its own last store.
        let job = self.posted.load(Ordering::Relaxed).wrapping_add(1);
        self.post_numbered(job);
        job
    }

    /// Core 0: [`post`](Self::post) for a caller that counts its jobs itself: posts job `job`,
    /// which must be the one after the last posted (the first is 1).
    ///
    /// Saves `post`'s load of the last number, for a caller whose every instruction counts
    /// (`bench` times reads on core 1 against the instructions both cores run).
    #[inline(always)]
    pub fn post_numbered(&self, job: u32) {
        // Release: pairs with core 1's Acquire load in `serve`, so whatever core 0 prepared for
        // the job is visible to it.
        self.posted.store(job, Ordering::Release);
        cortex_m::asm::sev();
    }

    /// Core 0: whether core 1 has picked up job `job` (and not yet a later one).
    #[inline(always)]
    pub fn started(&self, job: u32) -> bool {
        // Acquire: pairs with core 1's Release store in `serve`.
        self.started.load(Ordering::Acquire) == job
    }

    /// Core 0: whether core 1 has finished job `job` (and not yet a later one). Once it has,
    /// everything the job did is visible to the caller.
    #[inline(always)]
    pub fn finished(&self, job: u32) -> bool {
        // Acquire: pairs with core 1's Release store in `serve`, so everything the job did
        // happens-before what core 0 does next.
        self.finished.load(Ordering::Acquire) == job
    }

    /// Core 1: runs `job` with the number of every job core 0 posts, one after the other,
    /// publishing each as started before and as finished after; sleeps in `wfe` in between.
    ///
    /// Always inlined: it then compiles into its caller as the loop written out there would,
    /// which keeps `bench`'s instruction counts as they were.
    #[inline(always)]
    pub fn serve(&self, mut job: impl FnMut(u32)) -> ! {
        let mut done = 0;
        loop {
            // Acquire: pairs with core 0's Release store in `post_numbered`, so whatever core 0
            // prepared for the job is visible.
            let posted = self.posted.load(Ordering::Acquire);
            if posted == done {
                // `sev` after each post sets the event register, so a post between the load
                // above and this `wfe` is not missed.
                cortex_m::asm::wfe();
                continue;
            }
            // Release: pairs with core 0's Acquire load in `started`; core 0 learns that core 1
            // took the job up, and sees everything core 1 did before.
            self.started.store(posted, Ordering::Release);
            job(posted);
            done = posted;
            // Release: everything the job did happens-before core 0's Acquire load in
            // `finished`.
            self.finished.store(done, Ordering::Release);
            cortex_m::asm::sev();
        }
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}
