//! Putting Python frames in place of the evaluation loop calls that ran them.

use crate::unwind::{NativeFrame, NativeStack, Role, UnwindUntil};

/// The name of the frame that stands where a native stack stopped early.
pub const CUT_SHORT: &str = "<native stack cut short>";

/// One frame of a merged stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergedFrame {
    /// The Python frame at this index of the thread's Python stack.
    Python(usize),
    /// A native frame.
    Native(NativeFrame),
}

/// The native and Python stacks of a thread do not fit together: they
/// were not read at the same instant, or a frame was misnamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{evaluation_calls} calls of the evaluation loop on the native stack, {python_calls} on the Python stack")]
pub struct Mismatch {
    /// Calls of the evaluation loop found on the native stack.
    pub evaluation_calls: usize,
    /// C-level calls of the loop the Python stack shows.
    pub python_calls: usize,
}

/// What a merge needs to know of one Python frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PythonCall {
    /// The frame is the first one its C-level call of the evaluation loop
    /// ran (see `pydx_cpython::Frame::entry`); the outermost frame always is.
    pub starts_call: bool,
    /// On such a frame (3.12+): an address inside that call's native stack
    /// frame (see `pydx_cpython::Frame::call_frame`); 0 when unknown.
    pub call_frame: u64,
}

/// Merges a thread's native stack with its Python stack (both innermost
/// first; `python` describes each Python frame).
///
/// Each call of the evaluation loop is replaced by the Python frames it
/// ran. Which native frame is that call is known exactly from 3.12 on: the
/// one whose stack frame holds the call's entry frame. Before, it is the
/// next frame of the loop's function, by name. The interpreter's other
/// frames are left out, and so are the native frames outside the outermost
/// Python frame (thread start-up, `main`), unless `keep_all`, which keeps
/// every native frame (evaluation loop calls after the Python frames they
/// ran). When the native stack stops early, a [`CUT_SHORT`] frame stands
/// for what is missing and the remaining Python frames follow it.
pub fn merge(
    native: &NativeStack,
    python: &[PythonCall],
    keep_all: bool,
) -> Result<Vec<MergedFrame>, Mismatch> {
    let python_calls = count_calls(python);
    let mut merged = Vec::with_capacity(native.frames.len() + python.len());
    let mut next_python = 0;
    let mut evaluation_calls = 0;
    for (index, frame) in native.frames.iter().enumerate() {
        let python_done = next_python == python.len() && !python.is_empty();
        let runs_next_call = match next_call_frame(&python[next_python..]) {
            Some(address) => {
                let low = native.stack_pointers.get(index).copied().unwrap_or(0);
                // The outermost frame of a stack cut short has no known
                // extent, so holds no entry frame.
                let high = match native.stack_pointers.get(index + 1) {
                    Some(&next) => next,
                    None if native.complete => u64::MAX,
                    None => low,
                };
                low <= address && address < high
            }
            None => frame.role == Role::Evaluation && next_python < python.len(),
        };
        if runs_next_call {
            evaluation_calls += 1;
            while next_python < python.len() {
                merged.push(MergedFrame::Python(next_python));
                next_python += 1;
                if python[next_python - 1].starts_call {
                    break;
                }
            }
            if keep_all {
                merged.push(MergedFrame::Native(frame.clone()));
            }
            continue;
        }
        match frame.role {
            // A loop call outside the outermost Python frame: the stacks
            // were read at different instants.
            Role::Evaluation if python_done => {
                return Err(Mismatch {
                    evaluation_calls: evaluation_calls + 1,
                    python_calls,
                })
            }
            _ if python_done && !keep_all => {}
            // A thread without Python frames, or a loop call starting or
            // ending (its entry frame not on the chain): part of the
            // interpreter.
            Role::Evaluation | Role::Interpreter if !keep_all && !python.is_empty() => {}
            Role::Interpreter if !keep_all => {}
            _ => merged.push(MergedFrame::Native(frame.clone())),
        }
    }
    if next_python < python.len() {
        if native.complete {
            return Err(Mismatch {
                evaluation_calls,
                python_calls,
            });
        }
        merged.push(MergedFrame::Native(NativeFrame {
            function: CUT_SHORT.into(),
            module: "?".into(),
            role: Role::Native,
        }));
        merged.extend((next_python..python.len()).map(MergedFrame::Python));
    }
    Ok(merged)
}

/// How far the native stack must be unwound for [`merge`] with these
/// Python frames: to the loop call that runs the outermost one, or (with
/// `keep_all`, or no Python frames) to the end.
pub fn unwind_until(python: &[PythonCall], keep_all: bool) -> UnwindUntil {
    if keep_all || python.is_empty() {
        return UnwindUntil::default();
    }
    match python.last().map(|frame| frame.call_frame) {
        Some(address) if address != 0 => UnwindUntil {
            stack_address: Some(address),
            evaluation_calls: None,
        },
        _ => UnwindUntil {
            stack_address: None,
            evaluation_calls: Some(count_calls(python)),
        },
    }
}

/// The native-stack address of the loop call that runs the first of
/// `python` (the next frames to place), when the interpreter tells.
fn next_call_frame(python: &[PythonCall]) -> Option<u64> {
    python
        .iter()
        .find(|frame| frame.starts_call)
        .map(|frame| frame.call_frame)
        .filter(|&address| address != 0)
}

/// The C-level calls of the evaluation loop a Python stack shows.
fn count_calls(python: &[PythonCall]) -> usize {
    let marked = python.iter().filter(|frame| frame.starts_call).count();
    marked + usize::from(python.last().is_some_and(|frame| !frame.starts_call))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, role: Role) -> NativeFrame {
        NativeFrame {
            function: function.into(),
            module: "lib.so".into(),
            role,
        }
    }

    /// Python frames without native-stack addresses (before 3.12).
    fn calls(starts: &[bool]) -> Vec<PythonCall> {
        starts
            .iter()
            .map(|&starts_call| PythonCall {
                starts_call,
                call_frame: 0,
            })
            .collect()
    }

    fn names(merged: &[MergedFrame]) -> Vec<String> {
        merged
            .iter()
            .map(|f| match f {
                MergedFrame::Python(i) => format!("py{i}"),
                MergedFrame::Native(n) => n.function.to_string(),
            })
            .collect()
    }

    /// A thread in a C extension called from Python, which called back into
    /// Python, which runs two frames in one loop call (3.11+).
    fn callback_stack(complete: bool) -> NativeStack {
        NativeStack {
            frames: vec![
                frame("spin", Role::Native),
                frame("_PyEval_EvalFrameDefault", Role::Evaluation),
                frame("_PyFunction_Vectorcall", Role::Interpreter),
                frame("call_back", Role::Native),
                frame("ext_call", Role::Native),
                frame("cfunction_call", Role::Interpreter),
                frame("_PyEval_EvalFrameDefault", Role::Evaluation),
                frame("PyEval_EvalCode", Role::Interpreter),
                frame("main", Role::Interpreter),
                frame("__libc_start_main", Role::Native),
            ],
            stack_pointers: Vec::new(),
            complete,
        }
    }

    #[test]
    fn python_frames_replace_the_loop_calls_that_ran_them() {
        // py0 and py1 run in the inner loop call (py1 was called from C),
        // py2 and py3 in the outer one.
        let entries = [false, true, false, true];
        let merged = merge(&callback_stack(true), &calls(&entries), false).unwrap();
        assert_eq!(
            names(&merged),
            ["spin", "py0", "py1", "call_back", "ext_call", "py2", "py3"]
        );
    }

    #[test]
    fn keeping_all_frames_keeps_the_interpreter_and_start_up() {
        let entries = [false, true, false, true];
        let merged = merge(&callback_stack(true), &calls(&entries), true).unwrap();
        assert_eq!(
            names(&merged),
            [
                "spin",
                "py0",
                "py1",
                "_PyEval_EvalFrameDefault",
                "_PyFunction_Vectorcall",
                "call_back",
                "ext_call",
                "cfunction_call",
                "py2",
                "py3",
                "_PyEval_EvalFrameDefault",
                "PyEval_EvalCode",
                "main",
                "__libc_start_main"
            ]
        );
    }

    #[test]
    fn before_3_11_every_frame_has_its_own_loop_call() {
        let native = NativeStack {
            frames: vec![
                frame("_PyEval_EvalFrameDefault", Role::Evaluation),
                frame("_PyEval_EvalFrameDefault", Role::Evaluation),
            ],
            stack_pointers: Vec::new(),
            complete: true,
        };
        let merged = merge(&native, &calls(&[true, true]), false).unwrap();
        assert_eq!(names(&merged), ["py0", "py1"]);
    }

    #[test]
    fn a_stack_cut_short_keeps_the_python_frames_it_did_not_reach() {
        let mut native = callback_stack(false);
        native.frames.truncate(4);
        let entries = [false, true, false, true];
        let merged = merge(&native, &calls(&entries), false).unwrap();
        assert_eq!(
            names(&merged),
            ["spin", "py0", "py1", "call_back", CUT_SHORT, "py2", "py3"]
        );
    }

    #[test]
    fn stacks_that_do_not_fit_are_refused() {
        // One loop call too many: the Python stack was read at another instant.
        let entries = [true];
        assert_eq!(
            merge(&callback_stack(true), &calls(&entries), false),
            Err(Mismatch {
                evaluation_calls: 2,
                python_calls: 1
            })
        );
        // One too few, on a stack unwound to its end.
        let entries = [true, true, true];
        assert_eq!(
            merge(&callback_stack(true), &calls(&entries), false),
            Err(Mismatch {
                evaluation_calls: 2,
                python_calls: 3
            })
        );
    }

    #[test]
    fn a_thread_without_python_frames_keeps_its_native_stack() {
        let merged = merge(&callback_stack(true), &[], false).unwrap();
        assert_eq!(
            names(&merged),
            [
                "spin",
                "_PyEval_EvalFrameDefault",
                "call_back",
                "ext_call",
                "_PyEval_EvalFrameDefault",
                "__libc_start_main"
            ]
        );
    }

    #[test]
    fn from_3_12_the_loop_calls_are_found_by_where_their_entry_frames_are() {
        // A stripped interpreter: its loop is not named, and the call at
        // 0x7000 is one just starting, whose entry frame is not linked yet.
        let native = NativeStack {
            frames: vec![
                frame("spin", Role::Native),
                frame("python3.13+0x4467bb", Role::Interpreter),
                frame("python3.13+0x4467bb", Role::Interpreter),
                frame("call_back", Role::Native),
                frame("python3.13+0x4467bb", Role::Interpreter),
                frame("PyEval_EvalCode", Role::Interpreter),
            ],
            stack_pointers: vec![0x6000, 0x7000, 0x8000, 0x9000, 0xa000, 0xb000],
            complete: true,
        };
        let python = [
            PythonCall {
                starts_call: true,
                call_frame: 0x8100,
            },
            PythonCall {
                starts_call: false,
                call_frame: 0,
            },
            PythonCall {
                starts_call: true,
                call_frame: 0xa100,
            },
        ];
        let merged = merge(&native, &python, false).unwrap();
        assert_eq!(names(&merged), ["spin", "py0", "call_back", "py1", "py2"]);
        // An entry frame in no native frame: the stacks do not fit.
        let mut astray = python;
        astray[2].call_frame = 0x5000;
        assert!(merge(&native, &astray, false).is_err());
    }

    #[test]
    fn unwinding_stops_at_the_outermost_python_frames_call() {
        let with_address = [
            PythonCall {
                starts_call: false,
                call_frame: 0,
            },
            PythonCall {
                starts_call: true,
                call_frame: 0x7ff0,
            },
        ];
        assert_eq!(
            unwind_until(&with_address, false),
            UnwindUntil {
                stack_address: Some(0x7ff0),
                evaluation_calls: None
            }
        );
        assert_eq!(
            unwind_until(&calls(&[true, false, true, false]), false),
            UnwindUntil {
                stack_address: None,
                evaluation_calls: Some(3)
            }
        );
        assert_eq!(unwind_until(&with_address, true), UnwindUntil::default());
        assert_eq!(unwind_until(&[], false), UnwindUntil::default());
    }
}
