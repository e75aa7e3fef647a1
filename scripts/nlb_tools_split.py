"""nlb_tools 0.0.4 making one mc_maze split as nlb-lightning drives it, for timing beside
`langevin preprocess` (a reference check only, never part of the product).

    /usr/bin/time -v python scripts/nlb_tools_split.py DATA_HOME/000128/sub-Jenkins 20 test OUT

Loads the session's NWB files (the train file alone for the val phase), resamples to the bin width,
makes the train input, eval input and (val phase) eval target tensors with PSTHs, and saves them
with nlb_tools' `save_to_h5` as OUT_input.h5 and OUT_target.h5. Needs nlb_tools 0.0.4 beside
`pandas<3` (as `.ci/run` installs it).
"""
import sys
import time

from nlb_tools.make_tensors import (
    make_eval_input_tensors,
    make_eval_target_tensors,
    make_train_input_tensors,
    save_to_h5,
)
from nlb_tools.nwb_interface import NWBDataset

data_dir, bin_ms, phase, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
started = time.time()
dataset = NWBDataset(data_dir, "*train*" if phase == "val" else "*")
dataset.resample(bin_ms)
name = "mc_maze"
if phase == "val":
    train = make_train_input_tensors(
        dataset, name, trial_split="train", save_file=False, include_forward_pred=True
    )
    evals = make_eval_input_tensors(dataset, name, trial_split="val", save_file=False)
    target = make_eval_target_tensors(
        dataset, name, train_trial_split="train", eval_trial_split="val",
        include_psth=True, save_file=False,
    )
else:
    train = make_train_input_tensors(
        dataset, name, trial_split=["train", "val"], save_file=False, include_forward_pred=True
    )
    evals = make_eval_input_tensors(dataset, name, trial_split="test", save_file=False)
    target = None
save_to_h5({**train, **evals}, out + "_input.h5", overwrite=True)
if target is not None:
    save_to_h5(target, out + "_target.h5", overwrite=True)
print(f"nlb_tools {name} {bin_ms} ms {phase}: {time.time() - started:.1f} s")
