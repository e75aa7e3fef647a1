//! Preprocessing a full-size mc_maze-like session (182 neurons, 2,869 trials): every split.
//!
//! `cargo bench --bench preprocess`. The session is synthesized once with `langevin synth`'s
//! generator (`--scale full`) into a temporary DATA_HOME; each sample preprocesses one split.
//! Side by side with nlb_tools, see the README's `preprocess` section.

use std::path::PathBuf;
use std::sync::OnceLock;

use langevin::nlb::preprocess::{run, PreprocessOptions};
use langevin::nlb::{BinWidth, DatasetName, Phase};
use langevin::synth::{synth, Scale};

fn main() {
    divan::main();
}

fn data_home() -> &'static PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = std::env::temp_dir().join("langevin-bench-full-maze");
        if !dir.join("000128/sub-Jenkins").exists() {
            synth(&dir, DatasetName::McMaze, Scale::Full, 0).expect("synthesize full-size session");
        }
        dir
    })
}

fn preprocess(bw: usize, phase: Phase) {
    let prep = tempfile::tempdir().unwrap();
    let reports = run(&PreprocessOptions {
        data_home: data_home().clone(),
        prep_home: prep.path().to_path_buf(),
        datasets: vec![DatasetName::McMaze],
        bin_widths: vec![BinWidth::ALL[bw]],
        phases: vec![phase],
        files: Default::default(),
        progress: false,
        // A real session has no truth file: time only what a user's split costs.
        companion: None,
    })
    .unwrap();
    divan::black_box(reports);
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn mc_maze_full_05ms_val(bencher: divan::Bencher) {
    data_home();
    bencher.bench(|| preprocess(0, Phase::Val));
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn mc_maze_full_05ms_test(bencher: divan::Bencher) {
    data_home();
    bencher.bench(|| preprocess(0, Phase::Test));
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn mc_maze_full_20ms_val(bencher: divan::Bencher) {
    data_home();
    bencher.bench(|| preprocess(1, Phase::Val));
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn mc_maze_full_20ms_test(bencher: divan::Bencher) {
    data_home();
    bencher.bench(|| preprocess(1, Phase::Test));
}
