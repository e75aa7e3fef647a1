//! The maze family (mc_maze and its large/medium/small scaling sets): delayed centre-out reaches.
//!
//! Each trial's latent is a condition-dependent rotation that starts at movement onset, preceded
//! by a preparatory state that points at the reach direction, the structure jPCA finds in motor
//! cortex. Trials are recorded one by one (observation intervals are the trials), as in the
//! DANDI files.

use std::f64::consts::TAU;

use rand::rngs::StdRng;

use super::{
    deal, ms, ms_index, uniform_ms, Counts, FilePlan, Kinematics, Latents, Plan, Population, Scale,
    TableBuilder,
};
use crate::nlb::DatasetName;

/// Reach conditions: 4 `trial_type`s × 3 `trial_version`s.
const N_COND: usize = 12;
const DIM: usize = 4;

pub(super) fn counts(dataset: DatasetName, scale: Scale) -> Counts {
    match (scale, dataset) {
        (Scale::Tiny, _) => Counts::new([24, 8, 8, 0], 22, 8),
        (Scale::Small, _) => Counts::new([180, 60, 60, 0], 60, 20),
        (Scale::Full, DatasetName::McMazeLarge) => Counts::new([375, 125, 100, 0], 122, 40),
        (Scale::Full, DatasetName::McMazeMedium) => Counts::new([188, 62, 100, 0], 114, 38),
        (Scale::Full, DatasetName::McMazeSmall) => Counts::new([75, 25, 100, 0], 107, 35),
        (Scale::Full, _) => Counts::new([1721, 574, 574, 0], 137, 45),
    }
}

/// Latent state `t` seconds after movement onset of a reach at `angle` (radians): a rotation of
/// frequency `freq` Hz under a bell-shaped envelope, preceded by a preparatory state along the
/// reach direction. Negligible outside about −1.2 s … +1 s.
pub(super) fn reach_latent(angle: f64, freq: f64, t: f64) -> [f64; 4] {
    let env = (-((t - 0.15) / 0.2).powi(2)).exp();
    let prep = (-((t + 0.2) / 0.25).powi(2)).exp();
    let phase = TAU * freq * t + angle;
    [
        env * phase.cos(),
        env * phase.sin(),
        prep * angle.cos(),
        prep * angle.sin(),
    ]
}

fn cond_latent(cond: usize, t: f64) -> [f64; 4] {
    let angle = TAU * cond as f64 / N_COND as f64;
    reach_latent(angle, 1.5 + 0.5 * (cond % 3) as f64, t)
}

struct Trial {
    start: f64,
    target_on: f64,
    go_cue: f64,
    onset: f64,
    stop: f64,
    cond: usize,
    split: &'static str,
}

/// Target shown, a delay, the go cue, a reaction time, the reach, then a short inter-trial gap.
fn schedule(dealt: &[(&'static str, usize)], rng: &mut StdRng) -> Vec<Trial> {
    let mut clock = 0.0;
    dealt
        .iter()
        .map(|&(split, cond)| {
            let start = clock;
            let target_on = start + uniform_ms(rng, 0.1, 0.2);
            let go_cue = target_on + uniform_ms(rng, 0.1, 0.4);
            let onset = go_cue + uniform_ms(rng, 0.25, 0.4);
            let stop = onset + uniform_ms(rng, 0.7, 0.9);
            clock = ms(stop + uniform_ms(rng, 0.05, 0.15));
            Trial {
                start,
                target_on: ms(target_on),
                go_cue: ms(go_cue),
                onset: ms(onset),
                stop: ms(stop),
                cond,
                split,
            }
        })
        .collect()
}

fn latents(trials: &[Trial]) -> Latents {
    let len = trials.last().map_or(0, |t| ms_index(t.stop)) as usize;
    let mut lat = Latents::zeros(len, DIM);
    for t in trials {
        for k in ms_index(t.start)..ms_index(t.stop) {
            lat.add(
                k as usize,
                &cond_latent(t.cond, k as f64 / 1000.0 - t.onset),
            );
        }
    }
    lat
}

pub(super) fn plan(dataset: DatasetName, c: Counts, rng: &mut StdRng) -> Plan {
    let population = Population::draw(c.heldin, c.heldout, DIM, 0.8, rng);
    let session = match dataset {
        DatasetName::McMaze => "full",
        DatasetName::McMazeLarge => "large",
        DatasetName::McMazeMedium => "medium",
        _ => "small",
    };
    let (_, subject) = dataset.dandi_folder();
    let lag = dataset.params().lag;

    let test = schedule(&deal(&[("test", c.test)], N_COND, rng), rng);
    let train = schedule(
        &deal(&[("train", c.train), ("val", c.val)], N_COND, rng),
        rng,
    );
    let test_file = FilePlan {
        name: format!("{subject}_ses-{session}_desc-test_ecephys.nwb"),
        trials: common_columns(&test).build(),
        bool_columns: &[],
        observed: observed(&test),
        latents: latents(&test),
        with_heldout: false,
        series: Vec::new(),
    };
    let train_latents = latents(&train);
    let hand = Kinematics::read_out(&train_latents, &observed(&train), lag, 100.0, rng);
    let series = vec![
        hand.series("hand_pos", &["x", "y"], hand.pos.clone()),
        hand.series("hand_vel", &["x", "y"], hand.vel.clone()),
    ];
    let mut table = common_columns(&train);
    let col = |f: &dyn Fn(&Trial) -> f64| train.iter().map(f).collect::<Vec<f64>>();
    table
        .num("trial_type", col(&|t| (t.cond / 3) as f64))
        .num("trial_version", col(&|t| (t.cond % 3) as f64))
        .num("target_on_time", col(&|t| t.target_on))
        .num("go_cue_time", col(&|t| t.go_cue))
        .num(
            "delay",
            col(&|t| ((t.go_cue - t.target_on) * 1000.0).round()),
        )
        .num("rt", col(&|t| ((t.onset - t.go_cue) * 1000.0).round()))
        .num("success", col(&|_| 1.0));
    let train_file = FilePlan {
        name: format!("{subject}_ses-{session}_desc-train_behavior+ecephys.nwb"),
        trials: table.build(),
        bool_columns: &["success"],
        observed: observed(&train),
        latents: train_latents,
        with_heldout: true,
        series,
    };
    Plan {
        population,
        files: vec![test_file, train_file],
    }
}

/// One observation interval per trial, as in the maze files.
fn observed(trials: &[Trial]) -> Vec<(i64, i64)> {
    trials
        .iter()
        .map(|t| (ms_index(t.start), ms_index(t.stop)))
        .collect()
}

/// The columns both files have: times, movement onset and split.
fn common_columns(trials: &[Trial]) -> TableBuilder {
    TableBuilder::shared_columns(trials, "move_onset_time", |t| {
        (t.start, t.stop, t.onset, t.split)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlb::preprocess::{run, PreprocessOptions};
    use crate::nlb::{BinWidth, Phase};
    use crate::synth::synth;

    #[test]
    fn tiny_maze_goes_through_preprocess() {
        let home = tempfile::tempdir().unwrap();
        let report = synth(home.path(), DatasetName::McMaze, Scale::Tiny, 7).unwrap();
        assert_eq!(report.files.len(), 2);
        let prep = tempfile::tempdir().unwrap();
        let reports = run(&PreprocessOptions {
            data_home: home.path().to_path_buf(),
            prep_home: prep.path().to_path_buf(),
            datasets: vec![DatasetName::McMaze],
            bin_widths: BinWidth::ALL.to_vec(),
            phases: Phase::ALL.to_vec(),
            files: Default::default(),
            progress: false,
            companion: Some(crate::synth::truth::companion),
        })
        .unwrap();
        let val20 = reports
            .iter()
            .find(|r| r.split.dir_name() == "mc_maze-20ms-val")
            .unwrap();
        assert_eq!((val20.train_trials, val20.eval_trials), (24, 8));
        assert_eq!((val20.heldin, val20.heldout, val20.bins), (22, 8, 35));
    }
}
