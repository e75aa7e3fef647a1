//! `langevin ensemble`: several runs' predictions averaged into one submission.
//!
//! Per split, the members' rates are combined entry by entry: by default the mean of their
//! log-rates (the geometric mean of the rates), which is the average of the members' Poisson
//! log-likelihood parameters and never scores below their mean co-bps by convexity of
//! `exp`; the arithmetic mean of rates is the option. Each member's `submission-{phase}.h5` is
//! read as it is (made with `submit` first where it is missing), so any run that `submit` takes —
//! a sweep point `{sweep}/{point}` too — can be a member.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Ix3, Zip};

use crate::evaluate::DatasetResult;
use crate::h5::H5File;
use crate::nlb::files::SplitFiles;
use crate::nlb::{BinWidth, DatasetName, Phase, Split};
use crate::submit::{self, SplitRates, SubmitError, SubmitOptions};
use crate::train::{BackendKind, RunConfig};

/// Why an ensemble could not be built, naming the member or file.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("{0}")]
    Members(String),
    #[error("member {member}: {source}")]
    Submit {
        member: String,
        #[source]
        source: SubmitError,
    },
    #[error(transparent)]
    H5(#[from] crate::h5::H5Error),
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    #[error(transparent)]
    Write(#[from] SubmitError),
}

/// How members' rates are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mean {
    /// `exp(mean(log r))`, the default.
    LogRates,
    /// `mean(r)`.
    Rates,
}

impl std::str::FromStr for Mean {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "log-rates" => Ok(Mean::LogRates),
            "rates" => Ok(Mean::Rates),
            _ => Err(format!("--mean {s}: expected log-rates or rates")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EnsembleOptions {
    pub runs_home: PathBuf,
    /// Run tags of the members (at least two).
    pub members: Vec<String>,
    pub phase: Phase,
    /// Run tag the ensemble's `submission-{phase}.h5` is written under.
    pub out: String,
    pub mean: Mean,
    pub prep_home: PathBuf,
    pub files: SplitFiles,
    /// Backend for members whose submission must be made first.
    pub backend: BackendKind,
}

/// One split of the ensemble: its scores and its members' (val phase).
#[derive(Debug, Clone)]
pub struct SplitScores {
    pub split: Split,
    /// `(member, scores)`; a member whose scores could not be computed is left out.
    pub members: Vec<(String, DatasetResult)>,
    pub ensemble: Option<DatasetResult>,
    /// Why the ensemble could not be scored, if it could not.
    pub unscored: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EnsembleReport {
    pub path: PathBuf,
    pub splits: Vec<SplitScores>,
    /// Splits some member lacks, left out of the file.
    pub left_out: Vec<String>,
}

/// Builds and (val phase) scores the ensemble.
pub fn run(opts: &EnsembleOptions) -> Result<EnsembleReport, EnsembleError> {
    if opts.members.len() < 2 {
        return Err(EnsembleError::Members(
            "an ensemble needs at least two members (--run-tags a,b,…)".into(),
        ));
    }
    let files: Vec<PathBuf> = opts
        .members
        .iter()
        .map(|m| member_file(opts, m))
        .collect::<Result<_, _>>()?;
    let groups = common_groups(&files)?;
    let all = groups_of(&H5File::open(&files[0])?)?;
    let left_out = all.into_iter().filter(|g| !groups.contains(g)).collect();
    let mut combined = Vec::new();
    let mut splits = Vec::new();
    for group in &groups {
        let split = split_of(group, opts.phase, &files[0])?;
        let split_dir = split_dir(opts, &split)?;
        let members: Vec<SplitRates> = files
            .iter()
            .map(|f| read_rates(f, group, split, &split_dir))
            .collect::<Result<_, _>>()?;
        let rates = combine(&members, opts.mean, &files)?;
        splits.push(score(opts, &members, &rates));
        combined.push(rates);
    }
    let dir = opts.runs_home.join(&opts.out);
    std::fs::create_dir_all(&dir).map_err(|e| EnsembleError::Data {
        path: dir.clone(),
        msg: e.to_string(),
    })?;
    let path = dir.join(format!("submission-{}.h5", opts.phase));
    submit::write_submission(&path, &combined)?;
    Ok(EnsembleReport {
        path,
        splits,
        left_out,
    })
}

/// The member's submission file, made with `submit` (its runs' default checkpoint and samples)
/// when it does not exist yet.
fn member_file(opts: &EnsembleOptions, member: &str) -> Result<PathBuf, EnsembleError> {
    let path = opts
        .runs_home
        .join(member)
        .join(format!("submission-{}.h5", opts.phase));
    if path.is_file() {
        return Ok(path);
    }
    tracing::info!("{member} has no {}; submitting it first", path.display());
    let report = submit::run(&SubmitOptions {
        runs_home: opts.runs_home.clone(),
        run_tag: member.to_string(),
        phase: Some(opts.phase),
        checkpoint: None,
        samples: None,
        seed: 0,
        prep_home: opts.prep_home.clone(),
        files: opts.files.clone(),
        backend: opts.backend,
        batch: 64,
    })
    .map_err(|source| EnsembleError::Submit {
        member: member.to_string(),
        source,
    })?;
    Ok(report.path)
}

fn groups_of(file: &H5File) -> Result<Vec<String>, EnsembleError> {
    Ok(file
        .members("/")?
        .into_iter()
        .filter(|g| file.is_group(g))
        .collect())
}

/// Groups every member's file holds, in the first member's order.
fn common_groups(files: &[PathBuf]) -> Result<Vec<String>, EnsembleError> {
    let mut common = groups_of(&H5File::open(&files[0])?)?;
    for f in &files[1..] {
        let theirs = groups_of(&H5File::open(f)?)?;
        common.retain(|g| theirs.contains(g));
    }
    if common.is_empty() {
        return Err(EnsembleError::Members(format!(
            "the members' submission files share no dataset group: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(common)
}

/// `mc_maze_20` → mc_maze at 20 ms; `mc_maze` → 5 ms (nlb_tools' group names).
fn split_of(group: &str, phase: Phase, file: &Path) -> Result<Split, EnsembleError> {
    let (name, bin_width) = match group.strip_suffix("_20") {
        Some(name) => (name, BinWidth::ALL[1]),
        None => (group, BinWidth::ALL[0]),
    };
    let dataset: DatasetName = name.parse().map_err(|e| EnsembleError::Data {
        path: file.to_path_buf(),
        msg: format!("group `{group}`: {e}"),
    })?;
    Ok(Split {
        dataset,
        bin_width,
        phase,
    })
}

/// The split folder the members were trained on: the first member's `data.prep_home` where its
/// run config sets one, else PREP_HOME. A run config that exists but cannot be read is an error
/// rather than a fallback: scored against another split's targets, the table would be wrong.
fn split_dir(opts: &EnsembleOptions, split: &Split) -> Result<PathBuf, EnsembleError> {
    let config = opts
        .runs_home
        .join(&opts.members[0])
        .join(split.dir_name())
        .join("config.toml");
    let prep_home = if config.is_file() {
        RunConfig::load(&config, &[])
            .map_err(|e| EnsembleError::Members(format!("member {}: {e}", opts.members[0])))?
            .data
            .prep_home_or(&opts.prep_home)
    } else {
        opts.prep_home.clone()
    };
    Ok(split.dir(&prep_home).path().to_path_buf())
}

fn read_rates(
    file: &Path,
    group: &str,
    split: Split,
    split_dir: &Path,
) -> Result<SplitRates, EnsembleError> {
    let h5 = H5File::open(file)?;
    let read = |key: &str| -> Result<Array3<f32>, EnsembleError> {
        let name = format!("{group}/{key}");
        h5.read_f32(&name)?
            .into_dimensionality::<Ix3>()
            .map_err(|e| EnsembleError::Data {
                path: file.to_path_buf(),
                msg: format!("`{name}`: {e} (expected [trials, bins, neurons])"),
            })
    };
    Ok(SplitRates {
        split,
        split_dir: split_dir.to_path_buf(),
        train_heldin: read("train_rates_heldin")?,
        train_heldout: read("train_rates_heldout")?,
        eval_heldin: read("eval_rates_heldin")?,
        eval_heldout: read("eval_rates_heldout")?,
        eval_heldin_forward: read("eval_rates_heldin_forward")?,
        eval_heldout_forward: read("eval_rates_heldout_forward")?,
    })
}

/// Rates at or below this are clamped before the logarithm, as a zero rate is `-inf` there.
const LOG_FLOOR: f64 = 1e-10;

/// The entry-wise mean of the members' arrays (in f64, stored as f32).
fn combine(
    members: &[SplitRates],
    mean: Mean,
    files: &[PathBuf],
) -> Result<SplitRates, EnsembleError> {
    let first = &members[0];
    let mut out = first.clone();
    let keys = first.arrays().map(|(k, _)| k);
    for (slot, key) in keys.iter().enumerate() {
        let arrays: Vec<&Array3<f32>> = members.iter().map(|m| m.arrays()[slot].1).collect();
        for (a, f) in arrays.iter().zip(files) {
            if a.dim() != arrays[0].dim() {
                return Err(EnsembleError::Data {
                    path: f.clone(),
                    msg: format!(
                        "`{}/{key}` has shape {:?}, the first member's {:?}",
                        first.split.group(),
                        a.shape(),
                        arrays[0].shape()
                    ),
                });
            }
        }
        *array_mut(&mut out, slot) = mean_of(&arrays, mean);
    }
    Ok(out)
}

fn array_mut(r: &mut SplitRates, slot: usize) -> &mut Array3<f32> {
    match slot {
        0 => &mut r.eval_heldin,
        1 => &mut r.eval_heldin_forward,
        2 => &mut r.eval_heldout,
        3 => &mut r.eval_heldout_forward,
        4 => &mut r.train_heldin,
        _ => &mut r.train_heldout,
    }
}

fn mean_of(arrays: &[&Array3<f32>], mean: Mean) -> Array3<f32> {
    let n = arrays.len() as f64;
    let mut sum = Array3::<f64>::zeros(arrays[0].dim());
    for a in arrays {
        Zip::from(&mut sum).and(*a).for_each(|s, &v| {
            *s += match mean {
                Mean::LogRates => f64::from(v).max(LOG_FLOOR).ln(),
                Mean::Rates => f64::from(v),
            }
        });
    }
    sum.mapv(|s| match mean {
        Mean::LogRates => (s / n).exp() as f32,
        Mean::Rates => (s / n) as f32,
    })
}

fn score(opts: &EnsembleOptions, members: &[SplitRates], rates: &SplitRates) -> SplitScores {
    if opts.phase != Phase::Val {
        return SplitScores {
            split: rates.split,
            members: Vec::new(),
            ensemble: None,
            unscored: None,
        };
    }
    let member_scores = opts
        .members
        .iter()
        .zip(members)
        .filter_map(|(m, r)| Some((m.clone(), submit::score_split(&opts.files, r).ok()?)))
        .collect();
    let (ensemble, unscored) = match submit::score_split(&opts.files, rates) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    SplitScores {
        split: rates.split,
        members: member_scores,
        ensemble,
        unscored,
    }
}

/// Where the file is and, per split, each member's scores beside the ensemble's.
pub fn summary_text(report: &EnsembleReport) -> String {
    let mut out = format!("wrote {}\n", report.path.display());
    for g in &report.left_out {
        out += &format!("left out {g}: not in every member's file\n");
    }
    for s in &report.splits {
        if let Some(reason) = &s.unscored {
            out += &format!("not scored {}: {reason}\n", s.split.dir_name());
            continue;
        }
        let Some(ensemble) = &s.ensemble else {
            continue;
        };
        out += &format!("\n{}\n", s.split.dir_name());
        out += &format!(
            "{:<40} {:>8} {:>8} {:>8} {:>8}\n",
            "member", "co-bps", "vel R2", "psth R2", "fp-bps"
        );
        let line = |name: &str, r: &DatasetResult| {
            let m = &r.metrics;
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            format!(
                "{name:<40} {:>8.4} {:>8} {:>8} {:>8}\n",
                m.co_bps,
                f(m.vel_r2),
                f(m.psth_r2),
                f(m.fp_bps)
            )
        };
        for (name, r) in &s.members {
            out += &line(name, r);
        }
        if !s.members.is_empty() {
            let mean = s.members.iter().map(|(_, r)| r.metrics.co_bps).sum::<f64>()
                / s.members.len() as f64;
            out += &format!("{:<40} {mean:>8.4}\n", "members' mean");
        }
        out += &line("ensemble", ensemble);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn log_mean_is_the_geometric_mean_and_rates_mean_the_arithmetic() {
        let a = array![[[1.0f32, 4.0]]];
        let b = array![[[4.0f32, 1.0]]];
        let g = mean_of(&[&a, &b], Mean::LogRates);
        assert!((g[[0, 0, 0]] - 2.0).abs() < 1e-6 && (g[[0, 0, 1]] - 2.0).abs() < 1e-6);
        let m = mean_of(&[&a, &b], Mean::Rates);
        assert_eq!(m[[0, 0, 0]], 2.5);
        let zero = array![[[0.0f32, 1.0]]];
        assert!(mean_of(&[&zero, &a], Mean::LogRates)
            .iter()
            .all(|v| v.is_finite()));
    }

    #[test]
    fn group_names_give_dataset_and_bin_width() {
        let s = split_of("mc_maze_small_20", Phase::Val, Path::new("x.h5")).unwrap();
        assert_eq!(s.dir_name(), "mc_maze_small-20ms-val");
        let s = split_of("area2_bump", Phase::Test, Path::new("x.h5")).unwrap();
        assert_eq!(s.dir_name(), "area2_bump-05ms-test");
        assert!(split_of("nope_20", Phase::Val, Path::new("x.h5")).is_err());
    }

    #[test]
    fn the_split_folder_is_the_members_and_an_unreadable_config_is_named() {
        let runs = tempfile::tempdir().unwrap();
        let split = split_of("mc_maze_small_20", Phase::Val, Path::new("x.h5")).unwrap();
        let opts = EnsembleOptions {
            runs_home: runs.path().to_path_buf(),
            members: vec!["a".into(), "b".into()],
            phase: Phase::Val,
            out: "e".into(),
            mean: Mean::LogRates,
            prep_home: PathBuf::from("prep"),
            files: SplitFiles::default(),
            backend: BackendKind::Flex,
        };
        let want = |home: &str| split.dir(Path::new(home)).path().to_path_buf();
        // No run config: PREP_HOME.
        assert_eq!(split_dir(&opts, &split).unwrap(), want("prep"));
        let dir = runs.path().join("a").join(split.dir_name());
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            "[data]\ndataset = \"mc_maze_small\"\nbin_width = 20\nphase = \"val\"\nprep_home = \"elsewhere\"\n",
        )
        .unwrap();
        assert_eq!(split_dir(&opts, &split).unwrap(), want("elsewhere"));
        std::fs::write(&config, "[train]\nnot_a_key = 1\n").unwrap();
        let err = split_dir(&opts, &split).unwrap_err().to_string();
        assert!(
            err.contains("member a") && err.contains("not_a_key"),
            "{err}"
        );
    }
}
