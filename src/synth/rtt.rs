//! mc_rtt: continuous self-paced reaches to random targets, cut into back-to-back 600 ms trials.
//!
//! There are no conditions: reaches follow each other every 0.6–1 s in random directions,
//! independent of the trial grid, each with the maze family's rotational latent. Recording comes
//! in long blocks (observation intervals) with gaps between them, as in the DANDI file, and the
//! finger is tracked throughout each block.

use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::maze::reach_latent;
use super::{
    deal, ms, ms_index, uniform_ms, Counts, FilePlan, Kinematics, Latents, Plan, Population, Scale,
    TableBuilder,
};
use crate::nlb::DatasetName;
use crate::nwb::Series;

const DIM: usize = 4;
const TRIAL_S: f64 = 0.6;
/// Trials per recording block.
const BLOCK: usize = 40;
/// Observed time before a block's first trial and after its last (≥ the 200 ms forward window).
const MARGIN_S: f64 = 0.3;

pub(super) fn counts(scale: Scale) -> Counts {
    match scale {
        Scale::Tiny => Counts::new([24, 8, 8, 0], 22, 8),
        Scale::Small => Counts::new([180, 60, 60, 0], 60, 20),
        Scale::Full => Counts::new([810, 270, 272, 0], 98, 32),
    }
}

struct Trial {
    start: f64,
    split: &'static str,
}

/// The trials, the observed blocks (ms) and the latents of one file.
struct Recording {
    trials: Vec<Trial>,
    blocks: Vec<(i64, i64)>,
    latents: Latents,
}

fn record(splits: &[&'static str], rng: &mut StdRng) -> Recording {
    let mut trials = Vec::new();
    let mut blocks = Vec::new();
    let mut clock = 1.0;
    for chunk in splits.chunks(BLOCK) {
        let block_start = clock;
        for (i, &split) in chunk.iter().enumerate() {
            trials.push(Trial {
                start: ms(block_start + MARGIN_S + i as f64 * TRIAL_S),
                split,
            });
        }
        let block_end = ms(block_start + 2.0 * MARGIN_S + chunk.len() as f64 * TRIAL_S);
        blocks.push((ms_index(block_start), ms_index(block_end)));
        clock = block_end + uniform_ms(rng, 1.0, 3.0);
    }
    let len = blocks.last().map_or(0, |b| b.1) as usize;
    let mut latents = Latents::zeros(len, DIM);
    for &(a, b) in &blocks {
        add_reaches(&mut latents, a, b, rng);
    }
    Recording {
        trials,
        blocks,
        latents,
    }
}

/// Reaches every 0.6–1 s through the block; each one's latent is added where it is not negligible.
fn add_reaches(latents: &mut Latents, a: i64, b: i64, rng: &mut StdRng) {
    let mut onset = a + (400.0 * rng.random::<f64>()) as i64;
    while onset < b + 1000 {
        let angle = TAU * rng.random::<f64>();
        let freq = 1.5 + rng.random::<f64>();
        for k in (onset - 1200).max(a)..(onset + 1000).min(b) {
            let t = (k - onset) as f64 / 1000.0;
            latents.add(k as usize, &reach_latent(angle, freq, t));
        }
        onset += 600 + (400.0 * rng.random::<f64>()) as i64;
    }
}

fn table(trials: &[Trial]) -> TableBuilder {
    let mut table = TableBuilder::new(trials.len());
    table
        .num("start_time", trials.iter().map(|t| t.start).collect())
        .num(
            "stop_time",
            trials.iter().map(|t| ms(t.start + TRIAL_S)).collect(),
        )
        .text(
            "split",
            trials.iter().map(|t| t.split.to_string()).collect(),
        );
    table
}

pub(super) fn plan(c: Counts, rng: &mut StdRng) -> Plan {
    let population = Population::draw(c.heldin, c.heldout, DIM, 0.8, rng);
    let (_, subject) = DatasetName::McRtt.dandi_folder();
    let lag = DatasetName::McRtt.params().lag;
    let splits = |dealt: Vec<(&'static str, usize)>| dealt.into_iter().map(|(s, _)| s).collect();
    let test: Vec<_> = splits(deal(&[("test", c.test)], 1, rng));
    let train: Vec<_> = splits(deal(&[("train", c.train), ("val", c.val)], 1, rng));

    let test = record(&test, rng);
    let test_file = FilePlan {
        name: format!("{subject}_desc-test_ecephys.nwb"),
        trials: table(&test.trials).build(),
        bool_columns: &[],
        observed: test.blocks,
        latents: test.latents,
        with_heldout: false,
        series: Vec::new(),
    };
    let train = record(&train, rng);
    let series = finger_series(&train, lag, rng);
    let train_file = FilePlan {
        name: format!("{subject}_desc-train_behavior+ecephys.nwb"),
        trials: table(&train.trials).build(),
        bool_columns: &[],
        observed: train.blocks,
        latents: train.latents,
        with_heldout: true,
        series,
    };
    Plan {
        population,
        files: vec![test_file, train_file],
    }
}

/// The file's behaviour: finger velocity (the decoded variable) and position, the cursor that
/// follows it, and the target, taken as where the finger will be 400 ms later.
fn finger_series(rec: &Recording, lag: i64, rng: &mut StdRng) -> Vec<Series> {
    let hand = Kinematics::read_out(&rec.latents, &rec.blocks, lag, 100.0, rng);
    let depth = Normal::new(-20.0, 0.2).expect("valid normal");
    let n = hand.times.len();
    let finger_pos: Vec<f64> = hand
        .pos
        .chunks(2)
        .flat_map(|p| [p[0], p[1], depth.sample(rng)])
        .collect();
    // Samples run block by block; the look-ahead stays within the sample's block.
    let mut target = Vec::with_capacity(2 * n);
    let mut block_end = 0;
    for i in 0..n {
        if i >= block_end {
            let row = ms_index(hand.times[i]);
            let (_, b) = rec
                .blocks
                .iter()
                .find(|&&(a, b)| (a..b).contains(&row))
                .copied()
                .unwrap_or((row, row + 1));
            block_end = i + (b - row) as usize;
        }
        let j = (i + 400).min(block_end - 1);
        target.extend([hand.pos[2 * j], hand.pos[2 * j + 1]]);
    }
    vec![
        hand.series("cursor_pos", &["x", "y"], hand.pos.clone()),
        hand.series("finger_pos", &["x", "y", "z"], finger_pos),
        hand.series("finger_vel", &["x", "y"], hand.vel.clone()),
        hand.series("target_pos", &["x", "y"], target),
    ]
}
