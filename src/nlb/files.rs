//! Writing a split's HDF5 files with the keys, groups and dtypes of the current nlb_tools.
//! Each file is written to a temporary name in the split folder and renamed into place.

use std::path::{Path, PathBuf};

use super::dataset::Split;
use super::tensors::{EvalTarget, SplitTensors, Tensor};
use crate::h5::{AtomicH5, Data, H5Error};

/// File names inside a split folder (`TRAIN_INPUT_FILE`, `EVAL_INPUT_FILE`, `EVAL_TARGET_FILE`).
#[derive(Debug, Clone)]
pub struct SplitFiles {
    pub train_input: String,
    pub eval_input: String,
    pub eval_target: String,
}

impl Default for SplitFiles {
    fn default() -> Self {
        SplitFiles {
            train_input: "train_input.h5".into(),
            eval_input: "eval_input.h5".into(),
            eval_target: "eval_target.h5".into(),
        }
    }
}

fn f32s<'a>(t: &'a Tensor<f32>) -> Data<'a> {
    Data::F32(&t.data, t.shape.clone())
}

/// Writes the split's files into `dir`, returning the paths written.
pub fn write_split(
    dir: &Path,
    split: &Split,
    tensors: &SplitTensors,
    names: &SplitFiles,
) -> Result<Vec<PathBuf>, H5Error> {
    std::fs::create_dir_all(dir).map_err(|e| H5Error::Write {
        path: dir.to_path_buf(),
        name: "/".into(),
        msg: e.to_string(),
    })?;
    let mut written = Vec::new();

    let path = dir.join(&names.train_input);
    let mut f = AtomicH5::create(&path)?;
    let t = &tensors.train;
    f.write("train_spikes_heldin", f32s(&t.heldin))?;
    f.write("train_spikes_heldout", f32s(&t.heldout))?;
    if let Some(b) = &t.behavior {
        f.write("train_behavior", f32s(b))?;
    }
    f.write("train_spikes_heldin_forward", f32s(&t.heldin_forward))?;
    f.write("train_spikes_heldout_forward", f32s(&t.heldout_forward))?;
    f.commit()?;
    written.push(path);

    let path = dir.join(&names.eval_input);
    let mut f = AtomicH5::create(&path)?;
    f.write("eval_spikes_heldin", f32s(&tensors.eval.heldin))?;
    if let Some(h) = &tensors.eval.heldout {
        f.write("eval_spikes_heldout", f32s(h))?;
    }
    f.commit()?;
    written.push(path);

    if let Some(target) = &tensors.target {
        let path = dir.join(&names.eval_target);
        write_target(&path, &split.group(), target)?;
        written.push(path);
    }
    Ok(written)
}

fn write_target(path: &Path, group: &str, t: &EvalTarget) -> Result<(), H5Error> {
    let mut f = AtomicH5::create(path)?;
    let key = |k: &str| format!("{group}/{k}");
    f.write(&key("eval_spikes_heldout"), f32s(&t.eval_spikes_heldout))?;
    for (name, b) in [
        ("train_behavior", &t.train_behavior),
        ("eval_behavior", &t.eval_behavior),
    ] {
        if let Some(b) = b {
            f.write(&key(name), f32s(b))?;
        }
    }
    f.write(
        &key("eval_spikes_heldin_forward"),
        f32s(&t.eval_spikes_heldin_forward),
    )?;
    f.write(
        &key("eval_spikes_heldout_forward"),
        f32s(&t.eval_spikes_heldout_forward),
    )?;
    if let Some((train, eval)) = &t.decode_masks {
        f.write(
            &key("train_decode_mask"),
            Data::Bool(&train.data, train.shape.clone()),
        )?;
        f.write(
            &key("eval_decode_mask"),
            Data::Bool(&eval.data, eval.shape.clone()),
        )?;
    }
    if let Some(p) = &t.psth {
        f.write(&key("psth"), f32s(&p.psth))?;
        f.write(&key("eval_cond_idx"), Data::VlenI32(&p.eval_cond_idx))?;
        f.write(&key("train_cond_idx"), Data::VlenI32(&p.train_cond_idx))?;
    }
    if let Some((train, eval)) = &t.jitter {
        f.write(&key("train_jitter"), Data::I32(train, vec![train.len()]))?;
        f.write(&key("eval_jitter"), Data::I32(eval, vec![eval.len()]))?;
    }
    f.commit()
}
