//! The NWB files `synth` writes open in the standard NWB reader (pynwb) without warnings and pass
//! its schema validation.
//!
//! pynwb is a Python package this project does not depend on, so the test is ignored by default:
//!
//!     python3 -m venv /tmp/nwbenv && /tmp/nwbenv/bin/pip install pynwb
//!     LANGEVIN_PYNWB_PYTHON=/tmp/nwbenv/bin/python cargo test --test pynwb_valid -- --ignored

use std::path::PathBuf;
use std::process::Command;

use langevin::nlb::DatasetName;
use langevin::synth::{self, Scale};

#[test]
#[ignore = "needs pynwb: set LANGEVIN_PYNWB_PYTHON to a Python that has it"]
fn synthetic_files_open_in_pynwb_without_warnings() {
    let python = std::env::var("LANGEVIN_PYNWB_PYTHON")
        .expect("LANGEVIN_PYNWB_PYTHON: a Python interpreter with pynwb installed");
    let home = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for name in ["mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg", "lorenz"] {
        let dataset: DatasetName = name.parse().unwrap();
        files.extend(
            synth::synth(home.path(), dataset, Scale::Tiny, 0)
                .unwrap()
                .files,
        );
    }
    let out = Command::new(python)
        .arg("tests/pynwb/check.py")
        .args(&files)
        .output()
        .expect("runs the pynwb checker");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pynwb rejects our files:\n{text}");
    assert_eq!(text.matches("0 problems").count(), files.len(), "{text}");
}
