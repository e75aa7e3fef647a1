//! The genuine DANDI file (MC_Maze_Small test phase, written by the original NWB tooling) loads,
//! and its eval inputs agree with a direct count from the raw spike times.

use std::path::Path;

use langevin::nlb::tensors::eval_input;
use langevin::nlb::{BinWidth, DatasetName, Phase, Session};
use langevin::nwb;

fn folder() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dandi")
}

#[test]
fn genuine_file_loads_units_intervals_and_trials() {
    let file = nwb::read(&folder().join("sub-Jenkins_ses-small_desc-test_ecephys.nwb")).unwrap();
    assert_eq!(file.units.ids.len(), 107);
    assert!(file.units.heldout.iter().all(|&h| !h));
    assert!(file.units.obs_intervals.iter().all(|iv| !iv.is_empty()));
    assert_eq!(file.trials.len, 100);
    assert!(file.trials.columns.contains_key("move_onset_time"));
    assert!(file.series.is_empty(), "test files carry no behaviour");
    let session = Session::load(&folder()).unwrap();
    assert_eq!(session.heldin.len(), 107);
    assert!(session.heldout.is_empty());
    assert!(session.trials.split().iter().all(|s| s == "test"));
}

#[test]
fn genuine_eval_input_matches_direct_counts() {
    let session = Session::load(&folder()).unwrap();
    let params = DatasetName::McMazeSmall.params();
    let input = eval_input(&session, &params, BinWidth::ALL[0], Phase::Test).unwrap();
    assert_eq!(input.heldin.shape, vec![100, 140, 107]);
    assert!(
        input.heldout.is_none(),
        "test trials have no held-out spikes"
    );

    let file = nwb::read(&folder().join("sub-Jenkins_ses-small_desc-test_ecephys.nwb")).unwrap();
    let onset = file.trials.num("move_onset_time").unwrap();
    let mut order: Vec<usize> = (0..file.units.ids.len()).collect();
    order.sort_by_key(|&u| file.units.ids[u]);
    for trial in [0usize, 37, 99] {
        let first = ((onset[trial] * 1000.0 - 250.0) / 5.0).ceil() as i64;
        for (col, &u) in order.iter().enumerate().step_by(13) {
            for bin in 0..140i64 {
                let j = first + bin;
                let direct = file.units.spike_times[u]
                    .iter()
                    .filter(|&&t| ((t * 1000.0 + 1e-6).floor() as i64).div_euclid(5) == j)
                    .count() as f32;
                let ours = input.heldin.data[((trial * 140) + bin as usize) * 107 + col];
                assert_eq!(ours, direct, "trial {trial} unit {col} bin {bin}");
            }
        }
    }
}
