//! Sampling a Python process.
//!
//! A [`Snapshotter`] reads every Python thread of a process at one instant,
//! together with what the OS says each thread was doing: on a CPU, waiting
//! for the GIL, or idle.
//!
//! # Design constraints
//! - The target is only ever read. In [`Consistency::Paused`] mode its
//!   threads are held with `PTRACE_INTERRUPT` for the length of one read and
//!   released by a guard, so an error or a panic cannot leave them stopped.
//! - OS thread states are read before the threads are paused, because a
//!   stopped thread never looks like it is running.
//! - A thread waiting for the GIL is told apart from one waiting for I/O by
//!   the futex it sleeps on (from `/proc/PID/task/TID/syscall`), never by
//!   the names of its frames.

mod snapshot;

pub use snapshot::{Consistency, SnapshotError, Snapshotter, ThreadSnapshot};
