//! Interactive flamegraph SVG, drawn by inferno from the collapsed stacks.

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
    let mut inferno_options = Options::default();
    inferno_options.title = options.title.clone();
    inferno_options.count_name = "samples".to_string();
    inferno_options.colors = Palette::Multi(MultiPalette::Python);
    inferno_options.hash = true;
    let mut out = BufWriter::new(out);
    from_lines(
        &mut inferno_options,
        lines.iter().map(String::as_str),
        &mut out,
    )?;
    out.flush()?;
    Ok(())
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
