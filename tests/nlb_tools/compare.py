"""nlb_tools' own preprocessing of a synthetic recording, compared with `langevin preprocess`.

    python compare.py NWB_DIR SPLIT_DIR DATASET BIN_MS

NWB_DIR holds the `*train*.nwb` file `langevin synth` wrote; SPLIT_DIR is the val split folder
`langevin preprocess` wrote from it. Builds train input, eval input and eval target tensors with
nlb_tools 0.0.4 (as its README's val-phase example does) and checks every array our files hold
under the same name against them: same shape, equal values (NaN where nlb_tools has NaN).
Exits non-zero naming the first key that differs. A reference check only, never in the product.

dmfc_rsg's target is built as nlb-lightning builds it (the pipeline `langevin preprocess` stands
in for): with `eval_make_params` replaced by `make_params`, so `eval_spikes_heldout` is the whole
jittered 1500 ms window. nlb_tools' own default cuts it to set→go and pads the front with NaN.
"""
import sys

import h5py
import numpy as np
from nlb_tools.make_tensors import (
    PARAMS,
    make_eval_input_tensors,
    make_eval_target_tensors,
    make_train_input_tensors,
)
from nlb_tools.nwb_interface import NWBDataset


def flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v


def ours(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return out


def compare(name, theirs, path, required):
    mine = ours(path)
    checked = 0
    for key, ref in flat(theirs):
        if key not in mine:
            if key.split("/")[-1] in required:
                sys.exit(f"{path}: `{key}` missing (nlb_tools makes it)")
            continue
        got = mine[key]
        if key.endswith("cond_idx"):
            ref, got = [np.asarray(r) for r in ref], list(got)
            same = len(ref) == len(got) and all(np.array_equal(a, b) for a, b in zip(ref, got))
        else:
            ref, got = np.asarray(ref), np.asarray(got)
            same = ref.shape == got.shape and np.allclose(
                got.astype(float), ref.astype(float), rtol=1e-5, atol=1e-6, equal_nan=True
            )
        if not same:
            sys.exit(f"{path}: `{key}` differs from nlb_tools ({np.shape(got)} vs {np.shape(ref)})")
        checked += 1
    print(f"{name}: {checked} arrays equal nlb_tools'")


def main():
    nwb_dir, split_dir, dataset, bin_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ds = NWBDataset(nwb_dir, "*train")
    ds.resample(bin_ms)
    train = make_train_input_tensors(
        ds, dataset, "train", save_file=False, include_behavior=True, include_forward_pred=True
    )
    compare("train_input", train, f"{split_dir}/train_input.h5",
            {"train_spikes_heldin", "train_spikes_heldout"})
    evin = make_eval_input_tensors(ds, dataset, "val", save_file=False)
    compare("eval_input", evin, f"{split_dir}/eval_input.h5", {"eval_spikes_heldin"})
    update = None
    if dataset == "dmfc_rsg":
        update = {"eval_make_params": PARAMS[dataset]["make_params"].copy()}
    target = make_eval_target_tensors(
        ds, dataset, "train", "val", save_file=False, include_psth=dataset != "mc_rtt",
        update_params=update,
    )
    compare("eval_target", target, f"{split_dir}/eval_target.h5", {"eval_spikes_heldout"})


if __name__ == "__main__":
    main()
