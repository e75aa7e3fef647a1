//! The release's recipe, proved numerically: with every release switch on, our model and the
//! authors' PyTorch code (KingJamesSong/LangevinFlow_CCN, run by `scripts/release_reference.py`)
//! give the same log-rates, Poisson NLL and KL terms on one batch, from the same weights and the
//! same random draws.
//!
//!     LANGEVIN_REFERENCE_PYTHON=/path/to/python3.9-with-torch-1.11 \
//!     LANGEVIN_RELEASE_DIR=/path/to/LangevinFlow_CCN \
//!     cargo test --test release_reference -- --ignored

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use langevin::h5::{AtomicH5, Data, H5File};
use langevin::model::loss::{kl_standard_normal, kl_velocity};
use langevin::model::{
    EncoderInput, LangevinFlow, LangevinFlowConfig, Noise, PotentialInit, VelocityKl,
};

type Cpu = NdArray<f32>;

const B: usize = 3;
const T: usize = 6;
const TF: usize = 2;
const L: usize = T + TF;
const N_IN: usize = 10;
const N: usize = 14;
const H: usize = 16;
const FF: usize = 512;
const HEADS: usize = 2;
const EPOCH: usize = 250;

/// The release's model: H = D, its fixed sizes, and every release switch on.
fn release_config() -> LangevinFlowConfig {
    LangevinFlowConfig {
        hidden_size: H,
        d_ff: FF,
        n_heads: HEADS,
        encoder_input: EncoderInput::Previous,
        attention_dropout: 0.05,
        tfixup_value: false,
        predict_dropout: true,
        potential_init: PotentialInit::Normal,
        velocity_kl: VelocityKl::Release,
        ..Default::default()
    }
}

fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn transposed(t: Tensor<Cpu, 2>) -> (Vec<f32>, Vec<usize>) {
    let t = t.transpose();
    let dims = t.dims().to_vec();
    (values(t), dims)
}

/// The model's parameters under the release's state_dict names and layouts (PyTorch's Linear
/// stores `[out, in]`, Burn's `[in, out]`; the release packs q, k, v and has four IC heads).
fn release_weights(m: &LangevinFlow<Cpu>) -> Vec<(String, Vec<f32>, Vec<usize>)> {
    let mut out = Vec::new();
    let mut put = |name: &str, (v, d): (Vec<f32>, Vec<usize>)| out.push((name.to_string(), v, d));
    let vec1 = |t: Tensor<Cpu, 1>| {
        let d = t.dims().to_vec();
        (values(t), d)
    };
    let gru = &m.encoder.gru;
    put("encoder.weight_ih", transposed(gru.input.weight.val()));
    put(
        "encoder.bias_ih",
        vec1(gru.input.bias.as_ref().unwrap().val()),
    );
    put("encoder.weight_hh", transposed(gru.hidden.weight.val()));
    put(
        "encoder.bias_hh",
        vec1(gru.hidden.bias.as_ref().unwrap().val()),
    );
    let (w, b) = (
        m.initial.weight.val(),
        m.initial.bias.as_ref().unwrap().val(),
    );
    for (i, head) in ["z_means", "z_logvar", "v_means", "v_logvar"]
        .iter()
        .enumerate()
    {
        let cols = i * H..(i + 1) * H;
        put(
            &format!("linear_{head}.weight"),
            transposed(w.clone().slice([0..H, cols.clone()])),
        );
        put(
            &format!("linear_{head}.bias"),
            vec1(b.clone().slice([cols])),
        );
    }
    let d = &m.decoder;
    let qkv = Tensor::cat(
        vec![
            d.query.weight.val(),
            d.key.weight.val(),
            d.value.weight.val(),
        ],
        1,
    );
    put("decoder.self_attn.in_proj_weight", transposed(qkv));
    let bias = |l: &burn::nn::Linear<Cpu>| l.bias.as_ref().unwrap().val();
    let qkv_b = Tensor::cat(vec![bias(&d.query), bias(&d.key), bias(&d.value)], 0);
    put("decoder.self_attn.in_proj_bias", vec1(qkv_b));
    put(
        "decoder.self_attn.out_proj.weight",
        transposed(d.output.weight.val()),
    );
    put("decoder.self_attn.out_proj.bias", vec1(bias(&d.output)));
    put("decoder.linear1.weight", transposed(d.ff_in.weight.val()));
    put("decoder.linear1.bias", vec1(bias(&d.ff_in)));
    put("decoder.linear2.weight", transposed(d.ff_out.weight.val()));
    put("decoder.linear2.bias", vec1(bias(&d.ff_out)));
    for (name, norm) in [("norm1", &d.norm_attention), ("norm2", &d.norm_ff)] {
        put(&format!("decoder.{name}.weight"), vec1(norm.gamma.val()));
        put(
            &format!("decoder.{name}.bias"),
            vec1(norm.beta.as_ref().unwrap().val()),
        );
    }
    let k = m.potential.kernel.val();
    let kd = k.dims().to_vec();
    put("potential.conv_z", (values(k), kd));
    put("readout.weight", transposed(d.readout.weight.val()));
    put("readout.bias", vec1(bias(&d.readout)));
    out
}

/// Every draw of one training pass, by our names, and the same draws in the release's layouts.
struct Draws {
    ours: HashMap<String, TensorData>,
    theirs: Vec<(&'static str, Vec<f32>, Vec<usize>)>,
}

impl Draws {
    /// A draw that both sides take in the same layout.
    fn same(&mut self, ours: &str, theirs: &'static str, v: Vec<f32>, shape: Vec<usize>) {
        self.ours
            .insert(ours.to_string(), TensorData::new(v.clone(), shape.clone()));
        self.theirs.push((theirs, v, shape));
    }
}

fn draws(device: &burn::backend::ndarray::NdArrayDevice) -> Draws {
    let keep = 1.0 - release_config().dropout;
    let mask = |n: usize, keep: f64| {
        values(Tensor::<Cpu, 1>::random(
            [n],
            Distribution::Bernoulli(keep),
            device,
        ))
    };
    let normal = |n: usize| {
        values(Tensor::<Cpu, 1>::random(
            [n],
            Distribution::Normal(0.0, 1.0),
            device,
        ))
    };
    let mut d = Draws {
        ours: HashMap::new(),
        theirs: Vec::new(),
    };
    d.same(
        "cd_keep",
        "cd_mask",
        mask(B * T * N_IN, 0.5),
        vec![B, T, N_IN],
    );
    d.same(
        "cd_pass",
        "cd_pass_mask",
        mask(B * T * N_IN, 0.5),
        vec![B, T, N_IN],
    );
    d.same("z0", "eps_z0", normal(B * H), vec![B, H]);
    d.same("v0", "eps_v0", normal(B * H), vec![B, H]);
    let (mut hidden, mut velocity) = (Vec::new(), Vec::new());
    for t in 0..L {
        let m = mask(B * H, keep);
        d.ours.insert(
            format!("hidden_dropout/{t}"),
            TensorData::new(m.clone(), [B, H]),
        );
        hidden.extend(m);
        if t > 0 {
            let e = normal(B * H);
            d.ours
                .insert(format!("velocity/{t}"), TensorData::new(e.clone(), [B, H]));
            velocity.extend(e);
        }
    }
    d.theirs.push(("hid_drop_mask", hidden, vec![L, B, H]));
    d.theirs.push(("eps_v", velocity, vec![L - 1, B, H]));
    // Same memory order: row b·heads + head.
    let weights = mask(B * HEADS * L * L, keep);
    d.ours.insert(
        "attention_weights".into(),
        TensorData::new(weights.clone(), [B, HEADS, L, L]),
    );
    d.theirs
        .push(("attn_drop_mask", weights, vec![B * HEADS, L, L]));
    // Ours are trial-major [B·L, ·], the release's time-major [L, B, ·].
    for (name, their, width) in [
        ("attention_out", "drop1_mask", 3 * H),
        ("ff_inner", "ff_drop_mask", FF),
        ("ff_out", "drop2_mask", 3 * H),
    ] {
        let m = mask(B * L * width, keep);
        let time_major =
            Tensor::<Cpu, 3>::from_data(TensorData::new(m.clone(), [B, L, width]), device)
                .swap_dims(0, 1);
        d.ours
            .insert(name.to_string(), TensorData::new(m, [B * L, width]));
        d.theirs
            .push((their, values(time_major), vec![L, B, width]));
    }
    d
}

fn write_inputs(path: &Path, model: &LangevinFlow<Cpu>, x: &[f32], y: &[f32], draws: &Draws) {
    let mut w = AtomicH5::create(path).unwrap();
    for (name, v, d) in release_weights(model) {
        w.write(&format!("weights/{name}"), Data::F32(&v, d))
            .unwrap();
    }
    w.write("input", Data::F32(x, vec![B, T, N_IN])).unwrap();
    w.write("recon", Data::F32(y, vec![B, L, N])).unwrap();
    for (name, v, d) in &draws.theirs {
        w.write(name, Data::F32(v, d.clone())).unwrap();
    }
    let c = release_config();
    for (name, v) in [
        ("dropout", c.dropout),
        ("gamma", c.gamma),
        ("cd_rate", c.cd_keep),
        ("epoch", EPOCH as f64),
    ] {
        w.write(name, Data::F64(&[v], vec![])).unwrap();
    }
    w.commit().unwrap();
}

fn close(what: &str, ours: &[f32], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        let tol = 1e-5 * b.abs().max(1.0);
        assert!(
            (f64::from(a) - b).abs() <= tol,
            "{what}[{i}]: ours {a}, release {b}"
        );
    }
}

#[test]
#[ignore = "needs LANGEVIN_REFERENCE_PYTHON (Python 3.9, torch 1.11, pytorch-lightning 1.6, h5py) and LANGEVIN_RELEASE_DIR (a checkout of KingJamesSong/LangevinFlow_CCN)"]
fn the_release_recipe_matches_the_official_code() {
    let python = std::env::var("LANGEVIN_REFERENCE_PYTHON").expect("set LANGEVIN_REFERENCE_PYTHON");
    let release = std::env::var("LANGEVIN_RELEASE_DIR").expect("set LANGEVIN_RELEASE_DIR");
    let device = Default::default();
    Cpu::seed(&device, 7);
    let model = release_config().init::<Cpu>(N_IN, N, &device).unwrap();
    let y = Tensor::<Cpu, 3>::random([B, L, N], Distribution::Uniform(0.0, 2.5), &device).floor();
    let x = y.clone().slice([0..B, 0..T, 0..N_IN]);
    let draws = draws(&device);

    let dir = tempfile::tempdir().unwrap();
    let (inputs, out) = (dir.path().join("in.h5"), dir.path().join("out.h5"));
    write_inputs(
        &inputs,
        &model,
        &values(x.clone()),
        &values(y.clone()),
        &draws,
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/release_reference.py");
    let status = Command::new(&python)
        .arg(script)
        .args(["--official", &release])
        .arg("--inputs")
        .arg(&inputs)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run the reference python");
    assert!(status.success(), "the release run failed");

    let noise = Noise::replay(draws.ours);
    let (output, loss) = model.training_pass(x, y, EPOCH, &noise);
    assert!(
        noise.unused().is_empty(),
        "unused draws: {:?}",
        noise.unused()
    );
    let theirs = H5File::open(&out).unwrap();
    let scalar = |k: &str| theirs.read_f64(k).unwrap().iter().copied().next().unwrap();
    close(
        "log-rates",
        &values(output.log_rates.clone()),
        &theirs
            .read_f64("logrates")
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
    );
    close("nll", &values(loss.nll.clone()), &[scalar("nll_mean")]);
    let per_trial = |t: Tensor<Cpu, 1>| values(t.div_scalar(B as f64));
    let kl_z0 = kl_standard_normal(output.z0_mean.clone(), output.z0_logvar.clone());
    let kl_v0 = kl_standard_normal(output.v0_mean.clone(), output.v0_logvar.clone());
    close("KL(z0)", &per_trial(kl_z0), &[scalar("kl_z0")]);
    close("KL(v0)", &per_trial(kl_v0), &[scalar("kl_v0")]);
    let c = release_config();
    let steps: Vec<f32> = (1..L)
        .flat_map(|t| {
            let v = output.v.clone().slice([0..B, t..t + 1, 0..H]);
            per_trial(kl_velocity(v, c.gamma, c.prior_v_var, c.velocity_kl))
        })
        .collect();
    let their_steps: Vec<f64> = theirs
        .read_f64("kl_v_steps")
        .unwrap()
        .iter()
        .copied()
        .collect();
    close("KL(v_t)", &steps, &their_steps);
    close("loss", &values(loss.total), &[scalar("loss")]);
}
