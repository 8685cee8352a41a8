//! The pydx profile data model and its file format.
//!
//! A [`Profile`] holds interned frames and stacks (a tree of frames), the
//! threads that were sampled, the exact count of every distinct sample
//! (thread, stack, state, labels), and a per-thread timeline of runs of
//! identical samples. Renderers read it; the diagnosis queries it; pprof
//! ([`write_pprof`], [`read_pprof`]) stores it.
//!
//! # Design constraints
//! - Memory grows with distinct stacks and with changes of what threads do,
//!   not with the number of samples: an hour at 1 kHz stays small.
//! - Deterministic: [`Profile::samples_sorted`] orders samples so that
//!   output files are identical for identical input.
//! - No process access, terminals or command-line types here.
//!
//! ```
//! use pydx_profile::{Activity, LabelSetId, Meta, Profile, SampleKey, SampleState};
//! let mut profile = Profile::new(Meta::default());
//! let main = profile.frame("<module>", "app.py", 3, 1);
//! let work = profile.frame("work", "app.py", 7, 6);
//! let stack = profile.stack_from_root([main, work]);
//! let thread = profile.thread(100, 100, 1, Some("MainThread"));
//! let state = SampleState { activity: Activity::OnCpu, holds_gil: true };
//! profile.add_sample(0, SampleKey { thread, stack, state, labels: LabelSetId(0) });
//! assert_eq!(profile.total_samples(), 1);
//! assert_eq!(profile.frames_root_first(stack), vec![main, work]);
//! ```

mod model;
mod pprof;
mod query;
mod timeline;

pub use model::{
    is_native_binary, Activity, CodeKind, Execution, Footprint, Frame, FrameId, LabelSetId,
    MemoryReading, Meta, Observed, ProcessMeta, Profile, SampleKey, SampleState, ServedRequests,
    StackId, StackNode, StrId, Tally, ThreadId, ThreadInfo, UnattachedProcess, Work,
    OBSERVATION_BUDGET, OTHER_STACKS, SAMPLE_KEY_BUDGET, STACK_BUDGET, UNREADABLE_CODE,
};
pub use pprof::{read_pprof, write_pprof, ProfileError};
pub use query::{CallNode, FunctionTime, LineTime};
pub use timeline::{Run, RunStack};
