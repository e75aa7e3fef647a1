//! The `langevin` command line: parses flags and hands each subcommand to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use langevin::nlb::files::SplitFiles;
use langevin::nlb::preprocess::{self, PreprocessOptions};
use langevin::nlb::{BinWidth, DatasetName, Phase};
use langevin::runtime::Workload;
use langevin::train;

mod cli;
use cli::sweep::{ensemble, sweep, EnsembleArgs, SweepArgs};

/// From raw Neural Latents Benchmark recordings to a scored LangevinFlow model.
#[derive(Parser)]
#[command(name = "langevin", version, about)]
struct Cli {
    /// Threads for training kernels, HDF5 compression, preprocessing and evaluation (default:
    /// every core). A run is reproducible for a given seed, backend and thread count.
    #[arg(long, global = true, env = "LANGEVIN_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn DANDI NWB files into NLB train/eval tensors (one folder per split).
    Preprocess(PreprocessArgs),
    /// Score a submission file against an eval target with the NLB metrics.
    Evaluate(EvaluateArgs),
    /// Fit the NLB spike-smoothing baseline on one split folder and write its submission.
    Baseline(BaselineArgs),
    /// Write a synthetic dataset with known firing rates in the DANDI layout.
    Synth(SynthArgs),
    /// Run the pipeline end to end on a small synthetic dataset.
    Quickstart(QuickstartArgs),
    /// Train LangevinFlow on one split folder, as a config file says.
    Train(TrainArgs),
    /// Write the EvalAI submission file of a run (every trained split of one phase).
    Submit(SubmitArgs),
    /// Hold back a seeded share of a train_input.h5's trials as a val split to develop against.
    Holdout(HoldoutArgs),
    /// Train one config over grid values, random draws, seeds and splits (here or on Slurm).
    Sweep(Box<SweepArgs>),
    /// Average several runs' predictions into one submission (mean of log-rates) and score it.
    Ensemble(EnsembleArgs),
}

#[derive(Args)]
struct HoldoutArgs {
    /// An nlb_tools train_input.h5 (held-in, held-out and forward spikes, behaviour).
    #[arg(long)]
    input: PathBuf,
    /// The dataset its trials come from.
    #[arg(long)]
    dataset: DatasetName,
    /// Bin width of the input file in ms.
    #[arg(long, default_value_t = 5)]
    input_bin_width: u32,
    /// Bin width of the split (a multiple of the input's; bins are summed).
    #[arg(long, default_value = "20")]
    bin_width: BinWidth,
    /// Share of the trials held back as evaluation trials.
    #[arg(long, default_value_t = 0.2)]
    eval_fraction: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the split folder {dataset}-{bw:02}ms-val is written.
    #[arg(long, env = "PREP_HOME", default_value = "prep")]
    prep_home: PathBuf,
}

#[derive(Args)]
struct SubmitArgs {
    /// The run to submit: RUNS_HOME/{run_tag}/ holds one folder per trained split.
    #[arg(long)]
    run_tag: String,
    /// val or test (default: the phase of the run's splits).
    #[arg(long)]
    phase: Option<Phase>,
    /// best (lowest validation value) or last (default: each run's train.submit_checkpoint).
    #[arg(long)]
    checkpoint: Option<String>,
    /// Stochastic passes averaged per trial (default: each run's model.n_samples).
    #[arg(long)]
    samples: Option<usize>,
    /// Seed of the latent samples and noise: the same seed gives an identical file.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// flex or ndarray (CPU), or wgpu / cuda when built with those cargo features.
    #[arg(long, default_value = "flex")]
    backend: String,
    #[arg(long, env = "RUNS_HOME", default_value = "runs")]
    runs_home: PathBuf,
    /// Where split folders are read from (a run's data.prep_home wins).
    #[arg(long, env = "PREP_HOME", default_value = "prep")]
    prep_home: PathBuf,
}

#[derive(Args)]
struct TrainArgs {
    /// Run config (TOML), e.g. configs/maze.toml: dataset, bin width, phase, model, training.
    #[arg(long)]
    config: PathBuf,
    /// Override one config value, parsed as TOML: `--set train.epochs=50 --set data.bin_width=20`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run folder name under RUNS_HOME (default: the config file's stem).
    #[arg(long)]
    run_tag: Option<String>,
    /// Continue the run from its last checkpoint (only train.epochs and logging may change).
    #[arg(long)]
    resume: bool,
    /// flex or ndarray (CPU), or wgpu / cuda when built with those cargo features.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Where runs are written: RUNS_HOME/{run_tag}/{dataset}-{bw:02}ms-{phase}/.
    #[arg(long, env = "RUNS_HOME", default_value = "runs")]
    runs_home: PathBuf,
    /// Where split folders are read from (a config's data.prep_home wins).
    #[arg(long, env = "PREP_HOME", default_value = "prep")]
    prep_home: PathBuf,
}

#[derive(Args)]
struct QuickstartArgs {
    /// Folder for the synthetic data and its split folders.
    #[arg(long, default_value = "langevin-quickstart")]
    dir: PathBuf,
    /// tiny, small or full.
    #[arg(long, default_value = "small")]
    scale: String,
    /// Train for this many epochs instead of the quick config's.
    #[arg(long)]
    epochs: Option<usize>,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The target file `preprocess` wrote (`eval_target.h5` of a val split).
    #[arg(long)]
    target: PathBuf,
    /// A submission file (`submission-val.h5`), one group per dataset and bin width.
    #[arg(long)]
    submission: PathBuf,
    /// Print nlb_tools' result list as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// True rates of a synthetic split (`truth.h5`, written by `preprocess` beside the target):
    /// adds `rate R2` (the submission against the true rates) and `truth co-bps` (the ceiling).
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Args)]
struct BaselineArgs {
    /// A split folder `preprocess` wrote, e.g. prep/mc_maze-20ms-val; its name gives the dataset
    /// and bin width.
    #[arg(long)]
    split: PathBuf,
    /// Submission file to write (default: <split>/submission_smoothing.h5).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Gaussian kernel SD in ms (default: the reference's tuned value for the dataset).
    #[arg(long, value_name = "MS")]
    kern_sd: Option<f64>,
    /// L2 penalty of the held-out neurons' Poisson GLMs (default: the reference's tuned value).
    #[arg(long, value_name = "A")]
    alpha: Option<f64>,
}

#[derive(Args)]
struct SynthArgs {
    /// Dataset to imitate: one of the seven NLB names, or `lorenz` (the paper's synthetic
    /// benchmark). A `.truth.h5` file with the true rates is written beside each NWB file.
    #[arg(long)]
    dataset: String,
    /// DATA_HOME to write into (files go to <out>/<dandiset>/<subject>/).
    #[arg(long)]
    out: PathBuf,
    /// tiny, small or full (the real dataset's neuron and trial counts).
    #[arg(long, default_value = "small")]
    scale: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Paths shared by the subcommands; flags override `.env` and the environment.
#[derive(Args)]
struct Homes {
    /// Root of the DANDI downloads (holds 000128/sub-Jenkins/…).
    #[arg(long, env = "DATA_HOME")]
    data_home: Option<PathBuf>,
    /// Where split folders `{dataset}-{bw:02}ms-{phase}` are written.
    #[arg(long, env = "PREP_HOME", default_value = "prep")]
    prep_home: PathBuf,
}

#[derive(Args)]
struct PreprocessArgs {
    /// A dataset name (mc_maze, mc_rtt, area2_bump, dmfc_rsg, mc_maze_large, mc_maze_medium, mc_maze_small) or `all`.
    #[arg(long)]
    dataset: String,
    /// 5, 20 or `all`.
    #[arg(long, default_value = "all")]
    bin_width: String,
    /// val, test or `all`.
    #[arg(long, default_value = "all")]
    phase: String,
    #[command(flatten)]
    homes: Homes,
}

fn all_or<T: std::str::FromStr + Copy>(value: &str, all: &[T]) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    if value == "all" {
        Ok(all.to_vec())
    } else {
        value
            .split(',')
            .map(|v| v.trim().parse::<T>().map_err(anyhow::Error::from))
            .collect()
    }
}

pub(crate) fn split_files() -> SplitFiles {
    let var = |k: &str, d: String| std::env::var(k).unwrap_or(d);
    let d = SplitFiles::default();
    SplitFiles {
        train_input: var("TRAIN_INPUT_FILE", d.train_input),
        eval_input: var("EVAL_INPUT_FILE", d.eval_input),
        eval_target: var("EVAL_TARGET_FILE", d.eval_target),
    }
}

fn preprocess(args: PreprocessArgs) -> Result<()> {
    let opts = PreprocessOptions {
        data_home: args
            .homes
            .data_home
            .ok_or(preprocess::PreprocessError::NoDataHome)?,
        prep_home: args.homes.prep_home,
        datasets: all_or(&args.dataset, &DatasetName::ALL)?,
        bin_widths: all_or(&args.bin_width, &BinWidth::ALL)?,
        phases: all_or(&args.phase, &Phase::ALL)?,
        files: split_files(),
        progress: true,
        companion: Some(langevin::synth::truth::companion),
    };
    let reports = preprocess::run(&opts)?;
    print!("{}", preprocess::summary_table(&reports));
    println!("split folders are in {}", opts.prep_home.display());
    Ok(())
}

fn evaluate(args: EvaluateArgs) -> Result<()> {
    use langevin::evaluate::{
        evaluate_files_with_truth, format_table_with_truth, skipped_notes, Report,
    };
    let (results, truth) =
        evaluate_files_with_truth(&args.target, &args.submission, args.truth.as_deref())?;
    if results.is_empty() {
        anyhow::bail!(
            "no dataset group of {} has a matching group with `eval_rates_heldout` in {}",
            args.target.display(),
            args.submission.display()
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Report::from_results_with_truth(&results, &truth))?
        );
        eprint!("{}", skipped_notes(&results));
    } else {
        print!("{}", format_table_with_truth(&results, &truth));
    }
    Ok(())
}

fn baseline(args: BaselineArgs) -> Result<()> {
    use langevin::baseline;
    let opts = baseline::BaselineOptions::for_dir(&args.split, args.kern_sd, args.alpha)?;
    let out = args
        .out
        .unwrap_or_else(|| args.split.join(baseline::DEFAULT_FILE));
    let rates = baseline::smoothing_rates(&args.split, &split_files(), &opts)?;
    baseline::write_submission(&out, &rates)?;
    print!("{}", baseline::summary_text(&rates, &out));
    Ok(())
}

fn holdout(args: HoldoutArgs) -> Result<()> {
    use langevin::nlb::holdout::{holdout, HoldoutOptions};
    let report = holdout(&HoldoutOptions {
        input: args.input,
        input_bin_ms: args.input_bin_width,
        dataset: args.dataset,
        bin_width: args.bin_width,
        eval_fraction: args.eval_fraction,
        seed: args.seed,
        prep_home: args.prep_home,
    })?;
    println!(
        "{}: {} train, {} eval trials (eval = input trials {:?})",
        report.dir.display(),
        report.train_trials,
        report.eval_trials,
        report.eval_indices
    );
    Ok(())
}

fn synth(args: SynthArgs) -> Result<()> {
    let dataset: DatasetName = args.dataset.parse()?;
    let scale: langevin::synth::Scale = args.scale.parse().map_err(anyhow::Error::msg)?;
    let report = langevin::synth::synth(&args.out, dataset, scale, args.seed)?;
    for (f, t) in report.files.iter().zip(&report.truth) {
        println!("wrote {}", f.display());
        println!("      {}", t.display());
    }
    println!("{} trials, {} units", report.trials, report.units);
    Ok(())
}

fn quickstart(args: QuickstartArgs) -> Result<()> {
    let scale: langevin::synth::Scale = args.scale.parse().map_err(anyhow::Error::msg)?;
    let report = langevin::quickstart::run(&args.dir, scale, args.epochs, true)?;
    print!("{}", preprocess::summary_table(&report.splits));
    print!("{}", train::summary_text(&report.train));
    println!();
    print!("{}", langevin::quickstart::scores_table(&report.scores));
    println!();
    println!("synthetic NWB files: {}", report.data_home.display());
    println!("split folders:       {}", report.prep_home.display());
    println!("training run:        {}", report.train.run_dir.display());
    for row in &report.scores {
        println!(
            "{:<20} {}",
            format!("{}:", row.name),
            row.submission.display()
        );
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let config = train::RunConfig::load(&args.config, &args.set)?;
    let run_tag = match args.run_tag {
        Some(tag) => tag,
        None => args
            .config
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("the config path has no file name to tag the run with; pass --run-tag")?,
    };
    let opts = train::TrainOptions {
        config,
        run_tag,
        runs_home: args.runs_home,
        prep_home: args.prep_home,
        files: split_files(),
        backend: args.backend.parse()?,
        resume: args.resume,
        progress: true,
        stop: Some(train::stop_on_ctrl_c()?),
    };
    let summary = train::run(&opts)?;
    print!("{}", train::summary_text(&summary));
    Ok(())
}

fn submit(args: SubmitArgs) -> Result<()> {
    use langevin::submit;
    let opts = submit::SubmitOptions {
        runs_home: args.runs_home,
        run_tag: args.run_tag,
        phase: args.phase,
        checkpoint: args
            .checkpoint
            .map(|c| c.parse())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        samples: args.samples,
        seed: args.seed,
        prep_home: args.prep_home,
        files: split_files(),
        backend: args.backend.parse()?,
        batch: args.batch,
    };
    let report = submit::run(&opts)?;
    print!("{}", submit::summary_text(&report));
    if !report.skipped.is_empty() {
        anyhow::bail!(
            "{} split(s) skipped (listed above); the file holds the others",
            report.skipped.len()
        );
    }
    if !report.unscored.is_empty() {
        anyhow::bail!(
            "{} val split(s) could not be scored (listed above); {} was written",
            report.unscored.len(),
            report.path.display()
        );
    }
    Ok(())
}

impl Command {
    /// Commands that train or run the model, and those that only move arrays between files.
    fn workload(&self) -> Workload {
        match self {
            Command::Train(_)
            | Command::Submit(_)
            | Command::Quickstart(_)
            | Command::Sweep(_)
            | Command::Ensemble(_) => Workload::Model,
            Command::Preprocess(_)
            | Command::Evaluate(_)
            | Command::Baseline(_)
            | Command::Synth(_)
            | Command::Holdout(_) => Workload::Files,
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Preprocess(args) => preprocess(args).context("preprocess failed"),
        Command::Evaluate(args) => evaluate(args).context("evaluate failed"),
        Command::Baseline(args) => baseline(args).context("baseline failed"),
        Command::Synth(args) => synth(args).context("synth failed"),
        Command::Quickstart(args) => quickstart(args).context("quickstart failed"),
        Command::Train(args) => train(args).context("train failed"),
        Command::Submit(args) => submit(args).context("submit failed"),
        Command::Holdout(args) => holdout(args).context("holdout failed"),
        Command::Sweep(args) => sweep(*args).context("sweep failed"),
        Command::Ensemble(args) => ensemble(args).context("ensemble failed"),
    }
}

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    langevin::runtime::configure(cli.threads, cli.command.workload());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message before it
/// already holds (library errors often include their source in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out += ": ";
            }
            out += &text;
        }
    }
    out
}
