//! `langevin sweep` and `langevin ensemble`: their flags and how they call the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use langevin::nlb::Phase;
use langevin::train;

use crate::split_files;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    action: Option<SweepAction>,
    #[command(flatten)]
    start: SweepStartArgs,
}

#[derive(Subcommand)]
pub enum SweepAction {
    /// Each run's state, epochs and best co-bps, and the results table so far.
    Status {
        #[arg(long)]
        run_tag: String,
        #[arg(long, env = "RUNS_HOME", default_value = "runs")]
        runs_home: PathBuf,
    },
    /// Train one planned run (what each local worker and Slurm array task runs).
    #[command(hide = true)]
    Task {
        #[arg(long)]
        run_tag: String,
        #[arg(long)]
        index: usize,
        #[arg(long, env = "RUNS_HOME", default_value = "runs")]
        runs_home: PathBuf,
        #[arg(long, env = "PREP_HOME", default_value = "prep")]
        prep_home: PathBuf,
        #[arg(long, default_value = "flex")]
        backend: String,
    },
}

#[derive(Args)]
pub struct SweepStartArgs {
    /// The config every run starts from.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Try every value of a key: `--grid train.lr=1e-3,3e-3` (repeat for a product).
    #[arg(long, value_name = "KEY=V1,V2")]
    grid: Vec<String>,
    /// Draw this many random points from the --range keys.
    #[arg(long, default_value_t = 0)]
    random: usize,
    /// Range of a random key: `--range train.lr=1e-4:1e-2:log` or `model.dropout=0.1:0.5`.
    #[arg(long, value_name = "KEY=LO:HI[:log]")]
    range: Vec<String>,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0)]
    random_seed: u64,
    /// train.seed values: `0-4` or `1,5,9` (default: the config's own seed).
    #[arg(long)]
    seeds: Option<String>,
    /// `all` (the 28 NLB splits) or split folder names, `mc_maze-20ms-val,…` (default: the config's).
    #[arg(long)]
    splits: Option<String>,
    /// Override a config value in every run, as for `train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The sweep's folder under RUNS_HOME; rerun the same command with it to resume.
    #[arg(long)]
    run_tag: Option<String>,
    /// Runs trained at once (local pool), or at most this many array tasks at once (Slurm; 0 = no limit).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// --threads of each run (default: the cores divided among the jobs).
    #[arg(long)]
    threads_per_job: Option<usize>,
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Submit the sweep as a Slurm job array (sbatch) instead of running it here.
    #[arg(long)]
    slurm: bool,
    /// An sbatch option for every task, e.g. `--slurm-opt=--time=02:00:00` (repeatable).
    #[arg(long = "slurm-opt", value_name = "OPT", allow_hyphen_values = true)]
    slurm_opt: Vec<String>,
    /// With --slurm: write and print the batch script, do not submit it.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, env = "RUNS_HOME", default_value = "runs")]
    runs_home: PathBuf,
    #[arg(long, env = "PREP_HOME", default_value = "prep")]
    prep_home: PathBuf,
}

#[derive(Args)]
pub struct EnsembleArgs {
    /// The member runs, comma-separated (sweep points as `{sweep}/{point}`).
    #[arg(long, value_delimiter = ',', required = true)]
    run_tags: Vec<String>,
    #[arg(long, default_value = "val")]
    phase: Phase,
    /// Run tag to write the ensemble's submission-{phase}.h5 under.
    #[arg(long)]
    out: String,
    /// log-rates (geometric mean of the rates, the default) or rates (arithmetic mean).
    #[arg(long, default_value = "log-rates")]
    mean: String,
    /// Backend for members that must be submitted first.
    #[arg(long, default_value = "flex")]
    backend: String,
    #[arg(long, env = "RUNS_HOME", default_value = "runs")]
    runs_home: PathBuf,
    #[arg(long, env = "PREP_HOME", default_value = "prep")]
    prep_home: PathBuf,
}

pub fn sweep(args: SweepArgs) -> Result<()> {
    use langevin::sweep::{self, SweepDir, TaskOptions};
    match args.action {
        Some(SweepAction::Status { run_tag, runs_home }) => {
            let dir = SweepDir::new(&runs_home, &run_tag);
            let plan = dir.read_plan()?;
            let statuses = sweep::results::statuses(&dir, &plan);
            print!("{}", sweep::results::status_text(&plan, &statuses));
            println!();
            print!("{}", sweep::results::markdown(&plan, &statuses));
            Ok(())
        }
        Some(SweepAction::Task {
            run_tag,
            index,
            runs_home,
            prep_home,
            backend,
        }) => {
            let opts = TaskOptions {
                prep_home,
                files: split_files(),
                backend: backend.parse()?,
                progress: false,
                stop: Some(train::stop_on_ctrl_c()?),
            };
            sweep::run_task(&SweepDir::new(&runs_home, &run_tag), index, &opts)?;
            Ok(())
        }
        None => sweep_start(args.start),
    }
}

fn sweep_spec(args: &SweepStartArgs) -> Result<langevin::sweep::SweepSpec> {
    use langevin::sweep::plan;
    if args.random > 0 && args.range.is_empty() {
        anyhow::bail!(
            "--random {} needs at least one --range key=lo:hi",
            args.random
        );
    }
    Ok(langevin::sweep::SweepSpec {
        grid: args
            .grid
            .iter()
            .map(|g| g.parse())
            .collect::<Result<_, _>>()?,
        random: args.random,
        ranges: args
            .range
            .iter()
            .map(|r| r.parse())
            .collect::<Result<_, _>>()?,
        random_seed: args.random_seed,
        seeds: args
            .seeds
            .as_deref()
            .map(plan::parse_seeds)
            .transpose()?
            .unwrap_or_default(),
        splits: args
            .splits
            .as_deref()
            .map(plan::parse_splits)
            .transpose()?
            .unwrap_or_default(),
        sets: args.set.clone(),
    })
}

fn sweep_start(args: SweepStartArgs) -> Result<()> {
    use langevin::sweep::{self, pool, slurm, SweepDir};
    let config = args
        .config
        .clone()
        .context("--config is required to start a sweep")?;
    let run_tag = args
        .run_tag
        .clone()
        .context("--run-tag names the sweep's folder")?;
    let spec = sweep_spec(&args)?;
    let dir = SweepDir::new(&args.runs_home, &run_tag);
    let plan = sweep::prepare(&dir, &config, &spec)?;
    let jobs = args.jobs.max(1);
    let threads = args
        .threads_per_job
        .unwrap_or_else(|| (langevin::runtime::threads() / jobs).max(1));
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    println!("{}: {} runs", dir.root().display(), plan.runs.len());
    if args.slurm {
        let opts = slurm::SlurmOptions {
            exe,
            threads_per_job: threads,
            backend: args.backend.clone(),
            prep_home: args.prep_home.clone(),
            jobs: args.jobs,
            sbatch_opts: args.slurm_opt.clone(),
        };
        let script = slurm::write_script(&dir, plan.runs.len(), &opts)?;
        if args.dry_run {
            print!("{}", std::fs::read_to_string(&script)?);
            println!(
                "wrote {} (submit it with `sbatch {}`)",
                script.display(),
                script.display()
            );
        } else {
            let id = slurm::submit(&script)?;
            println!("submitted Slurm job {id} ({} array tasks); follow it with `langevin sweep status --run-tag {run_tag}`", plan.runs.len());
        }
        return Ok(());
    }
    let opts = pool::PoolOptions {
        jobs,
        threads_per_job: threads,
        backend: args.backend.clone(),
        prep_home: args.prep_home.clone(),
        exe,
        progress: true,
        stop: Some(train::stop_on_ctrl_c()?),
    };
    let ended = pool::run(&dir, &plan, &opts)?;
    let statuses = sweep::results::statuses(&dir, &plan);
    sweep::results::write_csv(&dir, &plan, &statuses)?;
    println!();
    print!("{}", sweep::results::markdown(&plan, &statuses));
    println!("results: {}", dir.results().display());
    let failed = ended
        .iter()
        .filter(|e| matches!(e, pool::Ended::Failed(_)))
        .count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} runs failed (their lines above name the logs)",
            plan.runs.len()
        );
    }
    Ok(())
}

pub fn ensemble(args: EnsembleArgs) -> Result<()> {
    use langevin::ensemble;
    let report = ensemble::run(&ensemble::EnsembleOptions {
        runs_home: args.runs_home,
        members: args.run_tags,
        phase: args.phase,
        out: args.out,
        mean: args.mean.parse().map_err(anyhow::Error::msg)?,
        prep_home: args.prep_home,
        files: split_files(),
        backend: args.backend.parse()?,
    })?;
    print!("{}", ensemble::summary_text(&report));
    Ok(())
}
