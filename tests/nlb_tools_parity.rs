//! nlb_tools' own preprocessing of each synthetic recording gives the tensors `langevin
//! preprocess` writes: a synthetic recording must look like a real one to every reader.
//!
//! nlb_tools is a Python package this project does not depend on (and its 0.0.4 release pins a
//! pandas that no longer builds), so the test is ignored by default:
//!
//!     python3 -m venv /tmp/nlbenv
//!     /tmp/nlbenv/bin/pip install --no-deps nlb-tools==0.0.4
//!     /tmp/nlbenv/bin/pip install "pandas<3" numpy scipy h5py pynwb scikit-learn
//!     LANGEVIN_NLB_TOOLS_PYTHON=/tmp/nlbenv/bin/python cargo test --test nlb_tools_parity -- --ignored

use std::path::Path;
use std::process::Command;

mod common;

/// Every NLB dataset. dmfc_rsg's eval target is compared as nlb-lightning builds it
/// (`eval_make_params` replaced by `make_params`: the whole jittered window, no NaN), as the
/// shared reference outputs were made; see compare.py.
const DATASETS: [&str; 7] = [
    "mc_maze",
    "mc_rtt",
    "area2_bump",
    "dmfc_rsg",
    "mc_maze_large",
    "mc_maze_medium",
    "mc_maze_small",
];

fn train_nwb_dir(home: &Path) -> std::path::PathBuf {
    for dandiset in std::fs::read_dir(home).unwrap().flatten() {
        for subject in std::fs::read_dir(dandiset.path()).unwrap().flatten() {
            let has_train = std::fs::read_dir(subject.path())
                .unwrap()
                .flatten()
                .any(|f| {
                    let name = f.file_name().to_string_lossy().into_owned();
                    name.contains("desc-train") && name.ends_with(".nwb")
                });
            if has_train {
                return subject.path();
            }
        }
    }
    panic!("no training NWB file under {}", home.display());
}

#[test]
#[ignore = "needs nlb_tools: set LANGEVIN_NLB_TOOLS_PYTHON to a Python that has it"]
fn nlb_tools_preprocessing_of_synthetic_data_matches_ours() {
    let python = std::env::var("LANGEVIN_NLB_TOOLS_PYTHON")
        .expect("LANGEVIN_NLB_TOOLS_PYTHON: a Python interpreter with nlb_tools 0.0.4");
    for dataset in DATASETS {
        let tmp = tempfile::tempdir().unwrap();
        let (data, prep) = (tmp.path().join("data"), tmp.path().join("prep"));
        let args = ["--dataset", dataset];
        common::success_stdout(
            common::langevin()
                .args(["synth", "--scale", "tiny", "--seed", "7"])
                .args(args)
                .arg("--out")
                .arg(&data),
        );
        common::success_stdout(
            common::langevin()
                .args(["preprocess", "--bin-width", "20", "--phase", "val"])
                .args(args)
                .arg("--data-home")
                .arg(&data)
                .arg("--prep-home")
                .arg(&prep),
        );
        let split = prep.join(format!("{dataset}-20ms-val"));
        let out = Command::new(&python)
            .arg("tests/nlb_tools/compare.py")
            .arg(train_nwb_dir(&data))
            .arg(&split)
            .args([dataset, "20"])
            .output()
            .expect("runs the nlb_tools comparison");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{dataset}: nlb_tools disagrees:\n{text}"
        );
        for file in ["train_input:", "eval_input:", "eval_target:"] {
            assert!(
                text.contains(file),
                "{dataset}: {file} not compared\n{text}"
            );
        }
    }
}
