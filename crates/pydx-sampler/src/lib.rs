//! Sampling Python processes.
//!
//! A [`Snapshotter`] reads every Python thread of a process at one instant,
//! together with what the OS says each thread was doing: on a CPU, waiting
//! for the GIL, or idle. A [`Sampler`] takes snapshots of a process (and,
//! optionally, of its child processes as they come and go) at a steady rate
//! and hands them to a [`SampleSink`]; [`ProfileRecorder`] is the sink that
//! builds a [`pydx_profile::Profile`].
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
//! - Sampling intervals are randomised around the nominal one, so that a
//!   periodic workload cannot alias with the sampler.

mod recorder;
mod sampler;
mod snapshot;

pub use recorder::ProfileRecorder;
pub use sampler::{
    attach_when_ready, NewProcess, Progress, SampleSink, Sampler, SamplingOptions, StageTimes,
    StopReason, Summary,
};
pub use snapshot::{
    tracer_of, Consistency, FrameObservation, NativeCapture, NativeCounts, NativeFrames,
    SnapshotError, Snapshotter, SqlStatement, ThreadReads, ThreadSnapshot, MAX_STATEMENT_CHARS,
};
