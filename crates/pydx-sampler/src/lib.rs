//! Sampling a Python process.
//!
//! A [`Snapshotter`] reads every Python thread of a process at one instant,
//! together with what the OS says each thread was doing (on a CPU or idle).
//!
//! # Design constraints
//! - The target is only ever read. In [`Consistency::Paused`] mode its
//!   threads are held with `PTRACE_INTERRUPT` for the length of one read and
//!   released by a guard, so an error or a panic cannot leave them stopped.
//! - OS thread states are read before the threads are paused, because a
//!   stopped thread never looks like it is running.

mod snapshot;

pub use snapshot::{Activity, Consistency, SnapshotError, Snapshotter, ThreadSnapshot};
