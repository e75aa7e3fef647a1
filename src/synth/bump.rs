//! area2_bump: centre-out reaches, half of them preceded by a passive bump of the hand.
//!
//! Active reaches have the maze family's rotational latent; a bump (`ctr_hold_bump`) drives a
//! faster, sensory transient along the bump direction and is followed later in the trial by the
//! active reach to the target. Incomplete trials (`split == "none"`, result `I`) have no movement
//! onset, as in the DANDI file. Recording comes in blocks that cover the inter-trial gaps, and
//! the hand is tracked throughout. Area 2 is sensory: the hand leads the latent (lag −20 ms).

use std::f64::consts::TAU;

use rand::rngs::StdRng;
use rand::Rng;

use super::maze::reach_latent;
use super::{
    deal, ms, ms_index, uniform_ms, Counts, FilePlan, Kinematics, Latents, Plan, Population, Scale,
    TableBuilder,
};
use crate::nlb::DatasetName;
use crate::nwb::Series;

const DIM: usize = 4;
/// 8 directions × (active reach, passive bump).
const N_COND: usize = 16;
const BLOCK: usize = 60;
const MARGIN_S: f64 = 0.5;

pub(super) fn counts(scale: Scale) -> Counts {
    match scale {
        Scale::Tiny => Counts::new([24, 8, 8, 2], 22, 8),
        Scale::Small => Counts::new([180, 60, 60, 12], 40, 14),
        Scale::Full => Counts::new([272, 92, 98, 26], 49, 16),
    }
}

/// Latent of a passive bump at `angle`, `t` s after onset: a brief, fast rotation plus a
/// sustained component along the bump direction.
fn bump_latent(angle: f64, t: f64) -> [f64; 4] {
    let env = (-((t - 0.06) / 0.1).powi(2)).exp();
    let hold = (-((t - 0.15) / 0.2).powi(2)).exp();
    let phase = TAU * 3.0 * t + angle;
    [
        1.2 * env * phase.cos(),
        1.2 * env * phase.sin(),
        hold * angle.cos(),
        hold * angle.sin(),
    ]
}

/// One movement: an active reach or a passive bump.
struct Movement {
    onset: f64,
    angle: f64,
    passive: bool,
}

struct Trial {
    start: f64,
    stop: f64,
    target_on: f64,
    go_cue: f64,
    /// NaN for incomplete trials.
    onset: f64,
    bump_time: f64,
    cond_dir: f64,
    target_dir: f64,
    bump: bool,
    ctr_hold: f64,
    split: &'static str,
    movements: Vec<Movement>,
}

/// Direction (degrees) and bump of a condition. The bump alternates fastest, so a split too
/// small to hold every condition still has both kinds of trial, which the two decode masks need.
fn directions(cond: usize) -> (f64, bool) {
    (45.0 * (cond / 2) as f64, cond % 2 == 1)
}

fn trial(start: f64, split: &'static str, cond: usize, rng: &mut StdRng) -> Trial {
    let (dir, bump) = directions(cond);
    let ctr_hold = uniform_ms(rng, 0.5, 0.8);
    let mut t = Trial {
        start,
        stop: f64::NAN,
        target_on: f64::NAN,
        go_cue: f64::NAN,
        onset: f64::NAN,
        bump_time: f64::NAN,
        cond_dir: dir,
        target_dir: dir,
        bump,
        ctr_hold,
        split,
        movements: Vec::new(),
    };
    let reach = |onset: f64, angle_deg: f64| Movement {
        onset,
        angle: angle_deg.to_radians(),
        passive: false,
    };
    if split == "none" {
        t.bump = false;
        t.target_on = ms(start + ctr_hold);
        t.stop = ms(t.target_on + uniform_ms(rng, 0.4, 0.8));
    } else if bump {
        t.bump_time = ms(start + uniform_ms(rng, 0.4, 0.6));
        t.onset = ms(t.bump_time + uniform_ms(rng, 0.01, 0.03));
        t.movements.push(Movement {
            onset: t.onset,
            angle: dir.to_radians(),
            passive: true,
        });
        // The reach that follows goes to an unrelated target.
        t.target_dir = 45.0 * rng.random_range(0..8) as f64;
        t.target_on = ms(t.onset + uniform_ms(rng, 0.6, 0.8));
        t.go_cue = ms(t.target_on + uniform_ms(rng, 0.2, 0.4));
        let second = ms(t.go_cue + uniform_ms(rng, 0.15, 0.3));
        t.movements.push(reach(second, t.target_dir));
        t.stop = ms(second + uniform_ms(rng, 0.6, 0.8));
    } else {
        t.target_on = ms(start + ctr_hold);
        t.go_cue = ms(t.target_on + uniform_ms(rng, 0.2, 0.4));
        t.onset = ms(t.go_cue + uniform_ms(rng, 0.15, 0.3));
        t.movements.push(reach(t.onset, dir));
        t.stop = ms(t.onset + uniform_ms(rng, 0.9, 1.2));
    }
    t
}

struct Recording {
    trials: Vec<Trial>,
    blocks: Vec<(i64, i64)>,
    latents: Latents,
}

fn record(dealt: &[(&'static str, usize)], rng: &mut StdRng) -> Recording {
    let mut trials = Vec::new();
    let mut blocks = Vec::new();
    let mut clock = 0.5;
    for chunk in dealt.chunks(BLOCK) {
        let block_start = clock;
        let mut start = ms(block_start + MARGIN_S);
        for &(split, cond) in chunk {
            let t = trial(start, split, cond, rng);
            start = ms(t.stop + uniform_ms(rng, 0.3, 0.6));
            trials.push(t);
        }
        let last_stop = trials.last().map_or(block_start, |t: &Trial| t.stop);
        let block_end = ms(last_stop + MARGIN_S);
        blocks.push((ms_index(block_start), ms_index(block_end)));
        clock = block_end + uniform_ms(rng, 1.0, 3.0);
    }
    let len = blocks.last().map_or(0, |b| b.1) as usize;
    let mut latents = Latents::zeros(len, DIM);
    for m in trials.iter().flat_map(|t| &t.movements) {
        let onset = ms_index(m.onset);
        for k in (onset - 1200).max(0)..(onset + 1000).min(len as i64) {
            let t = (k - onset) as f64 / 1000.0;
            let x = if m.passive {
                bump_latent(m.angle, t)
            } else {
                reach_latent(m.angle, 2.0, t)
            };
            latents.add(k as usize, &x);
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
    let (_, subject) = DatasetName::Area2Bump.dandi_folder();
    let lag = DatasetName::Area2Bump.params().lag;

    let test = record(&deal(&[("test", c.test)], N_COND, rng), rng);
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
    let splits = [("train", c.train), ("val", c.val), ("none", c.none)];
    let train = record(&deal(&splits, N_COND, rng), rng);
    let hand = Kinematics::read_out(&train.latents, &train.blocks, lag, 100.0, rng);
    let series: Vec<Series> = vec![
        hand.series("hand_pos", &["x", "y"], hand.pos.clone()),
        hand.series("hand_vel", &["x", "y"], hand.vel.clone()),
    ];
    let trials = &train.trials;
    let col = |f: &dyn Fn(&Trial) -> f64| trials.iter().map(f).collect::<Vec<f64>>();
    let mut table = common_columns(trials);
    table
        .num("target_on_time", col(&|t| t.target_on))
        .num("go_cue_time", col(&|t| t.go_cue))
        .num("bump_time", col(&|t| t.bump_time))
        .num(
            "bump_dir",
            col(&|t| if t.bump { t.cond_dir } else { f64::NAN }),
        )
        .num("cond_dir", col(&|t| t.cond_dir))
        .num("target_dir", col(&|t| t.target_dir))
        .num("ctr_hold", col(&|t| t.ctr_hold))
        .num("ctr_hold_bump", col(&|t| f64::from(u8::from(t.bump))))
        .text(
            "result",
            trials
                .iter()
                .map(|t| if t.split == "none" { "I" } else { "R" }.to_string())
                .collect(),
        );
    let train_file = FilePlan {
        name: format!("{subject}_desc-train_behavior+ecephys.nwb"),
        trials: table.build(),
        bool_columns: &["ctr_hold_bump"],
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

fn common_columns(trials: &[Trial]) -> TableBuilder {
    TableBuilder::shared_columns(trials, "move_onset_time", |t| {
        (t.start, t.stop, t.onset, t.split)
    })
}
