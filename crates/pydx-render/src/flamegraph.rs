//! Interactive flamegraph SVG, drawn by inferno from the collapsed stacks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};

use inferno::flamegraph::color::{MultiPalette, Palette};
use inferno::flamegraph::{from_lines, Options};
use pydx_profile::Profile;

use crate::collapsed::collapsed_lines;
use crate::{RenderError, RenderOptions};

/// Writes an interactive flamegraph SVG of the samples shown (see
/// [`crate::write_collapsed`]), titled [`RenderOptions::title`], with frames
/// coloured by where their code lives (application, standard library,
/// site-packages) and frame widths in samples.
///
/// Fails with [`RenderError::NoSamples`], before writing anything, when no
/// sample passes the filters.
pub fn write_flamegraph(
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    let lines = collapsed_lines(profile, options);
    if lines.is_empty() {
        return Err(RenderError::NoSamples);
    }
    let mut inferno_options = inferno_options(options);
    inferno_options.colors = Palette::Multi(MultiPalette::Python);
    inferno_options.hash = true;
    draw(inferno_options, &lines, out)
}

/// inferno's options for a flamegraph of samples titled as `options` say.
fn inferno_options(options: &RenderOptions) -> Options<'static> {
    let mut inferno_options = Options::default();
    inferno_options.title = options.title.clone();
    inferno_options.count_name = "samples".to_string();
    inferno_options
}

/// Draws the collapsed stacks `lines` with inferno into `out`.
fn draw(mut options: Options<'_>, lines: &[String], out: impl Write) -> Result<(), RenderError> {
    let mut out = BufWriter::new(out);
    from_lines(&mut options, lines.iter().map(String::as_str), &mut out)?;
    out.flush()?;
    Ok(())
}

/// Writes a differential flamegraph SVG of `before` and `after` (the
/// samples shown as by [`crate::write_collapsed`]): each frame is as wide
/// as the larger of its two sample counts, `before`'s counts multiplied by
/// `before_scale` first (to put the two recordings on one basis), and
/// coloured by the change, red where `after` has more and blue where less,
/// so that code a fix removed shows as much as code a change added.
///
/// Fails with [`RenderError::NoSamples`], before writing anything, when
/// neither recording has a sample that passes the filters.
pub fn write_diff_flamegraph(
    before: &Profile,
    after: &Profile,
    before_scale: f64,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    let counts = |profile: &Profile| -> BTreeMap<String, u64> {
        collapsed_lines(profile, options)
            .into_iter()
            .filter_map(|line| {
                let (stack, count) = line.rsplit_once(' ')?;
                Some((stack.to_string(), count.parse().ok()?))
            })
            .collect()
    };
    let (old, new) = (counts(before), counts(after));
    let stacks: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    // inferno draws a frame as wide as the second count and colours it by
    // the second minus the first: the second is the larger of the two, the
    // first whatever makes the difference after minus before.
    let lines: Vec<String> = stacks
        .into_iter()
        .filter_map(|stack| {
            let was = (old.get(stack).copied().unwrap_or(0) as f64 * before_scale).round() as u64;
            let is = new.get(stack).copied().unwrap_or(0);
            let wide = was.max(is);
            (wide > 0).then(|| format!("{stack} {} {wide}", wide + was - is))
        })
        .collect();
    if lines.is_empty() {
        return Err(RenderError::NoSamples);
    }
    let mut inferno_options = inferno_options(options);
    inferno_options.subtitle = Some(
        "as wide as the larger of the two recordings; red: more in the second, blue: less"
            .to_string(),
    );
    draw(inferno_options, &lines, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::two_threads;
    use pydx_profile::Meta;

    fn svg(options: &RenderOptions) -> String {
        let mut out = Vec::new();
        write_flamegraph(&two_threads(), options, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Parses the SVG (inferno writes a DOCTYPE).
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(svg, options).expect("well-formed SVG")
    }

    /// The texts of the SVG's `<title>` elements.
    fn titles(svg: &str) -> Vec<String> {
        parse(svg)
            .descendants()
            .filter(|node| node.tag_name().name() == "title")
            .filter_map(|node| node.text().map(str::to_string))
            .collect()
    }

    #[test]
    fn a_differential_flamegraph_is_as_wide_as_the_larger_recording_and_signs_the_change() {
        let profile = two_threads();
        let mut out = Vec::new();
        // The first recording counted twice as much per unit of work.
        write_diff_flamegraph(&profile, &profile, 2.0, &RenderOptions::default(), &mut out)
            .unwrap();
        let titles = titles(&String::from_utf8(out).unwrap());
        // Each frame's change is that of its own samples, as a share of
        // the whole.
        for expected in [
            "all (12 samples, 100%)",
            "work (app.py:5) (6 samples, 50.00%; -25.00%)",
            "run (worker.py:3) (4 samples, 33.33%; -16.67%)",
        ] {
            assert!(
                titles.iter().any(|t| t == expected),
                "{expected}: {titles:#?}"
            );
        }
        let mut out = Vec::new();
        let empty = Profile::new(Meta::default());
        assert!(matches!(
            write_diff_flamegraph(&empty, &empty, 1.0, &RenderOptions::default(), &mut out),
            Err(RenderError::NoSamples)
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn frames_appear_with_their_sample_counts() {
        let titles = titles(&svg(&RenderOptions::default()));
        for expected in [
            "all (6 samples, 100%)",
            "<module> (app.py:10) (3 samples, 50.00%)",
            "work (app.py:5) (3 samples, 50.00%)",
            "run (worker.py:3) (2 samples, 33.33%)",
            "<no Python frames> (1 samples, 16.67%)",
        ] {
            assert!(
                titles.iter().any(|title| title == expected),
                "{expected:?} not in {titles:?}"
            );
        }
        assert!(!titles.iter().any(|title| title.starts_with("wait ")));
    }

    #[test]
    fn the_title_and_filters_follow_the_options() {
        let options = RenderOptions {
            include_idle: true,
            title: "pydx record app.py".to_string(),
            ..RenderOptions::default()
        };
        let svg = svg(&options);
        let document = parse(&svg);
        let title = document
            .descendants()
            .find(|node| node.attribute("id") == Some("title"))
            .and_then(|node| node.text());
        assert_eq!(title, Some("pydx record app.py"));
        assert!(titles(&svg)
            .iter()
            .any(|title| title == "wait (app.py:20) (2 samples, 22.22%)"));
    }

    #[test]
    fn nothing_to_show_is_an_error() {
        let mut out = Vec::new();
        let result = write_flamegraph(
            &Profile::new(Meta::default()),
            &RenderOptions::default(),
            &mut out,
        );
        assert!(matches!(result, Err(RenderError::NoSamples)));
        assert!(out.is_empty());
    }
}
