//! dmfc_rsg: the ready-set-go interval reproduction task.
//!
//! The monkey measures the sample interval `ts` between Ready and Set and reproduces it as `tp`
//! from Set to Go, regressing towards the mean of the block's prior (short or long). The latent
//! is a timing ring: its phase advances at a fixed speed during measurement and at a speed
//! inversely proportional to `tp` during production, so neural speed predicts `tp` as the
//! benchmark's tp corr assumes; two more dimensions hold the context (effector, target side).
//! Behaviour lives in the trials table (`is_eye, theta, is_short, ts, tp`), not in a series.

use std::f64::consts::PI;

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::{
    deal, ms, ms_index, uniform_ms, Counts, FilePlan, Latents, Plan, Population, Scale,
    TableBuilder,
};
use crate::nlb::DatasetName;

const DIM: usize = 4;
/// is_eye × theta × is_short.
const N_COND: usize = 8;
const BLOCK: usize = 100;
const SHORT_TS: [f64; 5] = [480.0, 560.0, 640.0, 720.0, 800.0];
const LONG_TS: [f64; 5] = [800.0, 900.0, 1000.0, 1100.0, 1200.0];
/// Share of training trials whose `tp` is far off and flagged `is_outlier`.
const OUTLIER_RATE: f64 = 0.03;

pub(super) fn counts(scale: Scale) -> Counts {
    match scale {
        Scale::Tiny => Counts::new([32, 16, 16, 4], 22, 8),
        Scale::Small => Counts::new([180, 64, 64, 8], 40, 14),
        Scale::Full => Counts::new([741, 248, 252, 48], 45, 15),
    }
}

struct Trial {
    start: f64,
    fix: f64,
    target_on: f64,
    ready: f64,
    set: f64,
    go: f64,
    target_acq: f64,
    stop: f64,
    iti: f64,
    is_eye: bool,
    theta: f64,
    is_short: bool,
    ts: f64,
    tp: f64,
    outlier: bool,
    split: &'static str,
}

/// `tp` (ms) for a sample interval: a Bayesian-looking regression to the prior mean with scalar
/// noise, or, for an outlier, a gross error. Capped so Set→Go fits the 1500 ms PSTH segment.
fn produced(ts: f64, is_short: bool, outlier: bool, rng: &mut StdRng) -> f64 {
    let prior_mean = if is_short { 640.0 } else { 1000.0 };
    let tp = if outlier {
        let f = if rng.random::<bool>() {
            0.3 + 0.2 * rng.random::<f64>()
        } else {
            1.5 + 0.3 * rng.random::<f64>()
        };
        ts * f
    } else {
        let noise = Normal::new(0.0, 0.07 * ts).expect("valid normal");
        0.8 * ts + 0.2 * prior_mean + noise.sample(rng)
    };
    tp.round().clamp(250.0, 1450.0)
}

fn trial(start: f64, split: &'static str, cond: usize, rng: &mut StdRng) -> Trial {
    let is_short = cond & 4 != 0;
    let prior = if is_short { SHORT_TS } else { LONG_TS };
    let ts = prior[rng.random_range(0..prior.len())];
    let outlier = split == "train" && rng.random::<f64>() < OUTLIER_RATE;
    let tp = produced(ts, is_short, outlier, rng);
    let fix = ms(start + uniform_ms(rng, 0.3, 0.6));
    let target_on = ms(fix + uniform_ms(rng, 0.3, 0.9));
    let ready = ms(target_on + uniform_ms(rng, 0.4, 0.9));
    let set = ms(ready + ts / 1000.0);
    let go = ms(set + tp / 1000.0);
    let is_eye = cond & 1 != 0;
    let reach_s = if is_eye { (0.02, 0.06) } else { (0.15, 0.3) };
    Trial {
        start,
        fix,
        target_on,
        ready,
        set,
        go,
        target_acq: ms(go + uniform_ms(rng, reach_s.0, reach_s.1)),
        stop: ms(go + 0.4),
        iti: if outlier { 1.2 } else { 0.5 },
        is_eye,
        theta: if cond & 2 != 0 { 180.0 } else { 0.0 },
        is_short,
        ts,
        tp,
        outlier,
        split,
    }
}

/// The ring and context latents of one trial, `t` s on the file clock.
fn trial_latent(tr: &Trial, t: f64) -> [f64; 4] {
    let context = [
        0.6 * if tr.is_eye { 1.0 } else { -1.0 },
        0.6 * (tr.theta.to_radians()).cos(),
    ];
    let phase_at = |t: f64| {
        if t < tr.ready {
            0.0
        } else if t < tr.set {
            PI * (t - tr.ready)
        } else {
            PI * (tr.set - tr.ready) + PI * (t - tr.set) / (tr.tp / 1000.0)
        }
    };
    let (phase, ring, ctx) = if t < tr.go {
        (phase_at(t), if t < tr.ready { 0.0 } else { 1.0 }, 1.0)
    } else {
        let decay = (-(t - tr.go) / 0.15).exp();
        (phase_at(tr.go), decay, decay)
    };
    [
        ring * phase.cos(),
        ring * phase.sin(),
        ctx * context[0],
        ctx * context[1],
    ]
}

struct Recording {
    trials: Vec<Trial>,
    blocks: Vec<(i64, i64)>,
    latents: Latents,
}

fn record(dealt: &[(&'static str, usize)], rng: &mut StdRng) -> Recording {
    let mut trials: Vec<Trial> = Vec::new();
    let mut blocks = Vec::new();
    let mut clock = 0.5;
    for chunk in dealt.chunks(BLOCK) {
        let block_start = clock;
        let mut start = ms(block_start + 0.5);
        for &(split, cond) in chunk {
            let t = trial(start, split, cond, rng);
            start = ms(t.stop + t.iti);
            trials.push(t);
        }
        let last_stop = trials.last().map_or(block_start, |t| t.stop);
        // Covers the jittered (up to +300 ms) window and its 200 ms forward window.
        let block_end = ms(last_stop + 0.6);
        blocks.push((ms_index(block_start), ms_index(block_end)));
        clock = block_end + uniform_ms(rng, 1.0, 3.0);
    }
    let len = blocks.last().map_or(0, |b| b.1) as usize;
    let mut latents = Latents::zeros(len, DIM);
    for t in &trials {
        // The context appears with the target; the ring decays within the inter-trial gap.
        let end = ms_index(t.stop + 0.45).min(len as i64);
        for k in ms_index(t.target_on)..end {
            latents.add(k as usize, &trial_latent(t, k as f64 / 1000.0));
        }
    }
    Recording {
        trials,
        blocks,
        latents,
    }
}

pub(super) fn plan(c: Counts, rng: &mut StdRng) -> Plan {
    let population = Population::draw(c.heldin, c.heldout, DIM, 0.8, rng);
    let (_, subject) = DatasetName::DmfcRsg.dandi_folder();
    let none_test = c.none / 4;

    let test = record(
        &deal(&[("test", c.test), ("none", none_test)], N_COND, rng),
        rng,
    );
    let mut test_table = common_columns(&test.trials);
    let test_file = FilePlan {
        name: format!("{subject}_desc-test_ecephys.nwb"),
        trials: test_table.build(),
        bool_columns: &[],
        observed: test.blocks,
        latents: test.latents,
        with_heldout: false,
        series: Vec::new(),
    };
    let splits = [
        ("train", c.train),
        ("val", c.val),
        ("none", c.none - none_test),
    ];
    let train = record(&deal(&splits, N_COND, rng), rng);
    let trials = &train.trials;
    let col = |f: &dyn Fn(&Trial) -> f64| trials.iter().map(f).collect::<Vec<f64>>();
    let flag = |b: bool| f64::from(u8::from(b));
    let mut table = common_columns(trials);
    table
        .num("fix_on_time", col(&|t| t.start))
        .num("fix_time", col(&|t| t.fix))
        .num("target_on_time", col(&|t| t.target_on))
        .num("ready_time", col(&|t| t.ready))
        .num("set_time", col(&|t| t.set))
        .num("target_acq_time", col(&|t| t.target_acq))
        .num(
            "reward_time",
            col(&|t| {
                if t.outlier {
                    f64::NAN
                } else {
                    ms(t.target_acq + 0.03)
                }
            }),
        )
        .num("is_eye", col(&|t| flag(t.is_eye)))
        .num("theta", col(&|t| t.theta))
        .num("is_short", col(&|t| flag(t.is_short)))
        .num("ts", col(&|t| t.ts))
        .num("tp", col(&|t| t.tp))
        .num("is_outlier", col(&|t| flag(t.outlier)))
        .num("iti", col(&|t| t.iti * 1000.0));
    let train_file = FilePlan {
        name: format!("{subject}_desc-train_ecephys.nwb"),
        trials: table.build(),
        bool_columns: &["is_eye", "is_short", "is_outlier"],
        observed: train.blocks,
        latents: train.latents,
        with_heldout: true,
        series: Vec::new(),
    };
    Plan {
        population,
        files: vec![test_file, train_file],
    }
}

/// What the test file has too: trial bounds, Go and the split.
fn common_columns(trials: &[Trial]) -> TableBuilder {
    TableBuilder::shared_columns(trials, "go_time", |t| (t.start, t.stop, t.go, t.split))
}
