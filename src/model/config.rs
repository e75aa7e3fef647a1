//! The model's settings ([`LangevinFlowConfig`], the spec's numbers with the published defaults)
//! and how they build a [`LangevinFlow`]: every parameter drawn eagerly, in a fixed order.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use super::{Decoder, DecoderSettings, Encoder, EncoderInput, LangevinFlow, Potential};

/// Every number of the model and its objective (spec §1–§6, §8), with the published defaults.
///
/// Training-loop settings (learning rate, epochs, batch size…) live with the training code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LangevinFlowConfig {
    /// Encoder state size `H` (280, as every training script of the release sets it).
    pub hidden_size: usize,
    /// Latent size `D`; `None` means `D = H`.
    pub latent_size: Option<usize>,
    /// Oscillator channels `C` of the potential (4); must divide `D`.
    pub channels: usize,
    /// Dropout probability in encoder and decoder (0.05).
    pub dropout: f64,
    /// Which bin the encoder reads at each step: "current" (paper) or "previous" (release).
    pub encoder_input: EncoderInput,
    /// Langevin step size (0.01).
    pub dt: f64,
    /// Langevin damping (0.55; 0.7 for dmfc_rsg).
    pub gamma: f64,
    /// Attention heads (2); must divide `d_model = 2D + H`.
    pub n_heads: usize,
    /// Feed-forward width of the decoder (512).
    pub d_ff: usize,
    /// Final KL weight (0.1).
    pub kl_weight: f64,
    /// Epochs over which the KL weight ramps up linearly from 0 (500).
    pub kl_ramp_epochs: usize,
    /// Coordinated-dropout keep probability (0.5 as for mc_maze; rtt 0.3, area2_bump 0.4,
    /// dmfc_rsg 0.6). 1.0 turns coordinated dropout off.
    pub cd_keep: f64,
    /// Variance of the per-step velocity prior `N(0, prior_v_var·I)` (0.1).
    pub prior_v_var: f64,
    /// Stochastic passes averaged for prediction (50).
    pub n_samples: usize,
    /// Dropout of the attention weights in training (0; the release drops 0.05).
    pub attention_dropout: f64,
    /// Whether T-Fixup scales the attention value projection (spec §5, true; the release's
    /// scaling never reaches it: false).
    pub tfixup_value: bool,
    /// Whether prediction passes keep dropout on (false; the release leaves the model in
    /// training mode: true).
    pub predict_dropout: bool,
    /// How the potential kernel starts: "normal" (N(0, 1), learned) or "zeros" (the release's,
    /// which the first Adam step turns into a frozen ±1/√3 pattern).
    pub potential_init: PotentialInit,
    /// The velocity prior's KL: "exact", or "release" (its log-variance slot holds the variance
    /// 2γ; the same gradient, a different constant).
    pub velocity_kl: VelocityKl,
    /// Starting log-variance of `q(z_0)` and `q(v_0)`: the bias of the two log-variance heads
    /// (`None`: drawn like every other bias, so the initial condition starts with unit-variance
    /// noise).
    pub initial_logvar: Option<f64>,
}

/// Start of the potential kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PotentialInit {
    Normal,
    Zeros,
}

/// Formula of the per-step velocity KL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VelocityKl {
    Exact,
    Release,
}

impl Default for LangevinFlowConfig {
    fn default() -> Self {
        Self {
            hidden_size: 280,
            latent_size: None,
            channels: 4,
            dropout: 0.05,
            encoder_input: EncoderInput::Current,
            dt: 0.01,
            gamma: 0.55,
            n_heads: 2,
            d_ff: 512,
            kl_weight: 0.1,
            kl_ramp_epochs: 500,
            cd_keep: 0.5,
            prior_v_var: 0.1,
            n_samples: 50,
            attention_dropout: 0.0,
            tfixup_value: true,
            predict_dropout: false,
            potential_init: PotentialInit::Normal,
            velocity_kl: VelocityKl::Exact,
            initial_logvar: None,
        }
    }
}

/// A model configuration that cannot be built, with the reason spelled out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct ConfigError(String);

impl LangevinFlowConfig {
    /// Latent size `D` (defaults to `H`).
    pub fn latent(&self) -> usize {
        self.latent_size.unwrap_or(self.hidden_size)
    }

    /// Decoder width `2D + H`: position, velocity and encoder state side by side.
    pub fn d_model(&self) -> usize {
        2 * self.latent() + self.hidden_size
    }

    /// Rejects configurations the model cannot represent, before any tensor is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        let (h, d) = (self.hidden_size, self.latent());
        if h == 0 || d == 0 {
            return fail(format!(
                "hidden_size ({h}) and latent_size ({d}) must be positive"
            ));
        }
        if self.channels == 0 || !d.is_multiple_of(self.channels) {
            return fail(format!(
                "channels ({}) must divide latent_size ({d}): the potential views z as \
                 channels × latent_size/channels positions",
                self.channels
            ));
        }
        if self.n_heads == 0 || !self.d_model().is_multiple_of(self.n_heads) {
            return fail(format!(
                "n_heads ({}) must divide d_model = 2·latent_size + hidden_size = {}",
                self.n_heads,
                self.d_model()
            ));
        }
        if self.d_ff == 0 {
            return fail("d_ff must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return fail(format!("dropout ({}) must be in [0, 1)", self.dropout));
        }
        if !(0.0..1.0).contains(&self.attention_dropout) {
            return fail(format!(
                "attention_dropout ({}) must be in [0, 1)",
                self.attention_dropout
            ));
        }
        if !(self.cd_keep > 0.0 && self.cd_keep <= 1.0) {
            return fail(format!("cd_keep ({}) must be in (0, 1]", self.cd_keep));
        }
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return fail(format!("dt ({}) must be positive", self.dt));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return fail(format!("gamma ({}) must be in (0, 1]", self.gamma));
        }
        if !(self.prior_v_var.is_finite() && self.prior_v_var > 0.0) {
            return fail(format!(
                "prior_v_var ({}) must be positive",
                self.prior_v_var
            ));
        }
        if !(self.kl_weight.is_finite() && self.kl_weight >= 0.0) {
            return fail(format!(
                "kl_weight ({}) must be non-negative",
                self.kl_weight
            ));
        }
        if self.n_samples == 0 {
            return fail("n_samples must be at least 1".into());
        }
        Ok(())
    }

    /// Validates, then builds a model reading `n_heldin` neurons and predicting `n_neurons`
    /// (held-in first, then held-out). All parameters are drawn now, in a fixed order, from the
    /// backend RNG; seed it first for a reproducible model.
    pub fn init<B: Backend>(
        &self,
        n_heldin: usize,
        n_neurons: usize,
        device: &B::Device,
    ) -> Result<LangevinFlow<B>, ConfigError> {
        self.validate()?;
        if n_heldin == 0 || n_neurons < n_heldin {
            return Err(ConfigError(format!(
                "need 0 < n_heldin ({n_heldin}) <= n_neurons ({n_neurons})"
            )));
        }
        let (h, d) = (self.hidden_size, self.latent());
        let bound = 1.0 / (h as f64).sqrt();
        Ok(LangevinFlow {
            encoder: Encoder::init(n_heldin, h, self.dropout, self.encoder_input, device),
            initial: initial_heads(h, d, bound, self.initial_logvar, device),
            potential: Potential::init(
                self.channels,
                self.potential_init == PotentialInit::Zeros,
                device,
            ),
            decoder: Decoder::init(
                DecoderSettings {
                    d_model: self.d_model(),
                    n_heads: self.n_heads,
                    d_ff: self.d_ff,
                    n_neurons,
                    dropout: self.dropout,
                    attention_dropout: self.attention_dropout,
                    scale_value: self.tfixup_value,
                },
                device,
            ),
            config: self.clone(),
        })
    }
}

/// The four initial-condition heads `H → 4D`, the log-variance columns' bias set to `logvar`
/// when given (drawn after the default init, so the other parameters do not change).
fn initial_heads<B: Backend>(
    h: usize,
    d: usize,
    bound: f64,
    logvar: Option<f64>,
    device: &B::Device,
) -> Linear<B> {
    let heads = uniform_linear(h, 4 * d, bound, Some(bound), device);
    let Some(logvar) = logvar else {
        return heads;
    };
    let bias = heads.bias.as_ref().expect("heads have a bias").val();
    let columns = |from: usize| from..from + d;
    let fill = Tensor::full([d], logvar, device);
    let bias = bias
        .slice_assign([columns(d)], fill.clone())
        .slice_assign([columns(3 * d)], fill)
        .detach();
    Linear {
        weight: heads.weight,
        bias: Some(Param::from_tensor(bias)),
    }
}

/// A `d_in → d_out` layer with weights uniform in `±weight_bound` and biases uniform in
/// `±bias_bound` (zero when `None`), drawn now rather than lazily so the RNG order is fixed.
pub(super) fn uniform_linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    weight_bound: f64,
    bias_bound: Option<f64>,
    device: &B::Device,
) -> Linear<B> {
    let weight = Tensor::random(
        [d_in, d_out],
        Distribution::Uniform(-weight_bound, weight_bound),
        device,
    );
    let bias = match bias_bound {
        Some(b) => Tensor::random([d_out], Distribution::Uniform(-b, b), device),
        None => Tensor::zeros([d_out], device),
    };
    Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type Cpu = NdArray<f32>;

    #[test]
    fn config_defaults_round_trip_and_reject_unknown_fields() {
        let cfg: LangevinFlowConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, LangevinFlowConfig::default());
        assert_eq!(cfg.latent(), 280);
        assert_eq!(cfg.d_model(), 840);
        let cfg: LangevinFlowConfig =
            toml::from_str("encoder_input = \"previous\"\ngamma = 0.7\nlatent_size = 32").unwrap();
        assert_eq!(cfg.encoder_input, EncoderInput::Previous);
        assert_eq!(cfg.d_model(), 344);
        let back: LangevinFlowConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        assert!(toml::from_str::<LangevinFlowConfig>("hiden_size = 3").is_err());
    }

    #[test]
    fn initial_logvar_sets_only_the_log_variance_biases() {
        let device = Default::default();
        let build = |logvar| {
            Cpu::seed(&device, 5);
            LangevinFlowConfig {
                hidden_size: 8,
                initial_logvar: logvar,
                ..LangevinFlowConfig::default()
            }
            .init::<Cpu>(3, 4, &device)
            .unwrap()
        };
        let (plain, narrow) = (build(None), build(Some(-5.0)));
        let bias = |m: &LangevinFlow<Cpu>| -> Vec<f32> {
            let b = m.initial.bias.as_ref().unwrap().val();
            b.into_data().to_vec().unwrap()
        };
        let (plain_b, narrow_b) = (bias(&plain), bias(&narrow));
        for (i, (p, n)) in plain_b.iter().zip(&narrow_b).enumerate() {
            match i / 8 {
                1 | 3 => assert_eq!(*n, -5.0, "log-variance bias {i}"),
                _ => assert_eq!(p, n, "mean bias {i} must keep its draw"),
            }
        }
        let w = |m: &LangevinFlow<Cpu>| m.initial.weight.val().into_data();
        assert_eq!(w(&plain), w(&narrow));
    }

    #[test]
    fn validate_names_the_broken_constraint() {
        let heads = LangevinFlowConfig {
            n_heads: 11,
            ..Default::default()
        };
        let msg = heads.validate().unwrap_err().to_string();
        assert!(msg.contains("n_heads (11)") && msg.contains("840"), "{msg}");
        let channels = LangevinFlowConfig {
            latent_size: Some(30),
            n_heads: 1,
            ..Default::default()
        };
        let msg = channels.validate().unwrap_err().to_string();
        assert!(msg.contains("channels (4)") && msg.contains("30"), "{msg}");
        assert!(LangevinFlowConfig::default().validate().is_ok());
    }
}
