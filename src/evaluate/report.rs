//! Presenting results: nlb_tools' returned list as JSON, and an aligned table for people.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::group::{Dataset, Metrics};
use super::truth::TruthScores;

/// The metrics of one scored group.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetResult {
    pub dataset: Dataset,
    /// 5 or 20: the group suffix (`''` or `_20`) it was read from.
    pub bin_ms: u32,
    pub metrics: Metrics,
}

impl DatasetResult {
    /// The HDF5 group this result was scored from, e.g. `mc_maze_20`; also the table's row label.
    pub fn group(&self) -> String {
        self.dataset.group(self.bin_ms)
    }
}

/// nlb_tools' return value: a list of one-key dicts `{"<split>": {"<metric>": value}}`.
///
/// Kept as ordered pairs (serialised in order) because leaderboard tooling and people diffing
/// against the reference expect its key order, which a JSON map type would sort away.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `(split name, [(metric key, value)])`, in the reference's order.
    pub splits: Vec<(String, Vec<(String, f64)>)>,
}

impl Report {
    /// Groups results as the reference does: one `<group>_split` entry per non-scaling group in
    /// visiting order, then the scaling datasets merged into `mc_maze_scaling_split` and
    /// `mc_maze_scaling_20_split` with `[500] `/`[250] `/`[100] ` key prefixes.
    pub fn from_results(results: &[DatasetResult]) -> Self {
        Self::from_results_with_truth(results, &[])
    }

    /// [`Report::from_results`] with each result's truth scores (`truth[i]` for `results[i]`;
    /// missing or `None` for none) appended to its entries as `rate R2` and `truth co-bps`.
    pub fn from_results_with_truth(
        results: &[DatasetResult],
        truth: &[Option<TruthScores>],
    ) -> Self {
        let mut splits = Vec::new();
        let mut scaling: Vec<(u32, Vec<(String, f64)>)> = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let entries = entries(r, truth.get(i).copied().flatten());
            match r.dataset.scaling_prefix() {
                None => splits.push((
                    format!("{}_split", r.group()),
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )),
                Some(prefix) => {
                    let merged = match scaling.iter().position(|(b, _)| *b == r.bin_ms) {
                        Some(i) => &mut scaling[i].1,
                        None => {
                            scaling.push((r.bin_ms, Vec::new()));
                            &mut scaling.last_mut().expect("just pushed").1
                        }
                    };
                    merged.extend(
                        entries
                            .into_iter()
                            .map(|(k, v)| (format!("{prefix} {k}"), v)),
                    );
                }
            }
        }
        scaling.sort_by_key(|(bin, _)| *bin);
        for (bin, entries) in scaling {
            let name = Dataset::McMaze
                .group(bin)
                .replacen("mc_maze", "mc_maze_scaling", 1);
            splits.push((format!("{name}_split"), entries));
        }
        Self { splits }
    }

    /// Pretty-printed JSON with the reference's keys, nesting and order; NaN becomes `null`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Entries<'a>(&'a [(String, f64)]);
        impl Serialize for Entries<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    map.serialize_entry(k, &v.is_finite().then_some(*v))?;
                }
                map.end()
            }
        }
        struct Split<'a>(&'a str, &'a [(String, f64)]);
        impl Serialize for Split<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(self.0, &Entries(self.1))?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.splits.len()))?;
        for (name, entries) in &self.splits {
            seq.serialize_element(&Split(name, entries))?;
        }
        seq.end()
    }
}

/// A result's metric entries, then its truth scores if any.
fn entries(r: &DatasetResult, truth: Option<TruthScores>) -> Vec<(&'static str, f64)> {
    let mut out = r.metrics.entries();
    out.extend(truth.iter().flat_map(TruthScores::entries));
    out
}

/// An aligned text table, one row per scored group and one column per metric that any row has.
pub fn format_table(results: &[DatasetResult]) -> String {
    format_table_with_truth(results, &[])
}

/// [`format_table`] with `rate R2` and `truth co-bps` columns for the results that have truth
/// scores (`truth[i]` for `results[i]`); without any, the same table.
pub fn format_table_with_truth(results: &[DatasetResult], truth: &[Option<TruthScores>]) -> String {
    const COLUMNS: [&str; 7] = [
        "co-bps",
        "vel R2",
        "tp corr",
        "psth R2",
        "fp-bps",
        "rate R2",
        "truth co-bps",
    ];
    let rows: Vec<(String, Vec<(&str, f64)>)> = results
        .iter()
        .enumerate()
        .map(|(i, r)| (r.group(), entries(r, truth.get(i).copied().flatten())))
        .collect();
    let columns: Vec<&str> = COLUMNS
        .into_iter()
        .filter(|c| rows.iter().any(|(_, e)| e.iter().any(|(k, _)| k == c)))
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, entries)| {
            columns
                .iter()
                .map(|c| match entries.iter().find(|(k, _)| k == c) {
                    Some((_, v)) if v.is_nan() => "NaN".to_string(),
                    Some((_, v)) => format!("{v:.4}"),
                    None => "-".to_string(),
                })
                .collect()
        })
        .collect();
    let label_w = rows
        .iter()
        .map(|(g, _)| g.len())
        .chain(["dataset".len()])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(j, c)| {
            cells
                .iter()
                .map(|r| r[j].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:<label_w$}", "dataset");
    for (c, w) in columns.iter().zip(&widths) {
        out.push_str(&format!("  {c:>w$}"));
    }
    out.push('\n');
    for ((group, _), row) in rows.iter().zip(&cells) {
        out.push_str(&format!("{group:<label_w$}"));
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!("  {cell:>w$}"));
        }
        out.push('\n');
    }
    out + &skipped_notes(results)
}

/// One line per metric a target could not support: `note: mc_maze_20: vel R2 not scored
/// (target has no `train_behavior`)`. Empty for complete targets. Printed under the table, and
/// on stderr beside `--json`, whose list stays exactly nlb_tools'.
pub fn skipped_notes(results: &[DatasetResult]) -> String {
    let mut out = String::new();
    for r in results {
        for s in &r.metrics.skipped {
            out += &format!(
                "note: {}: {} not scored ({})\n",
                r.group(),
                s.metric,
                s.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(dataset: Dataset, bin_ms: u32, co_bps: f64) -> DatasetResult {
        DatasetResult {
            dataset,
            bin_ms,
            metrics: Metrics {
                co_bps,
                vel_r2: (!dataset.is_dmfc()).then_some(0.5),
                tp_corr: dataset.is_dmfc().then_some(-0.25),
                psth_r2: (dataset != Dataset::McRtt).then_some(f64::NAN),
                fp_bps: None,
                skipped: Vec::new(),
            },
        }
    }

    #[test]
    fn scaling_groups_are_merged_at_the_end_with_prefixes() {
        let results = [
            result(Dataset::McMaze, 5, 0.1),
            result(Dataset::DmfcRsg, 20, 0.2),
            result(Dataset::McMazeLarge, 5, 0.3),
            result(Dataset::McMazeLarge, 20, 0.4),
            result(Dataset::McMazeSmall, 5, 0.5),
        ];
        let report = Report::from_results(&results);
        let names: Vec<&str> = report.splits.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "mc_maze_split",
                "dmfc_rsg_20_split",
                "mc_maze_scaling_split",
                "mc_maze_scaling_20_split"
            ]
        );
        let keys: Vec<&str> = report.splits[2].1.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "[500] co-bps",
                "[500] vel R2",
                "[500] psth R2",
                "[100] co-bps",
                "[100] vel R2",
                "[100] psth R2"
            ]
        );
        let dmfc: Vec<&str> = report.splits[1].1.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(dmfc, ["co-bps", "tp corr", "psth R2"]);
    }

    #[test]
    fn json_keeps_order_and_writes_nan_as_null() {
        let report = Report::from_results(&[result(Dataset::McMaze, 20, 0.125)]);
        let compact = serde_json::to_string(&report).unwrap();
        assert_eq!(
            compact,
            r#"[{"mc_maze_20_split":{"co-bps":0.125,"vel R2":0.5,"psth R2":null}}]"#
        );
    }

    #[test]
    fn truth_scores_extend_json_and_table_only_where_present() {
        let results = [
            result(Dataset::McMaze, 20, 0.125),
            result(Dataset::McRtt, 20, 0.5),
        ];
        let truth = [
            Some(TruthScores {
                rate_r2: 0.75,
                truth_co_bps: 0.25,
            }),
            None,
        ];
        let compact =
            serde_json::to_string(&Report::from_results_with_truth(&results, &truth)).unwrap();
        assert_eq!(
            compact,
            r#"[{"mc_maze_20_split":{"co-bps":0.125,"vel R2":0.5,"psth R2":null,"rate R2":0.75,"truth co-bps":0.25}},{"mc_rtt_20_split":{"co-bps":0.5,"vel R2":0.5}}]"#
        );
        let table = format_table_with_truth(&results, &truth);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("rate R2  truth co-bps"), "{table}");
        assert!(lines[1].ends_with("0.7500        0.2500"), "{table}");
        assert!(lines[2].ends_with("-             -"), "{table}");
        assert_eq!(
            format_table_with_truth(&results, &[None, None]),
            format_table(&results)
        );
        assert_eq!(
            Report::from_results_with_truth(&results, &[None]).to_json(),
            Report::from_results(&results).to_json()
        );
    }

    #[test]
    fn table_is_aligned_with_blanks_for_absent_metrics() {
        let table = format_table(&[
            result(Dataset::McRtt, 5, 0.1),
            result(Dataset::DmfcRsg, 20, -1.0),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
        assert!(lines[0].starts_with("dataset") && lines[0].ends_with("psth R2"));
        assert!(lines[1].starts_with("mc_rtt ") && lines[1].contains("0.5000"));
        assert!(lines[2].starts_with("dmfc_rsg_20") && lines[2].contains("-1.0000"));
        assert!(lines[2].contains("NaN") && lines[1].trim_end().ends_with('-'));
    }
}
