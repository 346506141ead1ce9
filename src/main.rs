use clap::{Parser, Subcommand};

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
        out_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { out_dir: None } => print!("{}", ngrok_events_operator::crd::render_yaml()),
        Command::Crd { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, yaml) in ngrok_events_operator::crd::files() {
                std::fs::write(dir.join(file), yaml)?;
            }
        }
    }
    Ok(())
}
