//! Every split of every fixture dataset must match the reference pipeline's files:
//! spikes, masks, indices and jitters exactly, behaviour and PSTHs to 1e-6 relative.

use std::path::{Path, PathBuf};

use langevin::h5::H5File;
use langevin::nlb::files::SplitFiles;
use langevin::nlb::preprocess::{run, PreprocessOptions};
use langevin::nlb::{BinWidth, DatasetName, Phase};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nlb")
}

fn datasets_in(file: &H5File, group: &str, out: &mut Vec<String>) {
    for name in file.members(group).unwrap() {
        let path = if group == "/" {
            name
        } else {
            format!("{group}/{name}")
        };
        if file.is_group(&path) {
            datasets_in(file, &path, out);
        } else {
            out.push(path);
        }
    }
}

fn compare_files(reference: &Path, ours: &Path) -> Vec<String> {
    let r = H5File::open(reference).unwrap();
    let o = H5File::open(ours).unwrap();
    let (mut rk, mut ok) = (Vec::new(), Vec::new());
    datasets_in(&r, "/", &mut rk);
    datasets_in(&o, "/", &mut ok);
    rk.sort();
    ok.sort();
    let mut problems = Vec::new();
    if rk != ok {
        problems.push(format!("keys differ: reference {rk:?}, ours {ok:?}"));
        return problems;
    }
    for key in rk {
        let exact = key.contains("spikes") || key.contains("mask") || key.contains("jitter");
        if key.ends_with("cond_idx") {
            if r.read_vlen_i64(&key).unwrap() != o.read_vlen_i64(&key).unwrap() {
                problems.push(format!("{key}: index lists differ"));
            }
            continue;
        }
        let a = r.read_f64(&key).unwrap();
        let b = o.read_f64(&key).unwrap();
        if a.shape() != b.shape() {
            problems.push(format!("{key}: shape {:?} vs {:?}", a.shape(), b.shape()));
            continue;
        }
        let bad = a.iter().zip(b.iter()).position(|(&x, &y)| {
            if x.is_nan() || y.is_nan() {
                x.is_nan() != y.is_nan()
            } else if exact {
                x != y
            } else {
                (x - y).abs() > 1e-6 * x.abs().max(1e-6)
            }
        });
        if let Some(i) = bad {
            problems.push(format!(
                "{key}: element {i} reference {} ours {}",
                a.iter().nth(i).unwrap(),
                b.iter().nth(i).unwrap()
            ));
        }
    }
    problems
}

fn check_dataset(dataset: DatasetName) {
    let prep = tempfile::tempdir().unwrap();
    let opts = PreprocessOptions {
        data_home: fixtures().join("data"),
        prep_home: prep.path().to_path_buf(),
        datasets: vec![dataset],
        bin_widths: BinWidth::ALL.to_vec(),
        phases: Phase::ALL.to_vec(),
        files: SplitFiles::default(),
        progress: false,
        companion: None,
    };
    let reports = run(&opts).unwrap();
    assert_eq!(reports.len(), 4);
    let mut problems = Vec::new();
    for report in reports {
        let name = report.split.dir_name();
        let reference = fixtures().join("prep").join(&name);
        for file in ["train_input.h5", "eval_input.h5", "eval_target.h5"] {
            let (r, o) = (reference.join(file), report.dir.join(file));
            assert_eq!(r.exists(), o.exists(), "{name}/{file} presence");
            if r.exists() {
                problems.extend(
                    compare_files(&r, &o)
                        .into_iter()
                        .map(|p| format!("{name}/{file}: {p}")),
                );
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn mc_maze_matches_reference() {
    check_dataset(DatasetName::McMaze);
}

#[test]
fn mc_rtt_matches_reference() {
    check_dataset(DatasetName::McRtt);
}

#[test]
fn area2_bump_matches_reference() {
    check_dataset(DatasetName::Area2Bump);
}

#[test]
fn dmfc_rsg_matches_reference() {
    check_dataset(DatasetName::DmfcRsg);
}

#[test]
fn mc_maze_large_matches_reference() {
    check_dataset(DatasetName::McMazeLarge);
}

#[test]
fn mc_maze_medium_matches_reference() {
    check_dataset(DatasetName::McMazeMedium);
}

#[test]
fn mc_maze_small_matches_reference() {
    check_dataset(DatasetName::McMazeSmall);
}
