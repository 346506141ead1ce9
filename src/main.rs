use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ngrok_api::Secret;
use ngrok_events_operator::accounts::Accounts;
use ngrok_events_operator::controller::{self, Settings};
use ngrok_events_operator::crd::DeletionPolicy;
use ngrok_events_operator::http::{self, Health};
use ngrok_events_operator::leader::{self, LeaderElection};
use ngrok_events_operator::logging::{self, LogFormat};
use ngrok_events_operator::metrics::Metrics;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// How often the operator-wide key file is read again.
const KEY_FILE_POLL: Duration = Duration::from_secs(5);

/// Manage ngrok Event Destinations as Kubernetes resources.
#[derive(Parser, Debug)]
#[command(name = "ngrok-events-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (`... crd | kubectl apply -f -`).
    Crd {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Run the operator. The ngrok API key comes from env NGROK_API_KEY or --api-key-file
    /// (never from a flag, which would show in the process list).
    Run(RunArgs),
    /// Print the destinations of an ngrok account as EventDestination YAML that adopts them
    /// (annotation events.ngrok.io/adopt-id), for moving from the dashboard or Terraform.
    /// Objects a resource of the cluster (KUBECONFIG) already manages are left out.
    Import(ImportArgs),
    /// Prepare an uninstall, so that deleting a namespace never waits on the operator's
    /// finalizer: with --policy Retain, stop the operator and remove its finalizer from every
    /// resource (every ngrok object stays); with --policy Delete, delete every resource and
    /// wait while the running operator deletes their ngrok objects.
    Drain(DrainArgs),
}

#[derive(clap::Args, Debug)]
struct DrainArgs {
    /// Retain (leave every ngrok object) or Delete (delete every resource, as the operator
    /// deletes them: each by its deletion policy in effect).
    #[arg(long, env = "DRAIN_POLICY", value_parser = str::parse::<DeletionPolicy>)]
    policy: DeletionPolicy,
    /// Only this namespace's resources (the operator's watchNamespace); default: all.
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// The operator's Deployment, stopped (scaled to 0) before Retain removes finalizers.
    #[arg(long, env = "OPERATOR_DEPLOYMENT")]
    operator_deployment: Option<String>,
    /// The namespace of the operator's Deployment.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    operator_namespace: String,
    /// How long to wait for the operator to stop, or for the resources to be deleted.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// Namespace of the printed resources.
    #[arg(long)]
    namespace: String,
    /// ngrok API root.
    #[arg(long, env = "NGROK_API_URL", default_value = ngrok_api::DEFAULT_BASE_URL)]
    api_url: String,
    /// File holding the ngrok API key (else env NGROK_API_KEY).
    #[arg(long, env = "NGROK_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Print resources in observe mode (annotation events.ngrok.io/management: observe): once
    /// applied, they report what managing would change and write nothing to ngrok.
    #[arg(long)]
    observe: bool,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// ngrok API root.
    #[arg(long, env = "NGROK_API_URL", default_value = ngrok_api::DEFAULT_BASE_URL)]
    api_url: String,
    /// File holding the operator-wide ngrok API key (e.g. a mounted Secret); re-read every few
    /// seconds, so a rotated key is used without a restart.
    #[arg(long, env = "NGROK_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// Only resources in namespaces matching this label selector may use the operator-wide key
    /// (e.g. `ngrok.io/operator-key=allowed`); the others need spec.apiKeyRef. Default: all.
    #[arg(long, env = "OPERATOR_KEY_NAMESPACE_SELECTOR")]
    operator_key_namespace_selector: Option<String>,
    /// Only resources in namespaces matching this label selector may adopt ngrok objects
    /// (annotation events.ngrok.io/adopt-id) with the operator-wide key (e.g.
    /// `ngrok.io/adopt=allowed`). Default: none. A resource with spec.apiKeyRef may always adopt
    /// from its own account.
    #[arg(long, env = "ADOPTION_NAMESPACE_SELECTOR")]
    adoption_namespace_selector: Option<String>,
    /// What happens in ngrok when a resource that sets no `spec.deletionPolicy` is deleted, in a
    /// namespace without the annotation `events.ngrok.io/default-deletion-policy`: `Delete` or
    /// `Retain` (leave the ngrok object, as when migrating in from Terraform or the dashboard).
    #[arg(long, env = "DEFAULT_DELETION_POLICY", default_value = "Delete", value_parser = str::parse::<DeletionPolicy>)]
    default_deletion_policy: DeletionPolicy,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// How often each resource is compared with ngrok when nothing changed (`30s`, `10m`, `1h`).
    #[arg(long, env = "DRIFT_INTERVAL", default_value = "10m", value_parser = drift_interval)]
    drift_interval: Duration,
    /// Reconciles working at once, per kind (destinations and subscriptions each), shared
    /// round-robin across namespaces; one waiting for ngrok's budget does not count. 0: no bound.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// ngrok requests per minute per account (ngrok allows 120), handed out round-robin across
    /// the namespaces using the account; 0 turns the limiter off.
    #[arg(long, env = "NGROK_API_RATE_LIMIT", default_value_t = 100)]
    api_rate_limit: u32,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// A level (`info`) or tracing directives (`info,ngrok_events_operator=debug`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Resources may only read Secrets labelled `events.ngrok.io/credentials=true` (and only
    /// those are watched). `--require-credentials-label=false` lets any Secret of a resource's
    /// namespace be read: only for clusters where everyone who may create a resource may also
    /// read every Secret of its namespace.
    #[arg(long, env = "REQUIRE_CREDENTIALS_LABEL", default_value_t = true, action = clap::ArgAction::Set)]
    require_credentials_label: bool,
    /// Run only while holding a Lease, so that one of several replicas is active.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (default: the pod's namespace, from POD_NAMESPACE).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE",
        default_value = "ngrok-events-operator"
    )]
    leader_election_lease: String,
    /// How long a leader's lease stays valid after its last renewal, in whole seconds, at
    /// least 2 s: how long a crashed leader blocks its successor (`15s`).
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    leader_election_lease_duration: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { out_dir: None } => print!("{}", ngrok_events_operator::crd::render_yaml()),
        Command::Crd { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, yaml) in ngrok_events_operator::crd::files() {
                std::fs::write(dir.join(file), yaml)?;
            }
        }
        Command::Run(args) => run(args).await?,
        Command::Import(args) => {
            let api_key = operator_api_key(args.api_key_file.as_deref())?
                .context("import needs NGROK_API_KEY or --api-key-file")?;
            let config = ngrok_api::ClientConfig::new(api_key)
                .with_product(ngrok_events_operator::PRODUCT)
                .with_base_url(&args.api_url)
                .context("--api-url")?;
            let client = ngrok_api::Client::new(config)?;
            // What the cluster already manages is left out; without a cluster to ask, the
            // output says so (the operator still refuses to adopt what a resource manages).
            let managed = match kube::Client::try_default().await {
                Ok(kube) => ngrok_events_operator::import::managed_in_cluster(&kube).await,
                Err(e) => Err(format!(
                    "cannot reach the cluster (KUBECONFIG) to leave out the ngrok objects it already manages: {e}"
                )),
            };
            if let Err(why) = &managed {
                eprintln!("warning: {why}");
            }
            print!(
                "{}",
                ngrok_events_operator::import::import(
                    &client,
                    &args.namespace,
                    args.observe,
                    managed.as_ref().ok()
                )
                .await?
            );
        }
        Command::Drain(args) => {
            logging::init_logging(LogFormat::Text, "info")?;
            let client = kube::Client::try_default()
                .await
                .context("connecting to Kubernetes")?;
            let drain = ngrok_events_operator::drain::Drain {
                policy: args.policy,
                namespace: args.namespace.filter(|n| !n.is_empty()),
                operator: args
                    .operator_deployment
                    .map(|name| (args.operator_namespace, name)),
                timeout: args.timeout,
            };
            ngrok_events_operator::drain::drain(&client, &drain).await?;
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    logging::init_logging(args.log_format, &args.log_level)?;
    let api_key = operator_api_key(args.api_key_file.as_deref())?;
    if api_key.is_none() {
        tracing::warn!(
            "no NGROK_API_KEY or --api-key-file: only resources with spec.apiKeyRef can be served"
        );
    }
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let (metrics, registry) = Metrics::new();
    let health = Health::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(http::serve(
        listener,
        Arc::new(registry),
        health.clone(),
        async move { server_shutdown.cancelled().await },
    ));

    // Every account's client is this configuration with its own key (and its own fair budget,
    // see `accounts::Accounts::get`).
    let mut template = ngrok_api::ClientConfig::new(Secret::default())
        .with_product(ngrok_events_operator::PRODUCT)
        .with_base_url(&args.api_url)
        .context("--api-url")?;
    template.rate_limit_per_minute = args.api_rate_limit;
    template.observer = Some(Arc::new(metrics.clone()));
    let instance = leader::default_identity();
    let election = if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| args.namespace.clone())
            .context("--leader-elect needs --leader-election-namespace (or POD_NAMESPACE)")?;
        let election = LeaderElection::new(
            client.clone(),
            &namespace,
            &args.leader_election_lease,
            instance.clone(),
        )
        .with_lease_duration(args.leader_election_lease_duration);
        // Every ngrok call of every account stays inside the time the lease is sure.
        template.fence = Some(Arc::new(election.fence()));
        Some(election)
    } else {
        None
    };
    // The environment wins over the file (see operator_api_key); only a file can change.
    let from_env = std::env::var("NGROK_API_KEY").is_ok_and(|k| !k.trim().is_empty());
    let accounts = Accounts::new(
        api_key,
        Arc::new(move |api_key: Secret| ngrok_api::ClientConfig {
            api_key,
            ..template.clone()
        }),
    );
    if let (Some(path), false) = (args.api_key_file.clone(), from_env) {
        tokio::spawn(accounts.clone().follow_key_file(path, KEY_FILE_POLL));
    }

    let settings = Settings {
        namespace: args.namespace.clone(),
        drift_interval: args.drift_interval,
        concurrency: args.concurrency,
        instance,
        operator_key_namespace_selector: args
            .operator_key_namespace_selector
            .clone()
            .filter(|s| !s.trim().is_empty()),
        adoption_namespace_selector: args
            .adoption_namespace_selector
            .clone()
            .filter(|s| !s.trim().is_empty()),
        require_credentials_label: args.require_credentials_label,
        default_deletion_policy: args.default_deletion_policy,
        fence: election.as_ref().map(LeaderElection::fence),
    };
    let result = if let Some(election) = election {
        // A standby replica is healthy and ready: it is waiting, as designed.
        health.set_ready(true);
        let (metrics, health) = (metrics.clone(), health.clone());
        election
            .run_as_leader(shutdown.clone(), Some(metrics.clone()), move |token| {
                controller::run(client, accounts, metrics, health, settings, token)
            })
            .await
    } else {
        controller::run(
            client,
            accounts,
            metrics,
            health,
            settings,
            shutdown.clone(),
        )
        .await
    };
    shutdown.cancel();
    let _ = server.await;
    info!("stopped");
    result
}

/// `--drift-interval`: a duration from one second to the annotation's ceiling (a week).
fn drift_interval(value: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    let max = ngrok_events_operator::annotations::MAX_DRIFT_INTERVAL;
    if !(Duration::from_secs(1)..=max).contains(&interval) {
        return Err(format!(
            "must be between 1s and {}",
            humantime::format_duration(max)
        ));
    }
    Ok(interval)
}

/// The operator-wide API key: env NGROK_API_KEY, else the file.
fn operator_api_key(file: Option<&std::path::Path>) -> anyhow::Result<Option<Secret>> {
    if let Ok(key) = std::env::var("NGROK_API_KEY")
        && !key.trim().is_empty()
    {
        return Ok(Some(ngrok_events_operator::secrets::api_key_from(
            &Secret::new(key),
        )));
    }
    match file {
        Some(path) => {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("reading --api-key-file {}", path.display()))?;
            Ok(Some(ngrok_events_operator::secrets::api_key_from(
                &Secret::new(key),
            )))
        }
        None => Ok(None),
    }
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C: stop taking work, finish what is running.
async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    info!("signal received; finishing in-flight reconciles");
    shutdown.cancel();
}
