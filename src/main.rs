//! The `langevin` command line: parses flags and hands each subcommand to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use langevin::nlb::files::SplitFiles;
use langevin::nlb::preprocess::{self, PreprocessOptions};
use langevin::nlb::{BinWidth, DatasetName, Phase};

/// From raw Neural Latents Benchmark recordings to a scored LangevinFlow model.
#[derive(Parser)]
#[command(name = "langevin", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn DANDI NWB files into NLB train/eval tensors (one folder per split).
    Preprocess(PreprocessArgs),
    /// Write a synthetic dataset with known firing rates in the DANDI layout.
    Synth(SynthArgs),
    /// Run the pipeline end to end on a small synthetic dataset.
    Quickstart(QuickstartArgs),
}

#[derive(Args)]
struct QuickstartArgs {
    /// Folder for the synthetic data and its split folders.
    #[arg(long, default_value = "langevin-quickstart")]
    dir: PathBuf,
    /// tiny, small or full.
    #[arg(long, default_value = "small")]
    scale: String,
}

#[derive(Args)]
struct SynthArgs {
    /// Dataset to imitate (maze family so far).
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

fn split_files() -> SplitFiles {
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
    };
    let reports = preprocess::run(&opts)?;
    print!("{}", preprocess::summary_table(&reports));
    println!("split folders are in {}", opts.prep_home.display());
    Ok(())
}

fn synth(args: SynthArgs) -> Result<()> {
    let dataset: DatasetName = args.dataset.parse()?;
    let scale: langevin::synth::Scale = args.scale.parse().map_err(anyhow::Error::msg)?;
    let report = langevin::synth::synth(&args.out, dataset, scale, args.seed)?;
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    println!("{} trials, {} units", report.trials, report.units);
    Ok(())
}

fn quickstart(args: QuickstartArgs) -> Result<()> {
    let scale: langevin::synth::Scale = args.scale.parse().map_err(anyhow::Error::msg)?;
    let report = langevin::quickstart::run(&args.dir, scale, true)?;
    print!("{}", preprocess::summary_table(&report.splits));
    println!("synthetic NWB files: {}", report.data_home.display());
    println!("split folders:       {}", report.prep_home.display());
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Preprocess(args) => preprocess(args).context("preprocess failed"),
        Command::Synth(args) => synth(args).context("synth failed"),
        Command::Quickstart(args) => quickstart(args).context("quickstart failed"),
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
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
