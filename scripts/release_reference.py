"""Runs the official LangevinFlow release (KingJamesSong/LangevinFlow_CCN) on one batch with
given weights and every random draw given, for `tests/release_reference.rs`.

Reference checks only: this is not part of the product. It needs the release's own pins
(Python 3.9, torch 1.11, pytorch-lightning 1.6) and a checkout of the release, passed as
--official. Nothing of the release is copied here: its LangevinAutoencoder is imported and run
unmodified; only its random draws are fed (torch.bernoulli, torch.randn_like and
torch.nn.functional.dropout are replaced, for one training_step, by functions that hand out the
given tensors in the order the release asks for them) and its intermediate values are read by
wrapping its own methods.

    python scripts/release_reference.py --official DIR --inputs in.h5 --out out.h5

in.h5: the model's state_dict under the release's parameter names (group `weights`), the
batch (`input` [B,T,N_in], `recon` [B,T+Tf,N]), the scalars `dropout`, `gamma`, `cd_rate`,
`epoch`, and the draws in the release's layouts: `cd_mask`, `cd_pass_mask` [B,T,N_in],
`hid_drop_mask` [L,B,H], `eps_z0`, `eps_v0` [B,H], `eps_v` [L-1,B,H], `attn_drop_mask`
[B*heads,L,L], `drop1_mask` [L,B,3H], `ff_drop_mask` [L,B,512], `drop2_mask` [L,B,3H].
out.h5: `logrates` [B,L,N], `nll_mean`, `kl_z0`, `kl_v0`, `kl_v_steps` [L-1], `loss`.
"""
import argparse
import sys

import h5py
import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--official", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    sys.path.insert(0, a.official)
    import torch
    import torch.nn.functional as F
    from nlb_lightning.models import LangevinAutoencoder

    f = h5py.File(a.inputs, "r")
    get = lambda k: torch.from_numpy(np.asarray(f[k][()], dtype=np.float32))
    weights = {k: get(f"weights/{k}") for k in f["weights"]}
    x, recon = get("input"), get("recon")
    B, T, n_in = x.shape
    L, n_all = recon.shape[1], recon.shape[2]
    H = weights["linear_z_means.weight"].shape[0]
    scalar = lambda k: float(f[k][()])

    model = LangevinAutoencoder(
        input_size=n_in,
        hidden_size=H,
        output_size=n_all,
        fwd_steps=L - T,
        learning_rate=3e-3,
        weight_decay=2e-5,
        dropout=scalar("dropout"),
        gamma=scalar("gamma"),
        cd_rate=scalar("cd_rate"),
    )
    model.load_state_dict(weights, strict=True)
    model.train()

    class Trainer:  # what LightningModule.current_epoch reads outside a pl.Trainer
        current_epoch = int(scalar("epoch"))

    model.trainer = Trainer()
    model.log = lambda *args, **kwargs: None

    # The release's draws, in the order it makes them (see the module docstring).
    queue = [get("cd_mask"), get("cd_pass_mask"), get("hid_drop_mask")[0], get("eps_z0"), get("eps_v0")]
    for t in range(1, L):
        queue += [get("hid_drop_mask")[t], get("eps_v")[t - 1]]
    queue += [get("attn_drop_mask"), get("drop1_mask"), get("ff_drop_mask"), get("drop2_mask")]
    queue.reverse()

    def given(shape):
        t = queue.pop()
        if tuple(t.shape) != tuple(shape):
            raise SystemExit(f"draw of shape {tuple(t.shape)} given where {tuple(shape)} is drawn")
        return t

    def dropout(input, p=0.5, training=True, inplace=False):
        if not training or p == 0.0:
            return input
        noise = given(input.shape) / (1 - p)
        return input.mul_(noise) if inplace else input * noise

    kl_terms, seen = [], {}
    kl_gauss, forward = model.kl_gauss, model.forward

    def kl(*args, **kwargs):
        r = kl_gauss(*args, **kwargs)
        kl_terms.append(float(r))
        return r

    def fwd(*args, **kwargs):
        r = forward(*args, **kwargs)
        seen["logrates"] = r[0].detach().numpy()
        return r

    model.kl_gauss, model.forward = kl, fwd
    saved = torch.bernoulli, torch.randn_like, F.dropout
    torch.bernoulli = lambda p, *args, **kwargs: given(p.shape)
    torch.randn_like = lambda t, *args, **kwargs: given(t.shape)
    F.dropout = dropout
    try:
        # With gradients on: the release differentiates its potential inside the forward pass.
        loss = model.training_step((x, recon, torch.zeros(B, T, 2)), 0)
    finally:
        torch.bernoulli, torch.randn_like, F.dropout = saved
    if queue:
        raise SystemExit(f"{len(queue)} given draws were never used")

    logrates = torch.from_numpy(seen["logrates"])
    nll = F.poisson_nll_loss(logrates, recon, log_input=True, full=False, reduction="mean")
    with h5py.File(a.out, "w") as o:
        o["logrates"] = seen["logrates"]
        o["nll_mean"] = float(nll)
        o["kl_z0"], o["kl_v0"] = kl_terms[0], kl_terms[1]
        o["kl_v_steps"] = np.array(kl_terms[2:])
        o["loss"] = float(loss.detach())


if __name__ == "__main__":
    main()
