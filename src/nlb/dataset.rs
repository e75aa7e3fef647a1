//! The seven NLB datasets (plus the synthetic `lorenz` benchmark), bin widths and phases as
//! types, with each dataset's reference PARAMS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A name the user typed that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// One of the seven Neural Latents Benchmark datasets, or the synthetic Lorenz benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetName {
    McMaze,
    McRtt,
    Area2Bump,
    DmfcRsg,
    McMazeLarge,
    McMazeMedium,
    McMazeSmall,
    /// Spikes from a Lorenz attractor with known rates (model spec §9); not an NLB dataset, so
    /// it is not in [`DatasetName::ALL`] and `all` never selects it.
    Lorenz,
}

impl DatasetName {
    /// In the order the NLB evaluator visits them.
    pub const ALL: [DatasetName; 7] = [
        DatasetName::McMaze,
        DatasetName::McRtt,
        DatasetName::Area2Bump,
        DatasetName::DmfcRsg,
        DatasetName::McMazeLarge,
        DatasetName::McMazeMedium,
        DatasetName::McMazeSmall,
    ];

    /// Datasets that only `langevin synth` makes: named explicitly, never part of `all`.
    pub const SYNTHETIC: [DatasetName; 1] = [DatasetName::Lorenz];

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::McMaze => "mc_maze",
            DatasetName::McRtt => "mc_rtt",
            DatasetName::Area2Bump => "area2_bump",
            DatasetName::DmfcRsg => "dmfc_rsg",
            DatasetName::McMazeLarge => "mc_maze_large",
            DatasetName::McMazeMedium => "mc_maze_medium",
            DatasetName::McMazeSmall => "mc_maze_small",
            DatasetName::Lorenz => "lorenz",
        }
    }

    /// DANDI dandiset number and subject folder, as `dandi download` lays them out.
    pub fn dandi_folder(self) -> (&'static str, &'static str) {
        match self {
            DatasetName::McMaze => ("000128", "sub-Jenkins"),
            DatasetName::McRtt => ("000129", "sub-Indy"),
            DatasetName::Area2Bump => ("000127", "sub-Han"),
            DatasetName::DmfcRsg => ("000130", "sub-Haydn"),
            DatasetName::McMazeLarge => ("000138", "sub-Jenkins"),
            DatasetName::McMazeMedium => ("000139", "sub-Jenkins"),
            DatasetName::McMazeSmall => ("000140", "sub-Jenkins"),
            DatasetName::Lorenz => ("lorenz", "sub-Lorenz"),
        }
    }

    /// The folder holding this dataset's NWB files under `DATA_HOME`.
    pub fn data_dir(self, data_home: &Path) -> PathBuf {
        let (set, subject) = self.dandi_folder();
        data_home.join(set).join(subject)
    }

    /// `[500]`, `[250]` or `[100]` (training trials) for the scaling datasets, whose metrics the
    /// evaluator merges into one leaderboard entry and tells apart by this prefix.
    pub fn scaling_prefix(self) -> Option<&'static str> {
        match self {
            DatasetName::McMazeLarge => Some("[500]"),
            DatasetName::McMazeMedium => Some("[250]"),
            DatasetName::McMazeSmall => Some("[100]"),
            _ => None,
        }
    }

    /// dmfc_rsg is scored with tp corr instead of vel R2 and needs no training rates.
    pub fn is_dmfc(self) -> bool {
        self == DatasetName::DmfcRsg
    }

    /// HDF5 group in target and submission files at `bin_ms`: no suffix at 5 ms, `_<bin>` else.
    pub fn group(self, bin_ms: u32) -> String {
        format!("{}{}", self.as_str(), BinWidth(bin_ms).group_suffix())
    }

    /// Whether the dataset has a behaviour variable to decode (every NLB dataset does).
    pub fn has_behavior(self) -> bool {
        !matches!(self.params().behavior, Behavior::None)
    }

    pub fn is_maze(self) -> bool {
        matches!(
            self,
            DatasetName::McMaze
                | DatasetName::McMazeLarge
                | DatasetName::McMazeMedium
                | DatasetName::McMazeSmall
        )
    }

    pub fn params(self) -> DatasetParams {
        use DatasetName::*;
        let maze_psth = |kern_sd| {
            Some(PsthParams {
                cond_fields: &["trial_type", "trial_version"],
                window: Window::around("move_onset_time", -250, 450, false),
                kern_sd,
                pad_front: false,
                seg_len: None,
                skip_outliers: false,
            })
        };
        let maze = |lag, kern_sd| DatasetParams {
            behavior: Behavior::Series("hand_vel"),
            lag,
            make: Window::around("move_onset_time", -250, 450, false),
            eval_make: Window::around("move_onset_time", -250, 450, false),
            psth: maze_psth(kern_sd),
            decode_masks: false,
            jitter: false,
        };
        match self {
            McMaze => maze(100, 70),
            McMazeLarge | McMazeMedium | McMazeSmall => maze(120, 50),
            McRtt => DatasetParams {
                behavior: Behavior::Series("finger_vel"),
                lag: 140,
                make: Window::around("start_time", 0, 600, true),
                eval_make: Window::around("start_time", 0, 600, true),
                psth: None,
                decode_masks: false,
                jitter: false,
            },
            Area2Bump => DatasetParams {
                behavior: Behavior::Series("hand_vel"),
                lag: -20,
                make: Window::around("move_onset_time", -100, 500, false),
                eval_make: Window::around("move_onset_time", -100, 500, true),
                psth: Some(PsthParams {
                    cond_fields: &["cond_dir", "ctr_hold_bump"],
                    window: Window::around("move_onset_time", -100, 500, false),
                    kern_sd: 40,
                    pad_front: false,
                    seg_len: None,
                    skip_outliers: false,
                }),
                decode_masks: true,
                jitter: false,
            },
            DmfcRsg => DatasetParams {
                behavior: Behavior::TrialTable(&["is_eye", "theta", "is_short", "ts", "tp"]),
                lag: 0,
                make: Window::around("go_time", -1500, 0, true),
                eval_make: Window::between("set_time", "go_time", "go_time"),
                psth: Some(PsthParams {
                    cond_fields: &["is_eye", "theta", "is_short", "ts"],
                    window: Window::between("set_time", "go_time", "go_time"),
                    kern_sd: 70,
                    pad_front: true,
                    seg_len: Some(1500),
                    skip_outliers: true,
                }),
                decode_masks: false,
                jitter: true,
            },
            // Fixed-length trials: 600 ms observed, then the 200 ms forward window.
            Lorenz => DatasetParams {
                behavior: Behavior::None,
                lag: 0,
                make: Window::around("start_time", 0, 600, false),
                eval_make: Window::around("start_time", 0, 600, false),
                psth: None,
                decode_masks: false,
                jitter: false,
            },
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let known = || DatasetName::ALL.into_iter().chain(DatasetName::SYNTHETIC);
        known().find(|d| d.as_str() == s).ok_or_else(|| ParseError {
            what: "dataset",
            value: s.to_string(),
            expected: known().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Bin width in milliseconds: NLB defines 5 ms and 20 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BinWidth(u32);

impl BinWidth {
    pub const ALL: [BinWidth; 2] = [BinWidth(5), BinWidth(20)];

    pub fn ms(self) -> i64 {
        i64::from(self.0)
    }

    pub fn ns(self) -> i64 {
        self.ms() * 1_000_000
    }

    /// Target-file group suffix: `''` at 5 ms, `_<bw>` otherwise.
    pub fn group_suffix(self) -> String {
        if self.0 == 5 {
            String::new()
        } else {
            format!("_{}", self.0)
        }
    }
}

impl fmt::Display for BinWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for BinWidth {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim_end_matches("ms") {
            "5" | "05" => Ok(BinWidth(5)),
            "20" => Ok(BinWidth(20)),
            _ => Err(ParseError {
                what: "bin width",
                value: s.to_string(),
                expected: "5, 20".into(),
            }),
        }
    }
}

/// Which benchmark phase a split serves: `val` (local scoring) or `test` (EvalAI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Val,
    Test,
}

impl Phase {
    pub const ALL: [Phase; 2] = [Phase::Val, Phase::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Val => "val",
            Phase::Test => "test",
        }
    }

    /// Trial splits used for training inputs.
    pub fn train_splits(self) -> &'static [&'static str] {
        match self {
            Phase::Val => &["train"],
            Phase::Test => &["train", "val"],
        }
    }

    /// Trial split evaluated.
    pub fn eval_split(self) -> &'static str {
        match self {
            Phase::Val => "val",
            Phase::Test => "test",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "val" => Ok(Phase::Val),
            "test" => Ok(Phase::Test),
            _ => Err(ParseError {
                what: "phase",
                value: s.to_string(),
                expected: "val, test".into(),
            }),
        }
    }
}

/// One preprocessed split: a dataset at a bin width for a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Split {
    pub dataset: DatasetName,
    pub bin_width: BinWidth,
    pub phase: Phase,
}

impl Split {
    /// `{dataset}-{bw:02}ms-{phase}`, the folder name nlb-lightning uses.
    pub fn dir_name(&self) -> String {
        format!(
            "{}-{:02}ms-{}",
            self.dataset,
            self.bin_width.ms(),
            self.phase
        )
    }

    pub fn dir(&self, prep_home: &Path) -> SplitDir {
        SplitDir(prep_home.join(self.dir_name()))
    }

    /// Group name in target and submission files: `<dataset>` or `<dataset>_20`.
    pub fn group(&self) -> String {
        format!("{}{}", self.dataset, self.bin_width.group_suffix())
    }
}

impl FromStr for Split {
    type Err = ParseError;
    /// Parses a split folder name such as `mc_maze-05ms-val`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError {
            what: "split folder",
            value: s.to_string(),
            expected: "{dataset}-{bw:02}ms-{phase}".into(),
        };
        let mut parts = s.rsplitn(3, '-');
        let phase = parts.next().ok_or_else(bad)?.parse()?;
        let bin_width = parts.next().ok_or_else(bad)?.parse()?;
        let dataset = parts.next().ok_or_else(bad)?.parse()?;
        Ok(Split {
            dataset,
            bin_width,
            phase,
        })
    }
}

/// A split folder under `PREP_HOME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitDir(pub PathBuf);

impl SplitDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Where the behaviour variable comes from.
#[derive(Debug, Clone, Copy)]
pub enum Behavior {
    /// A continuous series in the frame, e.g. `hand_vel`.
    Series(&'static str),
    /// Columns of the trials table (dmfc_rsg).
    TrialTable(&'static [&'static str]),
    /// No behaviour (lorenz): no behaviour tensors are written and vel R2 is not scored.
    None,
}

/// How trial windows are cut (nlb_tools make_params).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start_field: &'static str,
    pub end_field: &'static str,
    pub align_field: Option<&'static str>,
    /// `(a, b)` in ms relative to the align field, or `None` to use start→end.
    pub range: Option<(i64, i64)>,
    pub allow_overlap: bool,
}

impl Window {
    const fn around(align: &'static str, a: i64, b: i64, allow_overlap: bool) -> Self {
        Window {
            start_field: "start_time",
            end_field: "end_time",
            align_field: Some(align),
            range: Some((a, b)),
            allow_overlap,
        }
    }

    const fn between(start: &'static str, end: &'static str, align: &'static str) -> Self {
        Window {
            start_field: start,
            end_field: end,
            align_field: Some(align),
            range: None,
            allow_overlap: true,
        }
    }
}

/// PSTH parameters of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct PsthParams {
    pub cond_fields: &'static [&'static str],
    pub window: Window,
    pub kern_sd: i64,
    pub pad_front: bool,
    pub seg_len: Option<i64>,
    pub skip_outliers: bool,
}

/// The reference's PARAMS entry for one dataset (identical at 5 and 20 ms).
#[derive(Debug, Clone, Copy)]
pub struct DatasetParams {
    pub behavior: Behavior,
    pub lag: i64,
    pub make: Window,
    pub eval_make: Window,
    pub psth: Option<PsthParams>,
    pub decode_masks: bool,
    pub jitter: bool,
}

/// Forward-prediction length in ms, the same for every dataset.
pub const FP_LEN_MS: i64 = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_round_trip() {
        let s: Split = "mc_maze_small-05ms-val".parse().unwrap();
        assert_eq!(s.dataset, DatasetName::McMazeSmall);
        assert_eq!(s.bin_width.ms(), 5);
        assert_eq!(s.phase, Phase::Val);
        assert_eq!(s.dir_name(), "mc_maze_small-05ms-val");
        assert_eq!(s.group(), "mc_maze_small");
        let s: Split = "dmfc_rsg-20ms-test".parse().unwrap();
        assert_eq!(s.group(), "dmfc_rsg_20");
        let s: Split = "lorenz-05ms-val".parse().unwrap();
        assert_eq!(s.dataset, DatasetName::Lorenz);
    }

    #[test]
    fn lorenz_parses_but_is_not_one_of_all() {
        assert_eq!(
            "lorenz".parse::<DatasetName>().unwrap(),
            DatasetName::Lorenz
        );
        assert!(!DatasetName::ALL.contains(&DatasetName::Lorenz));
        assert!(!DatasetName::Lorenz.has_behavior());
        assert!(DatasetName::ALL.iter().all(|d| d.has_behavior()));
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let e = "mc_mazz".parse::<DatasetName>().unwrap_err().to_string();
        assert!(e.contains("mc_mazz") && e.contains("area2_bump"), "{e}");
        assert!("10".parse::<BinWidth>().is_err());
        assert!("train".parse::<Phase>().is_err());
    }
}
