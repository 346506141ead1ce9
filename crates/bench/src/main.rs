//! `bench`: measures what ngrok-events-operator costs (see BENCHMARKS.md).
//!
//! ```sh
//! cargo build --release -p ngrok-events-operator -p bench
//! target/release/bench                                # N = 100 and N = 1000
//! target/release/bench --n 10000                      # on request
//! target/release/bench --n 300 --faults --bad-input --rate-limited --json out.json
//! target/release/bench --no-standard --shared-cluster      # issue 19's shared-cluster scenario
//! target/release/bench --smoke                        # N = 20, a quick check of the instrument
//! ```
//!
//! Exits non-zero when the harness itself fails; missed targets are reported (✗), not fatal.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bench::{Config, Report};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Benchmark of ngrok-events-operator: speed, ngrok calls, Kubernetes writes, memory"
)]
struct Cli {
    /// Resource counts of the main run, each in a fresh test bed (default: 100 and 1000).
    #[arg(long = "n")]
    n: Vec<usize>,
    /// Quick check of the instrument: N = 20, 5 single-resource samples.
    #[arg(long)]
    smoke: bool,
    /// Also run the fault run: 30% 5xx and 5% dropped create responses.
    #[arg(long)]
    faults: bool,
    /// N of the fault run.
    #[arg(long, default_value_t = 300)]
    faults_n: usize,
    /// Also run the bad-input run.
    #[arg(long)]
    bad_input: bool,
    /// Bad resources in the bad-input run (next to as many good ones).
    #[arg(long, default_value_t = 30)]
    bad_n: usize,
    /// Seconds the bad-input run watches the stalled resources.
    #[arg(long, default_value_t = 60)]
    bad_window: u64,
    /// Also run the rate-limited run: default client limit, emulator enforcing 120/min (takes
    /// about 3 minutes at N = 300).
    #[arg(long)]
    rate_limited: bool,
    /// N of the rate-limited run.
    #[arg(long, default_value_t = 300)]
    rate_limited_n: usize,
    /// Also run the shared-cluster scenario: one namespace floods creates at 120/min while
    /// another creates 10 one at a time; and peak RSS with 200 KiB foreign annotations.
    #[arg(long)]
    shared_cluster: bool,
    /// Flooding creates of the shared-cluster scenario.
    #[arg(long, default_value_t = 1000)]
    shared_cluster_n: usize,
    /// Skip the main run (only the reliability runs asked for).
    #[arg(long)]
    no_standard: bool,
    /// The operator's --concurrency (default: its own default, 16).
    #[arg(long)]
    concurrency: Option<u16>,
    /// The operator's --drift-interval during the burst and the drift pass.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    drift_interval: Duration,
    /// Namespaces the resources are spread over.
    #[arg(long, default_value_t = 4)]
    namespaces: usize,
    /// Single resources created one at a time on the idle operator.
    #[arg(long, default_value_t = 20)]
    single_samples: usize,
    /// The operator binary (default: next to this one; env BENCH_OPERATOR_BIN).
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Where the operator's logs go.
    #[arg(long, default_value = "/tmp/ngrok-events-operator-bench")]
    work_dir: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the Markdown tables here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    #[arg(long, short)]
    quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| format!("bad duration {s}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(60 * n)),
        _ => Err(format!("bad duration {s}: use ms, s or m")),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let operator_bin = match &cli.operator_bin {
        Some(path) => path.clone(),
        None => bench::default_operator_bin()?,
    };
    let mut config = Config::new(operator_bin, cli.work_dir.clone());
    config.concurrency = cli.concurrency;
    config.drift_interval = cli.drift_interval;
    config.namespaces = cli.namespaces;
    config.single_samples = cli.single_samples;
    config.bad_input_window = Duration::from_secs(cli.bad_window);
    config.verbose = !cli.quiet;
    let mut ns = cli.n.clone();
    if cli.smoke {
        ns = vec![20];
        config.single_samples = config.single_samples.min(5);
    } else if ns.is_empty() {
        ns = vec![100, 1000];
    }

    let mut report = Report {
        date: date(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ..Default::default()
    };
    if !cli.no_standard {
        for n in ns {
            report.standard.push(bench::run_standard(&config, n).await?);
        }
    }
    if cli.faults {
        let fault_free = report
            .standard
            .iter()
            .find(|s| s.n == cli.faults_n)
            .map(|s| s.create.ngrok.total);
        report.faults = Some(bench::run_faults(&config, cli.faults_n, fault_free).await?);
    }
    if cli.bad_input {
        report.bad_input = Some(bench::run_bad_input(&config, cli.bad_n, cli.bad_n).await?);
    }
    if cli.rate_limited {
        report.rate_limited = Some(bench::run_rate_limited(&config, cli.rate_limited_n).await?);
    }

    if cli.shared_cluster {
        report.shared_cluster =
            Some(bench::shared_cluster::run(&config, cli.shared_cluster_n).await?);
    }

    let markdown = bench::render(&report);
    println!(
        "\n{} on {} cores, {}\n\n{markdown}",
        report.command, report.cores, report.date
    );
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = &cli.json {
        std::fs::write(path, &json)?;
    }
    if let Some(path) = &cli.markdown {
        std::fs::write(path, &markdown)?;
    }
    Ok(())
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
