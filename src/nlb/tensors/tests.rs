use super::*;
use crate::nlb::session::{Intervals, TrialTable};
use crate::nlb::DatasetName;

/// Four 800 ms trials (train, train, val, val) on a 4 s session, every unit observed.
fn session() -> Session {
    let observed = || Intervals(vec![(0, 4000)]);
    let group = |ids: Vec<i64>| UnitGroup {
        spikes: vec![vec![5, 1003, 2010]; ids.len()],
        valid: vec![observed(); ids.len()],
        ids,
    };
    let mut trials = TrialTable {
        len: 4,
        ..Default::default()
    };
    let ms = |v: [i64; 4]| v.iter().map(|&t| Some(t * NS_PER_MS)).collect::<Vec<_>>();
    trials
        .times
        .insert("start_time".into(), ms([0, 1000, 2000, 3000]));
    trials
        .times
        .insert("end_time".into(), ms([800, 1800, 2800, 3800]));
    trials.strs.insert(
        "split".into(),
        ["train", "train", "val", "val"].map(String::from).to_vec(),
    );
    Session {
        folder: "mem".into(),
        files: vec![("mem.nwb".into(), 0)],
        len_ms: 4000,
        heldin: group(vec![1, 2]),
        heldout: group(vec![3]),
        series: Vec::new(),
        trials,
    }
}

struct Constant;
impl RowRates for Constant {
    fn expected(&self, _: bool, _: usize, _: i64) -> f64 {
        1.0
    }
}

/// Row index plus 10000 per unit, plus 100000 for the held-out group: every bin tells
/// which rows, unit and group it summed.
struct Tagged;
impl RowRates for Tagged {
    fn expected(&self, heldout: bool, unit: usize, row: i64) -> f64 {
        (row + 10_000 * unit as i64 + if heldout { 100_000 } else { 0 }) as f64
    }
}

fn counts(rates: &dyn RowRates) -> ExpectedCounts {
    let params = DatasetName::Lorenz.params();
    let bw: BinWidth = "20".parse().unwrap();
    expected_counts(&session(), &params, bw, Phase::Val, rates).unwrap()
}

fn all(c: &ExpectedCounts) -> [&Tensor<f32>; 6] {
    [
        &c.train_heldin,
        &c.train_heldout,
        &c.eval_heldin,
        &c.eval_heldout,
        &c.eval_heldin_forward,
        &c.eval_heldout_forward,
    ]
}

#[test]
fn constant_rows_give_q_per_bin_on_the_spike_tensors_grid() {
    let c = counts(&Constant);
    let bw: BinWidth = "20".parse().unwrap();
    let s = session();
    let t = build_split(&s, &DatasetName::Lorenz.params(), bw, Phase::Val).unwrap();
    let target = t.target.unwrap();
    let spikes = [
        &t.train.heldin,
        &t.train.heldout,
        &t.eval.heldin,
        t.eval.heldout.as_ref().unwrap(),
        &target.eval_spikes_heldin_forward,
        &target.eval_spikes_heldout_forward,
    ];
    for (e, s) in all(&c).into_iter().zip(spikes) {
        assert_eq!(e.shape, s.shape);
        assert!(!e.data.is_empty());
        assert!(e.data.iter().all(|&v| v == 20.0), "{:?}", e.data);
    }
    assert_eq!(c.train_heldin.shape, vec![2, 30, 2]);
    assert_eq!(c.eval_heldout_forward.shape, vec![2, 10, 1]);
}

#[test]
fn bins_sum_their_rows_of_the_right_unit_and_group() {
    let c = counts(&Tagged);
    let bin = |first_row: i64, tag: i64| -> f32 {
        (first_row..first_row + 20).map(|r| r + tag).sum::<i64>() as f32
    };
    // Train trial 1 starts at 1000 ms: its bin 3 covers rows 1060..1080.
    let t = &c.train_heldin;
    assert_eq!(t.data[(30 + 3) * 2 + 1], bin(1060, 10_000));
    assert_eq!(t.data[(30 + 3) * 2], bin(1060, 0));
    // Eval trial 0 starts at 2000 ms; its forward window at 2600 ms.
    assert_eq!(c.eval_heldout.data[0], bin(2000, 100_000));
    assert_eq!(c.eval_heldout_forward.data[0], bin(2600, 100_000));
    assert_eq!(c.eval_heldin_forward.data[10 * 2 + 1], bin(3600, 10_000));
}
