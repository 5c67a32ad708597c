//! Board support shared by snapmap's firmware: the dual-core demo (`src/bin/demo`) and the
//! target-side tests of snapmap-core (`tests/on_target.rs`).
//!
//! One `board-*` feature selects the [`board`]; what every firmware here needs beyond it is
//! board-independent: critical sections that count themselves per core ([`cs`]), the calling
//! core's periodic interrupt and cycle counter ([`tick`]), counters with a single writer that need
//! no read-modify-write ([`counter`]) and a histogram of them ([`histogram`]), and a mailbox through which core 0 hands core 1
//! numbered jobs ([`mailbox`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod board;
pub mod counter;
pub mod cs;
pub mod histogram;
pub mod mailbox;
pub mod tick;
