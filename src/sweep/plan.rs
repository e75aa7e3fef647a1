//! A sweep's plan: one config expanded over grid values, random draws, seeds and splits into
//! named runs, each a list of `--set` overrides. The plan is pure data, saved as `sweep.json` in
//! the sweep folder, so a local pool, a Slurm array task and `sweep status` all read the same list.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::SweepError;
use crate::nlb::{BinWidth, DatasetName, Phase, Split};
use crate::train::RunConfig;

/// One `--grid key=v1,v2,…` axis: every value is tried.
#[derive(Debug, Clone, PartialEq)]
pub struct GridAxis {
    pub key: String,
    pub values: Vec<String>,
}

impl std::str::FromStr for GridAxis {
    type Err = SweepError;
    fn from_str(s: &str) -> Result<Self, SweepError> {
        let (key, values) = key_value(s, "--grid", "key=v1,v2,…")?;
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(SweepError::Spec(format!("--grid {s}: an empty value")));
        }
        Ok(GridAxis { key, values })
    }
}

/// One `--range key=lo:hi[:log]` of a random search: values drawn uniformly (or log-uniformly).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub key: String,
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl std::str::FromStr for Range {
    type Err = SweepError;
    fn from_str(s: &str) -> Result<Self, SweepError> {
        let bad = || SweepError::Spec(format!("--range {s}: expected key=lo:hi or key=lo:hi:log"));
        let (key, spec) = key_value(s, "--range", "key=lo:hi[:log]")?;
        let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
        let (lo, hi, log) = match parts.as_slice() {
            [lo, hi] => (lo, hi, false),
            [lo, hi, "log"] => (lo, hi, true),
            _ => return Err(bad()),
        };
        let lo: f64 = lo.parse().map_err(|_| bad())?;
        let hi: f64 = hi.parse().map_err(|_| bad())?;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) || (log && lo <= 0.0) {
            return Err(SweepError::Spec(format!(
                "--range {s}: needs finite lo < hi{}",
                if log { ", both above 0 for :log" } else { "" }
            )));
        }
        Ok(Range { key, lo, hi, log })
    }
}

fn key_value(s: &str, flag: &str, form: &str) -> Result<(String, String), SweepError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok((k.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(SweepError::Spec(format!("{flag} {s}: expected {form}"))),
    }
}

/// Parses `--seeds 0-4`, `--seeds 1,5,9` or a mix (`0-2,7`).
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, SweepError> {
    let bad = || SweepError::Spec(format!("--seeds {s}: expected e.g. 0-4 or 1,5,9"));
    let mut seeds = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                seeds.extend(a..=b);
            }
            None => seeds.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(seeds)
}

/// Parses `--splits all` (the 28 NLB splits) or a list of split folder names
/// (`mc_maze-20ms-val,mc_rtt-05ms-test`).
pub fn parse_splits(s: &str) -> Result<Vec<Split>, SweepError> {
    if s == "all" {
        let mut all = Vec::new();
        for dataset in DatasetName::ALL {
            for bin_width in BinWidth::ALL {
                for phase in Phase::ALL {
                    all.push(Split {
                        dataset,
                        bin_width,
                        phase,
                    });
                }
            }
        }
        return Ok(all);
    }
    s.split(',')
        .map(|name| {
            name.trim()
                .parse()
                .map_err(|e| SweepError::Spec(format!("--splits: {e}")))
        })
        .collect()
}

/// Everything a sweep varies, as the command line gave it.
#[derive(Debug, Clone, Default)]
pub struct SweepSpec {
    pub grid: Vec<GridAxis>,
    /// Random points to draw (0: grid only); each draws every range once.
    pub random: usize,
    pub ranges: Vec<Range>,
    /// Seed of the random draws, so a sweep plans the same points again.
    pub random_seed: u64,
    /// `train.seed` values (empty: the config's own).
    pub seeds: Vec<u64>,
    /// Splits to train (empty: the config's own).
    pub splits: Vec<Split>,
    /// Overrides applied to every run before the swept ones.
    pub sets: Vec<String>,
}

/// One run of a sweep: `RUNS_HOME/{sweep}/{point}/{split}/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Folder name of the point, readable: `lr-0.001_dropout-0.3_seed-2`.
    pub point: String,
    /// The split folder name, `{dataset}-{bw:02}ms-{phase}`.
    pub split: String,
    /// The swept values, `(key, value)` in the order of [`Plan::keys`].
    pub values: Vec<(String, String)>,
    /// Every `--set` of this run: the sweep's fixed ones, then the swept ones, then the split.
    pub sets: Vec<String>,
    /// Its `train.epochs`: the run is finished when that many are done.
    pub epochs: usize,
}

/// The expanded sweep, as saved in `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The swept keys, in column order (`train.seed` last when seeds are swept).
    pub keys: Vec<String>,
    pub runs: Vec<PlannedRun>,
}

impl Plan {
    /// Expands `spec` over the config at `config` (its text, to read value types and check every
    /// run's settings before anything starts).
    pub fn expand(config: &Path, spec: &SweepSpec) -> Result<Plan, SweepError> {
        let text = std::fs::read_to_string(config).map_err(|e| SweepError::Io {
            path: config.to_path_buf(),
            msg: e.to_string(),
        })?;
        let base: toml::Table = text.parse().map_err(|e| SweepError::Io {
            path: config.to_path_buf(),
            msg: format!("{e}"),
        })?;
        let points = points(spec, &base);
        let mut keys: Vec<String> = spec.grid.iter().map(|a| a.key.clone()).collect();
        if spec.random > 0 {
            keys.extend(spec.ranges.iter().map(|r| r.key.clone()));
        }
        if !spec.seeds.is_empty() {
            keys.push("train.seed".into());
        }
        let splits: Vec<Option<Split>> = if spec.splits.is_empty() {
            vec![None]
        } else {
            spec.splits.iter().copied().map(Some).collect()
        };
        let mut runs = Vec::new();
        for values in points {
            let point = point_name(&values);
            for split in &splits {
                runs.push(planned_run(config, spec, &point, &values, *split)?);
            }
        }
        check_unique(&runs)?;
        Ok(Plan { keys, runs })
    }
}

/// Every combination of grid values × random draws × seeds, as `(key, value)` lists.
fn points(spec: &SweepSpec, base: &toml::Table) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in &spec.grid {
        points = cross(
            points,
            axis.values
                .iter()
                .map(|v| vec![(axis.key.clone(), v.clone())]),
        );
    }
    if spec.random > 0 {
        let mut rng = StdRng::seed_from_u64(spec.random_seed);
        let draws: Vec<Vec<(String, String)>> = (0..spec.random)
            .map(|_| {
                spec.ranges
                    .iter()
                    .map(|r| (r.key.clone(), draw(r, base, &mut rng)))
                    .collect()
            })
            .collect();
        points = cross(points, draws.into_iter());
    }
    if !spec.seeds.is_empty() {
        let seeds = spec
            .seeds
            .iter()
            .map(|s| vec![("train.seed".to_string(), s.to_string())]);
        points = cross(points, seeds);
    }
    points
}

fn cross(
    points: Vec<Vec<(String, String)>>,
    extra: impl Iterator<Item = Vec<(String, String)>> + Clone,
) -> Vec<Vec<(String, String)>> {
    points
        .into_iter()
        .flat_map(|p| {
            extra.clone().map(move |e| {
                let mut p = p.clone();
                p.extend(e);
                p
            })
        })
        .collect()
}

/// One value of `range`, rounded to an integer where the config holds an integer there, else
/// to 4 significant digits (readable folder names, exact values in the run's config).
fn draw(range: &Range, base: &toml::Table, rng: &mut StdRng) -> String {
    let u: f64 = rng.random();
    let v = if range.log {
        (range.lo.ln() + u * (range.hi.ln() - range.lo.ln())).exp()
    } else {
        range.lo + u * (range.hi - range.lo)
    };
    if matches!(lookup(base, &range.key), Some(toml::Value::Integer(_))) {
        return format!("{}", v.round() as i64);
    }
    let digits = 3 - v.abs().log10().floor() as i32;
    let text = format!("{:.*}", digits.max(0) as usize, v);
    let rounded: f64 = text.parse().unwrap_or(v);
    if rounded.abs() < 1e-3 {
        format!("{rounded:e}")
    } else {
        format!("{rounded}")
    }
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// `lr-0.001_dropout-0.3_seed-2`: each key's last segment and its value, with characters that
/// do not belong in a folder name replaced; `base` when nothing is swept.
pub fn point_name(values: &[(String, String)]) -> String {
    if values.is_empty() {
        return "base".into();
    }
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    values
        .iter()
        .map(|(k, v)| {
            let short = k.rsplit('.').next().unwrap_or(k);
            format!("{}-{}", clean(short), clean(v))
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn planned_run(
    config: &Path,
    spec: &SweepSpec,
    point: &str,
    values: &[(String, String)],
    split: Option<Split>,
) -> Result<PlannedRun, SweepError> {
    let mut sets = spec.sets.clone();
    sets.extend(values.iter().map(|(k, v)| format!("{k}={v}")));
    if let Some(s) = split {
        sets.push(format!("data.dataset={}", s.dataset));
        sets.push(format!("data.bin_width={}", s.bin_width.ms()));
        sets.push(format!("data.phase={}", s.phase));
    }
    let resolved = RunConfig::load(config, &sets)?;
    Ok(PlannedRun {
        point: point.to_string(),
        split: resolved.data.split().dir_name(),
        values: values.to_vec(),
        sets,
        epochs: resolved.train.epochs,
    })
}

fn check_unique(runs: &[PlannedRun]) -> Result<(), SweepError> {
    let mut seen = std::collections::HashSet::new();
    for run in runs {
        if !seen.insert((run.point.as_str(), run.split.as_str())) {
            return Err(SweepError::Spec(format!(
                "two runs of the sweep share the folder {}/{} (a value repeated, or two keys \
                 with the same last segment and value)",
                run.point, run.split
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(
            file.path(),
            "[data]\ndataset = \"mc_maze_small\"\nbin_width = 20\nphase = \"val\"\n[model]\nhidden_size = 16\n[train]\nepochs = 3\nlr = 0.003\nbatch_size = 16\n",
        )
        .unwrap();
        file
    }

    #[test]
    fn grid_seeds_and_splits_multiply_in_order() {
        let file = config();
        let spec = SweepSpec {
            grid: vec!["train.lr=0.001,0.003".parse().unwrap()],
            seeds: parse_seeds("0-1").unwrap(),
            splits: parse_splits("mc_maze_small-20ms-val,mc_rtt-05ms-test").unwrap(),
            ..Default::default()
        };
        let plan = Plan::expand(file.path(), &spec).unwrap();
        assert_eq!(plan.keys, ["train.lr", "train.seed"]);
        assert_eq!(plan.runs.len(), 8);
        assert_eq!(plan.runs[0].point, "lr-0.001_seed-0");
        assert_eq!(plan.runs[0].split, "mc_maze_small-20ms-val");
        assert_eq!(plan.runs[1].split, "mc_rtt-05ms-test");
        assert_eq!(plan.runs[7].point, "lr-0.003_seed-1");
        assert!(plan.runs[1].sets.contains(&"data.bin_width=5".to_string()));
    }

    #[test]
    fn random_draws_are_seeded_in_range_and_typed() {
        let file = config();
        let spec = SweepSpec {
            random: 4,
            ranges: vec![
                "train.lr=1e-4:1e-2:log".parse().unwrap(),
                "train.batch_size=8:64".parse().unwrap(),
            ],
            random_seed: 3,
            ..Default::default()
        };
        let a = Plan::expand(file.path(), &spec).unwrap();
        let b = Plan::expand(file.path(), &spec).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.runs.len(), 4);
        for run in &a.runs {
            let lr: f64 = run.values[0].1.parse().unwrap();
            assert!((1e-4..=1e-2).contains(&lr), "{lr}");
            let h: i64 = run.values[1].1.parse().unwrap();
            assert!((8..=64).contains(&h));
        }
    }

    #[test]
    fn bad_specs_and_bad_keys_are_named() {
        assert!("train.lr".parse::<GridAxis>().is_err());
        assert!("train.lr=1:0".parse::<Range>().is_err());
        assert!("train.lr=0:1:log".parse::<Range>().is_err());
        assert!(parse_seeds("3-1").is_err());
        assert_eq!(parse_splits("all").unwrap().len(), 28);
        let file = config();
        let spec = SweepSpec {
            grid: vec!["train.learning_rate=0.1,0.2".parse().unwrap()],
            ..Default::default()
        };
        let err = Plan::expand(file.path(), &spec).unwrap_err().to_string();
        assert!(err.contains("learning_rate"), "{err}");
        let twice = SweepSpec {
            grid: vec!["train.lr=0.1,0.1".parse().unwrap()],
            ..Default::default()
        };
        assert!(Plan::expand(file.path(), &twice).is_err());
    }
}
