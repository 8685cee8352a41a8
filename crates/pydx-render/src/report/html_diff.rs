//! `pydx diff -o diff.html`: the comparison as one self-contained HTML
//! page, with a differential flamegraph of the CPU time (frames as wide as
//! the larger of their two times per unit of work, red where the second
//! recording spends more, blue where less).

use std::collections::HashMap;
use std::io::{self, Write};

use pydx_diagnose::Diff;
use pydx_profile::{CallNode, Profile};
use serde::Serialize;

use super::html::{cut_strings, script_safe, COMMON_SCRIPT, SECURITY_POLICY, STYLE};
use super::ReportOptions;

const SCRIPT: &str = include_str!("html/diff.js");

/// Frames whose larger time is under this share of the larger total are
/// left out of the page (they would be narrower than a pixel).
const MIN_NODE_SHARE: f64 = 0.0005;

/// A frame of the merged call tree: `[function, file, before ms per unit,
/// after ms per unit, children]`.
#[derive(Serialize)]
struct Node(String, String, f64, f64, Vec<Node>);

/// The call tree being merged, keyed by function and file.
#[derive(Default)]
struct Tree {
    before: f64,
    after: f64,
    children: HashMap<(String, String), Tree>,
}

impl Tree {
    /// Adds `profile`'s on-CPU call tree (tasks waiting left out), each
    /// node's total time in ms divided by `scale`.
    fn add(&mut self, profile: &Profile, after: bool, scale: f64) {
        let calls = profile.call_tree(|key| {
            key.state.activity.counts_as_cpu() && !profile.is_waiting_task(key.labels)
        });
        self.add_node(&calls, after, scale);
    }

    fn add_node(&mut self, calls: &CallNode, after: bool, scale: f64) {
        self.credit(after, calls.total_ns as f64 / 1e6 / scale);
        for child in &calls.children {
            self.children
                .entry((child.function.clone(), child.file.clone()))
                .or_default()
                .add_node(child, after, scale);
        }
    }

    fn credit(&mut self, after: bool, ms: f64) {
        if after {
            self.after += ms;
        } else {
            self.before += ms;
        }
    }

    /// The tree for the page, without frames under `min` ms in both.
    fn into_nodes(self, name: (String, String), min: f64) -> Node {
        let mut children: Vec<Node> = self
            .children
            .into_iter()
            .filter(|(_, child)| child.before.max(child.after) >= min)
            .map(|(name, child)| child.into_nodes(name, min))
            .collect();
        children.sort_by(|a, b| b.2.max(b.3).total_cmp(&a.2.max(a.3)).then(a.0.cmp(&b.0)));
        Node(name.0, name.1, self.before, self.after, children)
    }
}

/// Everything the page's script draws.
#[derive(Serialize)]
struct DiffPage {
    tool: String,
    diff: serde_json::Value,
    flame: Node,
}

/// Writes the page for `diff`, the comparison of `before` with `after`.
pub(crate) fn write_diff(
    diff: &Diff,
    before: &Profile,
    after: &Profile,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut tree = Tree::default();
    tree.add(
        before,
        false,
        diff.before.units(diff.basis).max(f64::MIN_POSITIVE),
    );
    tree.add(
        after,
        true,
        diff.after.units(diff.basis).max(f64::MIN_POSITIVE),
    );
    let min = tree.before.max(tree.after) * MIN_NODE_SHARE;
    let mut diff_json = serde_json::to_value(diff).unwrap_or_default();
    cut_strings(&mut diff_json);
    let mut flame = tree.into_nodes(("all".into(), String::new()), min);
    cut_node(&mut flame);
    let page = DiffPage {
        tool: format!("pydx {}", options.tool_version),
        diff: diff_json,
        flame,
    };
    let json = serde_json::to_string(&page)?;
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{SECURITY_POLICY}\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pydx diff</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <noscript>This comparison is drawn by its script: allow JavaScript to see it.</noscript>\n\
         <main id=\"report\"></main>\n\
         <script type=\"application/json\" id=\"pydx-data\">{}</script>\n\
         <script>\n{COMMON_SCRIPT}{SCRIPT}</script>\n</body>\n</html>\n",
        script_safe(&json)
    )
}

/// Cuts the names in a tree as [`cut_strings`] does.
fn cut_node(node: &mut Node) {
    let mut names = serde_json::json!([node.0, node.1]);
    cut_strings(&mut names);
    node.0 = names[0].as_str().unwrap_or_default().to_string();
    node.1 = names[1].as_str().unwrap_or_default().to_string();
    node.4.iter_mut().for_each(cut_node);
}
