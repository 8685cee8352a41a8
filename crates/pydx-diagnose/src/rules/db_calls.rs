//! The database calls the web rules recognise in stacks, shared so that
//! each stack is charged to one kind of call: its outermost recognised
//! frame (a lazy load that runs a query is a lazy load; a read that
//! autoflushes pending writes is a read).

use pydx_libraries::{database_call, DbApi, DbCall};

use super::request_sites::{work_sites, Site};
use crate::context::Context;
use crate::finding::Location;
use crate::source::{code_only, enclosing_loop, LoopHeader};

/// A database call of one API made again and again from a line inside a
/// loop while serving requests (or anywhere, in a program that serves none).
pub(crate) struct LoopCall {
    /// The API.
    pub api: DbApi,
    /// The line's location, with its source.
    pub location: Location,
    /// The loop around it.
    pub header: LoopHeader,
    /// Its share of the request-serving samples.
    pub share: f64,
    /// What pydx saw of it.
    pub site: Site,
}

/// The calls `wanted` picks (reads or writes) made from lines inside loops,
/// taking at least `min_share` of request time (or of their thread's time,
/// in a program that serves no requests), seen at least
/// `min_calls` separate times.
pub(crate) fn calls_in_loops(
    context: &Context<'_>,
    wanted: impl Fn(DbCall) -> Option<DbApi>,
    min_share: f64,
    min_calls: u64,
) -> Vec<LoopCall> {
    let (measured, sites) = work_sites(context, database_call);
    sites
        .into_iter()
        .filter_map(|((call, frame), site)| {
            let api = wanted(call)?;
            let share = site.samples as f64 / measured as f64;
            if share < min_share
                || site.episodes < min_calls
                || site.samples < Context::MIN_CPU_SAMPLES / 2
            {
                return None;
            }
            let location = context.location(frame);
            let header = enclosing_loop(context, &location.file, location.line)?;
            Some(LoopCall {
                api,
                location,
                header,
                share,
                site,
            })
        })
        .collect()
}

/// QuerySet methods a Django related manager passes on: calling one on
/// `item.lines` runs a query for that item's related rows.
const RELATED_MANAGER_METHODS: [&str; 11] = [
    "all",
    "filter",
    "exclude",
    "count",
    "exists",
    "first",
    "last",
    "order_by",
    "values",
    "values_list",
    "get",
];

impl LoopCall {
    /// The related collection a Django read goes through, when the line
    /// calls a queryset method on an attribute of the loop's target
    /// (`order.lines.all()` in `for order in ...`): a reverse foreign key or
    /// many-to-many read per item, an N+1 for PYDX-DB001.
    pub(crate) fn related_manager(&self) -> Option<String> {
        if self.api != DbApi::Django {
            return None;
        }
        let (target, _) = self.header.target_and_iterable.as_ref()?;
        let code = code_only(self.location.source.as_deref()?);
        code.match_indices(&format!("{target}."))
            .find_map(|(index, _)| {
                let before = code[..index].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    return None;
                }
                let rest = &code[index + target.len() + 1..];
                let (attribute, call) = rest.split_once('.')?;
                let is_name =
                    |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
                let method = call.split_once('(')?.0;
                (is_name(attribute) && RELATED_MANAGER_METHODS.contains(&method))
                    .then(|| attribute.to_string())
            })
    }

    /// The evidence every loop finding gives.
    pub(crate) fn evidence(&self, context: &Context<'_>, what: &str) -> Vec<String> {
        let statement = self.location.source.clone().unwrap_or_default();
        let scope = self.site.scope;
        let mut evidence = vec![
            format!(
                "{:.0}% of {} ({:.2} s of thread time) went to {what} at {}:{} (`{}`)",
                self.share * 100.0,
                scope.time_spent(),
                self.site.seconds(context),
                self.location.file,
                self.location.line,
                statement.trim()
            ),
            format!(
                "the line runs inside the loop at {}:{} (`{}`): one round trip per iteration",
                self.location.file, self.header.line, self.header.text
            ),
            format!(
                "pydx saw them in {} {}",
                self.site.episodes,
                scope.repeats()
            ),
        ];
        evidence.extend(self.site.endpoints_evidence());
        evidence
    }

    /// The loop's place, `file:line`.
    pub(crate) fn loop_place(&self) -> String {
        format!("{}:{}", self.location.file, self.header.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn django_read(statement: &str) -> LoopCall {
        LoopCall {
            api: DbApi::Django,
            location: Location {
                function: "view".into(),
                file: "/app/views.py".into(),
                line: 12,
                source: Some(statement.into()),
            },
            header: LoopHeader {
                line: 11,
                text: "for order in orders:".into(),
                target_and_iterable: Some(("order".into(), "orders".into())),
            },
            share: 0.5,
            site: Site::default(),
        }
    }

    #[test]
    fn related_manager_reads_of_the_loop_target_are_told_apart() {
        let related = |s: &str| django_read(s).related_manager();
        assert_eq!(
            related("skus = [line.sku for line in order.lines.all()]").as_deref(),
            Some("lines")
        );
        assert_eq!(related("n = order.tags.count()").as_deref(), Some("tags"));
        assert_eq!(related("name = order.customer.name"), None);
        assert_eq!(related("item = Item.objects.get(id=order.item_id)"), None);
        assert_eq!(related("x = other_order.lines.all()"), None);
    }
}
