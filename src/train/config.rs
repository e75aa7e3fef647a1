//! The run configuration: one TOML file per dataset (`configs/*.toml`), `--set a.b=value`
//! overrides on top, checked before any data is read.
//!
//! Every table rejects unknown keys, so a typo is an error naming the key rather than a default
//! silently taking its place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::checkpoint::CheckpointKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::LangevinFlowConfig;
use crate::nlb::{BinWidth, DatasetName, Phase, Split};

/// A configuration that cannot be read or used, with the reason spelled out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Everything one training run needs to know: which split, which model, how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Which split folder to train on and how to hold back validation trials.
    pub data: DataConfig,
    /// The model (spec §1–§6, §8); omitted keys take the published defaults.
    #[serde(default)]
    pub model: LangevinFlowConfig,
    /// Optimiser, schedules and logging cadence (spec §7).
    #[serde(default)]
    pub train: TrainConfig,
}

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// NLB dataset name, e.g. `mc_maze`.
    #[serde(with = "display_fromstr")]
    pub dataset: DatasetName,
    /// Bin width in ms (5 or 20).
    #[serde(with = "bin_width_ms")]
    pub bin_width: BinWidth,
    /// `val` (local scoring; eval targets exist) or `test` (EvalAI submission).
    #[serde(with = "display_fromstr")]
    pub phase: Phase,
    /// Overrides `PREP_HOME` / `--prep-home` for this config when set (relative paths are taken
    /// from the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prep_home: Option<PathBuf>,
    /// Share of the training trials held back for validation (0.1).
    #[serde(default = "default_valid_ratio")]
    pub valid_ratio: f64,
    /// Seed of the train/validation partition; separate from the training seed so the same
    /// trials can be held back while the model seed varies.
    #[serde(default)]
    pub seed: u64,
}

fn default_valid_ratio() -> f64 {
    0.1
}

impl DataConfig {
    /// Where the split folders are: `prep_home` when the config sets it, else `default` (PREP_HOME
    /// or `--prep-home`).
    pub fn prep_home_or(&self, default: &Path) -> PathBuf {
        self.prep_home
            .clone()
            .unwrap_or_else(|| default.to_path_buf())
    }

    /// The split these settings name.
    pub fn split(&self) -> Split {
        Split {
            dataset: self.dataset,
            bin_width: self.bin_width,
            phase: self.phase,
        }
    }
}

/// The `[train]` table, with the published maze defaults (spec §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training trials.
    pub epochs: usize,
    /// Trials per minibatch (the last minibatch of an epoch may be smaller).
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// Adam `(beta1, beta2)`.
    pub betas: [f64; 2],
    /// Adam epsilon.
    pub eps: f64,
    /// Final coupled L2 penalty (added to the gradient as `weight_decay · θ`).
    pub weight_decay: f64,
    /// Epochs over which the L2 penalty ramps linearly from 0 to `weight_decay`.
    pub l2_ramp_epochs: usize,
    /// The validation quantity that picks the best checkpoint and drives ReduceLROnPlateau.
    pub monitor: Monitor,
    /// Clip the global gradient norm to this value when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// ReduceLROnPlateau: multiply the learning rate by this factor on a plateau.
    pub plateau_factor: f64,
    /// ReduceLROnPlateau: epochs without improvement tolerated before reducing.
    pub plateau_patience: usize,
    /// ReduceLROnPlateau: relative improvement needed to count as better.
    pub plateau_threshold: f64,
    /// ReduceLROnPlateau: the learning rate never drops below this.
    pub min_lr: f64,
    /// Compute NLB metrics on the eval split every this many epochs (val phase; 0 = never).
    /// For information only: they never choose a model.
    pub eval_every: usize,
    /// Stochastic passes averaged for those metrics and the plots (the submission uses
    /// `model.n_samples`); fewer passes keep the periodic evaluation cheap.
    pub eval_samples: usize,
    /// Write PNG plots every this many epochs (0 = never).
    pub plot_every: usize,
    /// Seed of the initial weights and of every random draw in training.
    pub seed: u64,
    /// The checkpoint `submit` predicts with unless told: "best" (spec §7) or "last" (the
    /// release).
    pub submit_checkpoint: CheckpointKind,
    /// Exponential moving average of the weights, decay per optimizer step (0 = off, the
    /// spec's and the release's training). When on, the averaged weights are the ones validated,
    /// scored, kept as `best.mpk` and (as `average.mpk`) submitted as "last"; `last.mpk` keeps
    /// the trained weights to resume from. See [`super::average`].
    pub ema_decay: f64,
    /// Start the readout's bias at each neuron's log mean count per bin over the training
    /// trials, so the first steps need not learn the firing rates (false: drawn as any bias).
    pub mean_rate_bias: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 2000,
            batch_size: 256,
            lr: 3e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 2e-5,
            l2_ramp_epochs: 500,
            monitor: Monitor::Nll,
            grad_clip: None,
            plateau_factor: 0.95,
            plateau_patience: 10,
            plateau_threshold: 0.0,
            min_lr: 1e-5,
            eval_every: 50,
            eval_samples: 10,
            plot_every: 100,
            seed: 0,
            submit_checkpoint: CheckpointKind::Best,
            ema_decay: 0.0,
            mean_rate_bias: false,
        }
    }
}

impl TrainConfig {
    /// Coupled L2 penalty at `epoch`: `weight_decay · min(epoch / l2_ramp_epochs, 1)`.
    ///
    /// The penalty starts at zero so early epochs fit the data before the weights are pulled in,
    /// as the KL weight does; a zero ramp means the full penalty from the start.
    pub fn l2_at(&self, epoch: usize) -> f64 {
        if self.l2_ramp_epochs == 0 {
            return self.weight_decay;
        }
        self.weight_decay * (epoch as f64 / self.l2_ramp_epochs as f64).min(1.0)
    }
}

/// Which validation number selects the best checkpoint and steps the learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// The Poisson likelihood of the validation trials (held-in and held-out neurons, observed
    /// and forward bins): how well the model predicts unseen trials. The default, because the
    /// KL part of the objective is dominated by the velocity term's large constant and by the
    /// ramped weight, so it hides changes in the fit (lfads-torch monitors the likelihood too).
    Nll,
    /// `nll + kl_weight · kl`: the objective at its final KL weight, comparable across epochs.
    FullLoss,
    /// `nll + beta(epoch) · kl`: the objective as trained, spec §7 read literally. During the
    /// KL ramp it grows with the weight, so its minimum is usually one of the first epochs.
    Loss,
    /// The Poisson likelihood of the validation trials' held-out neurons over the observed
    /// bins, predicted from their held-in neurons: what co-bps scores. On small datasets the
    /// full likelihood keeps falling while the held-out prediction overfits, so this is the
    /// monitor that picks the checkpoint the benchmark would.
    HeldoutNll,
}

impl Monitor {
    /// The monitored value from an epoch's validation parts.
    pub fn value(self, nll: f64, kl: f64, loss: f64, heldout_nll: f64, kl_weight: f64) -> f64 {
        match self {
            Monitor::FullLoss => nll + kl_weight * kl,
            Monitor::Loss => loss,
            Monitor::Nll => nll,
            Monitor::HeldoutNll => heldout_nll,
        }
    }
}

/// Keys that may change between a run and its resumption: they set how long to train and what to
/// log, not what the model computes, so a resumed run stays exactly the continued one.
pub const RESUMABLE_KEYS: [&str; 4] = [
    "train.epochs",
    "train.eval_every",
    "train.eval_samples",
    "train.plot_every",
];

impl RunConfig {
    /// Reads a config file and applies `--set key=value` overrides, then validates.
    ///
    /// Each override is `dotted.key=value` with `value` parsed as TOML (`50`, `2e-5`, `"x"`,
    /// `[0.9, 0.99]`); anything that is not valid TOML is taken as a bare string, so
    /// `data.dataset=mc_rtt` works without quotes.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        for set in sets {
            apply_set(&mut table, set)?;
        }
        let what = if sets.is_empty() {
            path.display().to_string()
        } else {
            format!("{} with --set {}", path.display(), sets.join(" --set "))
        };
        Self::from_table(table).map_err(|e| ConfigError(format!("{what}: {}", e.0)))
    }

    /// Parses and validates a complete configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e| ConfigError(format!("{e}")))?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let config: RunConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.message().trim().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The resolved configuration as TOML, written into the run folder.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a run config is plain TOML data")
    }

    /// Rejects settings that cannot train, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model
            .validate()
            .map_err(|e| ConfigError(format!("[model] {e}")))?;
        let fail = |key: &str, msg: String| Err(ConfigError(format!("{key}: {msg}")));
        let d = &self.data;
        if !(d.valid_ratio > 0.0 && d.valid_ratio < 1.0) {
            return fail(
                "data.valid_ratio",
                format!(
                    "{} must be in (0, 1): the validation loss drives the schedule and the best checkpoint",
                    d.valid_ratio
                ),
            );
        }
        let t = &self.train;
        if t.epochs == 0 {
            return fail("train.epochs", "must be at least 1".into());
        }
        if t.batch_size == 0 {
            return fail("train.batch_size", "must be at least 1".into());
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return fail("train.lr", format!("{} must be positive", t.lr));
        }
        if !t.betas.iter().all(|b| (0.0..1.0).contains(b)) {
            return fail(
                "train.betas",
                format!("{:?} must both be in [0, 1)", t.betas),
            );
        }
        if !(t.eps.is_finite() && t.eps > 0.0) {
            return fail("train.eps", format!("{} must be positive", t.eps));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return fail(
                "train.weight_decay",
                format!("{} must be non-negative", t.weight_decay),
            );
        }
        if let Some(c) = t.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return fail("train.grad_clip", format!("{c} must be positive"));
            }
        }
        if !(t.plateau_factor > 0.0 && t.plateau_factor < 1.0) {
            return fail(
                "train.plateau_factor",
                format!("{} must be in (0, 1)", t.plateau_factor),
            );
        }
        if !(t.plateau_threshold.is_finite() && (0.0..1.0).contains(&t.plateau_threshold)) {
            return fail(
                "train.plateau_threshold",
                format!("{} must be in [0, 1)", t.plateau_threshold),
            );
        }
        if !(t.min_lr.is_finite() && t.min_lr >= 0.0) {
            return fail("train.min_lr", format!("{} must be non-negative", t.min_lr));
        }
        if t.eval_samples == 0 {
            return fail("train.eval_samples", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&t.ema_decay) {
            return fail(
                "train.ema_decay",
                format!("{} must be in [0, 1) (0 turns averaging off)", t.ema_decay),
            );
        }
        Ok(())
    }

    /// Dotted keys whose values differ between two configurations, sorted.
    pub fn differing_keys(&self, other: &RunConfig) -> Vec<String> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        flatten("", &toml::Value::try_from(self).expect("TOML data"), &mut a);
        flatten(
            "",
            &toml::Value::try_from(other).expect("TOML data"),
            &mut b,
        );
        let mut keys: Vec<String> = a
            .iter()
            .chain(&b)
            .map(|(k, _)| k.clone())
            .filter(|k| a.iter().find(|(x, _)| x == k) != b.iter().find(|(x, _)| x == k))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        v => out.push((prefix.to_string(), v.clone())),
    }
}

/// Applies one `a.b.c=value` override to a parsed config table.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<(), ConfigError> {
    let (key, raw) = set.split_once('=').ok_or_else(|| {
        ConfigError(format!(
            "--set {set}: expected key=value, e.g. train.epochs=50"
        ))
    })?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError(format!("--set {set}: empty key segment")));
    }
    let value = parse_value(raw.trim());
    let (last, parents) = parts.split_last().expect("at least one segment");
    let mut cursor = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = cursor
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = entry.as_table_mut().ok_or_else(|| {
            ConfigError(format!(
                "--set {set}: `{}` is a value, not a table",
                parts[..=i].join(".")
            ))
        })?;
    }
    cursor.insert(last.to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Serde through `Display` / `FromStr`, for the dataset and phase names.
mod display_fromstr {
    use super::*;

    pub fn serialize<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A bin width as the integer number of milliseconds (`bin_width = 20`).
mod bin_width_ms {
    use super::*;

    pub fn serialize<S: Serializer>(v: &BinWidth, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(v.ms())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BinWidth, D::Error> {
        i64::deserialize(d)?
            .to_string()
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[data]\ndataset = \"mc_maze\"\nbin_width = 20\nphase = \"val\"\n";

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every shipped config parses; the published ones have the release's size and bins, and
    /// the release ones turn on every release behaviour.
    #[test]
    fn shipped_configs_parse_and_say_what_they_claim() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut seen = 0;
        for dir in [root.clone(), root.join("release")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let c = RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                let cpu_recipe = name.contains("_cpu");
                if cpu_recipe {
                    assert!(
                        c.train.mean_rate_bias,
                        "{}: starts at mean rates",
                        path.display()
                    );
                }
                if name == "quick" || cpu_recipe {
                    continue;
                }
                assert_eq!(c.model.hidden_size, 280, "{}", path.display());
                assert_eq!(c.data.bin_width.ms(), 20, "{}", path.display());
                let release = dir.ends_with("release");
                let m = &c.model;
                let switches = [
                    m.encoder_input == crate::model::EncoderInput::Previous,
                    m.attention_dropout == 0.05,
                    !m.tfixup_value,
                    m.predict_dropout,
                    m.potential_init == crate::model::PotentialInit::Zeros,
                    m.velocity_kl == crate::model::VelocityKl::Release,
                    c.train.submit_checkpoint == CheckpointKind::Last,
                ];
                assert!(
                    switches.iter().all(|&s| s == release),
                    "{}: {switches:?}",
                    path.display()
                );
            }
        }
        assert!(seen >= 12, "{seen} configs");
    }

    #[test]
    fn minimal_config_takes_published_defaults_and_round_trips() {
        let c = RunConfig::from_toml(MINIMAL).unwrap();
        assert_eq!(c.data.split().dir_name(), "mc_maze-20ms-val");
        assert_eq!(c.data.valid_ratio, 0.1);
        assert_eq!(c.model, LangevinFlowConfig::default());
        assert_eq!(c.train, TrainConfig::default());
        let back = RunConfig::from_toml(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn overrides_parse_values_as_toml_or_bare_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), MINIMAL);
        let sets = [
            "train.epochs=50",
            "data.bin_width=5",
            "data.dataset=mc_rtt",
            "train.betas=[0.8, 0.9]",
            "model.latent_size=32",
            "train.grad_clip=200.0",
        ]
        .map(String::from);
        let c = RunConfig::load(&path, &sets).unwrap();
        assert_eq!(c.train.epochs, 50);
        assert_eq!(c.data.bin_width.ms(), 5);
        assert_eq!(c.data.dataset, DatasetName::McRtt);
        assert_eq!(c.train.betas, [0.8, 0.9]);
        assert_eq!(c.model.latent_size, Some(32));
        assert_eq!(c.train.grad_clip, Some(200.0));
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &format!("{MINIMAL}[model]\nhiden_size = 3\n"));
        let msg = RunConfig::load(&path, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("hiden_size") && msg.contains("c.toml"),
            "{msg}"
        );
        let path = write(dir.path(), MINIMAL);
        let msg = RunConfig::load(&path, &["train.epoch=3".into()])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("epoch") && msg.contains("--set train.epoch=3"),
            "{msg}"
        );
        let msg = RunConfig::load(&path, &["trian.epochs=3".into()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("trian"), "{msg}");
    }

    #[test]
    fn invalid_values_name_the_constraint() {
        let cases = [
            ("model.n_heads=11", "n_heads (11)"),
            (
                "model.latent_size=30",
                "channels (4) must divide latent_size (30)",
            ),
            ("train.batch_size=0", "train.batch_size"),
            ("data.valid_ratio=0.0", "data.valid_ratio"),
            ("data.bin_width=10", "bin width"),
            ("data.dataset=mc_mazz", "mc_mazz"),
            ("train.plateau_factor=1.5", "train.plateau_factor"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), MINIMAL);
        for (set, want) in cases {
            let msg = RunConfig::load(&path, &[set.to_string()])
                .unwrap_err()
                .to_string();
            assert!(msg.contains(want), "{set}: {msg}");
        }
        let msg = RunConfig::load(&path, &["train.epochs".into()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("key=value"), "{msg}");
    }

    #[test]
    fn differing_keys_lists_changed_settings() {
        let a = RunConfig::from_toml(MINIMAL).unwrap();
        let mut b = a.clone();
        b.train.epochs = 7;
        b.model.gamma = 0.7;
        b.train.grad_clip = Some(1.0);
        assert_eq!(
            a.differing_keys(&b),
            ["model.gamma", "train.epochs", "train.grad_clip"]
        );
    }

    #[test]
    fn l2_ramps_then_saturates() {
        let t = TrainConfig::default();
        assert_eq!(t.l2_at(0), 0.0);
        assert!((t.l2_at(250) - 1e-5).abs() < 1e-18);
        assert_eq!(t.l2_at(5000), 2e-5);
    }

    #[test]
    fn monitor_names_and_values() {
        let c =
            RunConfig::from_toml(&format!("{MINIMAL}[train]\nmonitor = \"full_loss\"\n")).unwrap();
        assert_eq!(c.train.monitor, Monitor::FullLoss);
        assert!(RunConfig::from_toml(&format!("{MINIMAL}[train]\nmonitor = \"kl\"\n")).is_err());
        assert_eq!(Monitor::FullLoss.value(1.0, 10.0, 1.5, 0.7, 0.1), 2.0);
        assert_eq!(Monitor::Loss.value(1.0, 10.0, 1.5, 0.7, 0.1), 1.5);
        assert_eq!(Monitor::Nll.value(1.0, 10.0, 1.5, 0.7, 0.1), 1.0);
        assert_eq!(Monitor::HeldoutNll.value(1.0, 10.0, 1.5, 0.7, 0.1), 0.7);
    }
}
