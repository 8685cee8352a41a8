//! Collapsed (folded) stacks: `frame;frame;frame count`, outermost first.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use pydx_profile::{Profile, RunStack};

use crate::frames::{FrameNamer, FrameTable};
use crate::{RenderError, RenderOptions};

/// Writes collapsed stacks: one `frame;frame;frame count` line per distinct
/// stack shown, outermost frame first, sorted, with the sample counts of
/// every sample drawn with that stack summed.
///
/// `;` inside a frame name becomes `,` and line breaks become spaces, so
/// that every line parses back into the same frames.
pub fn write_collapsed(
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    let mut out = BufWriter::new(out);
    for line in collapsed_lines(profile, options) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// The lines of the collapsed stacks, sorted, without line ends.
pub(crate) fn collapsed_lines(profile: &Profile, options: &RenderOptions) -> Vec<String> {
    let namer = FrameNamer::new(profile, options);
    let mut table = FrameTable::default();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (key, count) in profile.samples_sorted() {
        if !namer.keeps(key.state, key.labels) {
            continue;
        }
        let frames = namer.frames(key.thread, key.labels, RunStack::Stack(key.stack));
        let mut line = String::new();
        for (depth, index) in table.intern_all(&namer, &frames).into_iter().enumerate() {
            if depth > 0 {
                line.push(';');
            }
            line.extend(table.name(index).chars().map(sanitise));
        }
        *counts.entry(line).or_insert(0) += count;
    }
    counts
        .into_iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect()
}

/// Replaces the characters that would break a collapsed line.
fn sanitise(character: char) -> char {
    match character {
        ';' => ',',
        '\n' | '\r' => ' ',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::{add, meta, state, two_threads, MS};
    use pydx_profile::{Activity, Meta, ProcessMeta};

    fn collapsed(profile: &Profile, options: &RenderOptions) -> String {
        let mut out = Vec::new();
        write_collapsed(profile, options, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn by_default_only_samples_on_a_cpu_are_shown() {
        let text = collapsed(&two_threads(), &RenderOptions::default());
        insta::assert_snapshot!(text, @r"
        <module> (app.py:10);work (app.py:5) 3
        <no Python frames> 1
        run (worker.py:3) 2
        ");
    }

    #[test]
    fn idle_samples_are_shown_when_asked_for() {
        let options = RenderOptions {
            include_idle: true,
            ..RenderOptions::default()
        };
        let text = collapsed(&two_threads(), &options);
        insta::assert_snapshot!(text, @r"
        <module> (app.py:10);work (app.py:5) 3
        <module> (app.py:11);wait (app.py:20) 2
        <no Python frames> 1
        run (worker.py:3) 2
        run (worker.py:4) 1
        ");
    }

    #[test]
    fn gil_only_keeps_samples_holding_the_gil() {
        let options = RenderOptions {
            include_idle: true,
            gil_only: true,
            ..RenderOptions::default()
        };
        let text = collapsed(&two_threads(), &options);
        assert_eq!(text, "<module> (app.py:10);work (app.py:5) 3\n");
    }

    #[test]
    fn per_thread_adds_a_root_frame_per_thread() {
        let options = RenderOptions {
            per_thread: true,
            ..RenderOptions::default()
        };
        let text = collapsed(&two_threads(), &options);
        insta::assert_snapshot!(text, @r#"
        thread 100 "MainThread";<module> (app.py:10);work (app.py:5) 3
        thread 101 "worker";<no Python frames> 1
        thread 101 "worker";run (worker.py:3) 2
        "#);
    }

    #[test]
    fn by_function_merges_the_lines_of_a_function() {
        let mut profile = Profile::new(meta());
        let line_3 = profile.frame("f", "a.py", 3, 2);
        let line_4 = profile.frame("f", "a.py", 4, 2);
        let thread = profile.thread(100, 100, 1, None);
        let on_cpu = state(Activity::OnCpu, true);
        let stack_3 = profile.stack_from_root([line_3]);
        let stack_4 = profile.stack_from_root([line_4]);
        add(&mut profile, 0, thread, stack_3, on_cpu);
        add(&mut profile, 10 * MS, thread, stack_4, on_cpu);
        add(&mut profile, 20 * MS, thread, stack_4, on_cpu);

        let by_line = collapsed(&profile, &RenderOptions::default());
        assert_eq!(by_line, "f (a.py:3) 1\nf (a.py:4) 2\n");
        let options = RenderOptions {
            by_function: true,
            ..RenderOptions::default()
        };
        assert_eq!(collapsed(&profile, &options), "f (a.py:2) 3\n");
    }

    #[test]
    fn several_processes_get_a_root_frame_each() {
        let mut profile = Profile::new(Meta {
            processes: vec![ProcessMeta {
                pid: 1,
                command: "python a.py".to_string(),
                python_version: "3.13.0".to_string(),
                ..ProcessMeta::default()
            }],
            ..Meta::default()
        });
        let main = profile.frame("main", "a.py", 1, 1);
        let stack = profile.stack_from_root([main]);
        let first = profile.thread(1, 11, 1, Some("MainThread"));
        let second = profile.thread(2, 22, 2, None);
        let on_cpu = state(Activity::OnCpu, true);
        add(&mut profile, 0, first, stack, on_cpu);
        add(&mut profile, 0, second, stack, on_cpu);
        add(&mut profile, 10 * MS, second, stack, on_cpu);

        insta::assert_snapshot!(collapsed(&profile, &RenderOptions::default()), @r"
        process 1 python a.py;main (a.py:1) 1
        process 2;main (a.py:1) 2
        ");
        let options = RenderOptions {
            per_thread: true,
            ..RenderOptions::default()
        };
        insta::assert_snapshot!(collapsed(&profile, &options), @r#"
        process 1 python a.py;thread 11 "MainThread";main (a.py:1) 1
        process 2;thread 22;main (a.py:1) 2
        "#);
    }

    #[test]
    fn separators_inside_names_are_replaced() {
        let mut profile = Profile::new(meta());
        let odd = profile.frame("a;b\nc", "x;y.py", 1, 1);
        let stack = profile.stack_from_root([odd]);
        let thread = profile.thread(100, 100, 1, None);
        add(&mut profile, 0, thread, stack, state(Activity::OnCpu, true));
        let text = collapsed(&profile, &RenderOptions::default());
        assert_eq!(text, "a,b c (x,y.py:1) 1\n");
    }

    #[test]
    fn an_empty_profile_gives_no_lines() {
        let profile = Profile::new(Meta::default());
        assert_eq!(collapsed(&profile, &RenderOptions::default()), "");
    }
}
