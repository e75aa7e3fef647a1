//! `langevin synth` for every dataset at tiny scale: files laid out like DANDI's, read by
//! `preprocess` like the real thing, scored by `evaluate`; the truth files describe the very
//! rates the spikes were drawn from; and a seed gives byte-identical files.

use std::path::{Path, PathBuf};

use langevin::evaluate::evaluate_files;
use langevin::h5::{AtomicH5, Data, H5File};
use langevin::nlb::preprocess::{self, PreprocessOptions};
use langevin::nlb::session::nwb_files;
use langevin::nlb::{BinWidth, DatasetName, Phase};
use langevin::nwb;
use langevin::synth::{synth, Scale, Truth};

/// What each dataset's files must hold for its tensors, PSTHs and metrics.
struct Expect {
    trial_columns: &'static [&'static str],
    behaviour: Option<&'static str>,
    metrics: &'static [&'static str],
}

fn expect(dataset: DatasetName) -> Expect {
    use DatasetName::*;
    match dataset {
        McMaze | McMazeLarge | McMazeMedium | McMazeSmall => Expect {
            trial_columns: &["move_onset_time", "trial_type", "trial_version", "split"],
            behaviour: Some("hand_vel"),
            metrics: &["co-bps", "vel R2", "psth R2", "fp-bps"],
        },
        McRtt => Expect {
            trial_columns: &["split"],
            behaviour: Some("finger_vel"),
            metrics: &["co-bps", "vel R2", "fp-bps"],
        },
        Area2Bump => Expect {
            trial_columns: &["move_onset_time", "cond_dir", "ctr_hold_bump", "split"],
            behaviour: Some("hand_vel"),
            metrics: &["co-bps", "vel R2", "psth R2", "fp-bps"],
        },
        DmfcRsg => Expect {
            trial_columns: &[
                "set_time",
                "go_time",
                "is_eye",
                "theta",
                "is_short",
                "ts",
                "tp",
                "is_outlier",
                "split",
            ],
            behaviour: None,
            metrics: &["co-bps", "tp corr", "psth R2", "fp-bps"],
        },
        Lorenz => Expect {
            trial_columns: &["split"],
            behaviour: None,
            metrics: &["co-bps", "fp-bps"],
        },
    }
}

/// Synthesises, checks layout and truth, preprocesses at 20 ms and scores a mean-rate submission.
fn end_to_end(dataset: DatasetName) {
    let home = tempfile::tempdir().unwrap();
    let data_home = home.path().join("data");
    let report = synth(&data_home, dataset, Scale::Tiny, 5).unwrap();
    assert_eq!(report.files.len(), 2);
    assert_eq!(
        nwb_files(&dataset.data_dir(&data_home)).unwrap(),
        report.files,
        "preprocess lists the NWB files only, test file first"
    );
    check_layout(dataset, &report.files);
    for (nwb_path, truth_path) in report.files.iter().zip(&report.truth) {
        check_truth(nwb_path, truth_path);
    }

    let prep_home = home.path().join("prep");
    let splits = preprocess::run(&PreprocessOptions {
        data_home,
        prep_home: prep_home.clone(),
        datasets: vec![dataset],
        bin_widths: vec!["20".parse::<BinWidth>().unwrap()],
        phases: Phase::ALL.to_vec(),
        files: Default::default(),
        progress: false,
        companion: Some(langevin::synth::truth::companion),
    })
    .unwrap();
    assert_eq!(splits.len(), 2);
    let dir = prep_home.join(format!("{dataset}-20ms-val"));
    let submission = home.path().join("submission.h5");
    write_mean_rate_submission(&dir, &dataset.group(20), &submission);
    let results = evaluate_files(&dir.join("eval_target.h5"), &submission).unwrap();
    assert_eq!(results.len(), 1, "{dataset}");
    let entries = results[0].metrics.entries();
    let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, expect(dataset).metrics, "{dataset}");
    // Mean rates carry no information: about zero bits/spike, and a finite score.
    let co_bps = results[0].metrics.co_bps;
    assert!(
        co_bps.is_finite() && co_bps.abs() < 0.2,
        "{dataset} co-bps {co_bps}"
    );
}

/// Train and test files as on DANDI: the test file lacks held-out units and behaviour.
fn check_layout(dataset: DatasetName, files: &[PathBuf]) {
    let test = nwb::read(&files[0]).unwrap();
    let train = nwb::read(&files[1]).unwrap();
    assert!(files[0].to_string_lossy().contains("desc-test"));
    assert!(files[1].to_string_lossy().contains("desc-train"));
    assert!(test.units.heldout.iter().all(|&h| !h));
    assert!(test.series.is_empty());
    assert!(train.units.heldout.iter().any(|&h| h));
    let want = expect(dataset);
    for col in want.trial_columns {
        assert!(
            train.trials.columns.contains_key(*col),
            "{dataset}: train trials lack `{col}`"
        );
    }
    match want.behaviour {
        Some(name) => {
            let s = train.series.iter().find(|s| s.name == name).unwrap();
            assert_eq!(s.channels, ["x", "y"], "{dataset}");
        }
        None => assert!(train.series.is_empty(), "{dataset}"),
    }
}

/// The truth names the file's units, and binned spike counts scatter around the summed truth
/// as Poisson counts do: Pearson's χ²/bin near 1, and well below that of a constant-rate model.
fn check_truth(nwb_path: &Path, truth_path: &Path) {
    let file = nwb::read(nwb_path).unwrap();
    let truth = Truth::read(truth_path).unwrap();
    assert_eq!(truth.unit_ids, file.units.ids);
    let bin = 0.02;
    let (mut chi_truth, mut chi_flat, mut bins) = (0.0, 0.0, 0usize);
    let (mut total, mut expected) = (0.0, 0.0);
    for (u, spikes) in file.units.spike_times.iter().enumerate() {
        let mut counts = Vec::new();
        let mut means = Vec::new();
        for iv in &file.units.obs_intervals[u] {
            let n = ((iv[1] - iv[0]) / bin + 1e-9).floor() as usize;
            means.extend(truth.expected_counts(u, iv[0], bin, n));
            for i in 0..n {
                let (a, b) = (iv[0] + i as f64 * bin, iv[0] + (i + 1) as f64 * bin);
                let lo = spikes.partition_point(|&t| t < a - 1e-9);
                let hi = spikes.partition_point(|&t| t < b - 1e-9);
                counts.push((hi - lo) as f64);
            }
        }
        let flat = counts.iter().sum::<f64>() / counts.len() as f64;
        for (&n, &mu) in counts.iter().zip(&means) {
            chi_truth += (n - mu).powi(2) / mu;
            chi_flat += (n - flat).powi(2) / flat.max(1e-9);
        }
        bins += counts.len();
        total += counts.iter().sum::<f64>();
        expected += means.iter().sum::<f64>();
    }
    let (chi_truth, chi_flat) = (chi_truth / bins as f64, chi_flat / bins as f64);
    let name = nwb_path.display();
    assert!(
        (total - expected).abs() < 5.0 * expected.sqrt(),
        "{name}: {total} spikes, truth expects {expected:.1}"
    );
    assert!(
        (0.85..1.15).contains(&chi_truth),
        "{name}: χ²/bin {chi_truth:.3} over {bins} bins"
    );
    assert!(
        chi_flat > chi_truth + 0.05,
        "{name}: the truth should explain the counts better than a constant rate \
         ({chi_truth:.3} vs {chi_flat:.3})"
    );
}

fn read3(file: &H5File, name: &str) -> (Vec<f64>, Vec<usize>) {
    let a = file.read_f64(name).unwrap();
    (a.iter().copied().collect(), a.shape().to_vec())
}

/// Every rate array of a submission, filled with each neuron's mean training count per bin.
fn write_mean_rate_submission(split_dir: &Path, group: &str, path: &Path) {
    let train = H5File::open(&split_dir.join("train_input.h5")).unwrap();
    let eval = H5File::open(&split_dir.join("eval_input.h5")).unwrap();
    let target = H5File::open(&split_dir.join("eval_target.h5")).unwrap();
    let mut out = AtomicH5::create(path).unwrap();
    for part in ["heldin", "heldout"] {
        let (spikes, shape) = read3(&train, &format!("train_spikes_{part}"));
        let n = shape[2];
        let means: Vec<f64> = (0..n)
            .map(|j| {
                let v: Vec<f64> = spikes
                    .iter()
                    .skip(j)
                    .step_by(n)
                    .copied()
                    .filter(|v| !v.is_nan())
                    .collect();
                (v.iter().sum::<f64>() / v.len() as f64).max(1e-3)
            })
            .collect();
        let fill = |trials: usize, bins: usize| -> Vec<f32> {
            (0..trials * bins)
                .flat_map(|_| means.iter().map(|&m| m as f32))
                .collect()
        };
        let eval_shape = eval.shape("eval_spikes_heldin").unwrap();
        let fwd_shape = target
            .shape(&format!("{group}/eval_spikes_{part}_forward"))
            .unwrap();
        for (key, trials, bins) in [
            (format!("train_rates_{part}"), shape[0], shape[1]),
            (format!("eval_rates_{part}"), eval_shape[0], eval_shape[1]),
            (
                format!("eval_rates_{part}_forward"),
                fwd_shape[0],
                fwd_shape[1],
            ),
        ] {
            out.write(
                &format!("{group}/{key}"),
                Data::F32(&fill(trials, bins), vec![trials, bins, n]),
            )
            .unwrap();
        }
    }
    out.commit().unwrap();
}

/// Same seed, same bytes (NWB and truth); another seed, other spikes.
fn deterministic(dataset: DatasetName) {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let ra = synth(a.path(), dataset, Scale::Tiny, 11).unwrap();
    let rb = synth(b.path(), dataset, Scale::Tiny, 11).unwrap();
    let rc = synth(c.path(), dataset, Scale::Tiny, 12).unwrap();
    let all = |r: &langevin::synth::SynthReport| -> Vec<PathBuf> {
        r.files.iter().chain(&r.truth).cloned().collect()
    };
    for (x, y) in all(&ra).iter().zip(all(&rb)) {
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(&y).unwrap(),
            "{dataset}: {} differs between runs",
            x.display()
        );
    }
    assert!(std::fs::read(&ra.files[1]).unwrap() != std::fs::read(&rc.files[1]).unwrap());
}

macro_rules! per_dataset {
    ($($name:ident => $dataset:expr),* $(,)?) => {
        mod end_to_end {
            use super::*;
            $(#[test] fn $name() { end_to_end($dataset) })*
        }
        mod deterministic {
            use super::*;
            $(#[test] fn $name() { deterministic($dataset) })*
        }
    };
}

per_dataset! {
    mc_maze => DatasetName::McMaze,
    mc_rtt => DatasetName::McRtt,
    area2_bump => DatasetName::Area2Bump,
    dmfc_rsg => DatasetName::DmfcRsg,
    mc_maze_large => DatasetName::McMazeLarge,
    mc_maze_medium => DatasetName::McMazeMedium,
    mc_maze_small => DatasetName::McMazeSmall,
    lorenz => DatasetName::Lorenz,
}

#[test]
fn full_scale_counts_are_the_real_datasets() {
    // Only the plan's counts: full-size files are for benchmarks, not tests.
    for (dataset, units, trials) in [
        (DatasetName::McMaze, (137, 45), (1721, 574, 574)),
        (DatasetName::McRtt, (98, 32), (810, 270, 272)),
        (DatasetName::Area2Bump, (49, 16), (272, 92, 98)),
        (DatasetName::DmfcRsg, (45, 15), (741, 248, 252)),
    ] {
        let c = langevin::synth::counts(dataset, Scale::Full);
        assert_eq!((c.heldin, c.heldout), units, "{dataset}");
        assert_eq!((c.train, c.val, c.test), trials, "{dataset}");
    }
}
