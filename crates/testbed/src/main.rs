//! `testbed up`: runs the test bed in the foreground until SIGINT/SIGTERM, for the test script
//! (one API server shared by a whole test run) and the demo.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use testbed::servers::Options;
use testbed::{Binaries, Servers};

#[derive(Parser)]
#[command(
    name = "testbed",
    about = "A local kube-apiserver, kube-controller-manager and etcd, optionally with a node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the servers, write the kubeconfig once the API server is ready, run until stopped.
    Up {
        /// Where to write the administrator's kubeconfig.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Keep the servers' data and logs after they stop.
        #[arg(long)]
        keep: bool,
        /// Also run a node (containerd, kube-scheduler, kube-proxy, kubelet) so that pods run;
        /// needs root and `testbed/install.sh --with-node`.
        #[arg(long)]
        with_node: bool,
        /// Image archives (`docker save` format) to import into the node's containerd.
        #[arg(long = "image", requires = "with_node")]
        images: Vec<PathBuf>,
    },
    /// Print where the server binaries are found (fails if they are missing).
    Locate,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Locate => println!("{:#?}", Binaries::locate()?),
        Command::Up {
            kubeconfig,
            keep,
            with_node,
            images,
        } => {
            testbed::servers::remove_stale_dirs();
            let binaries = Binaries::locate()?;
            // Started from the main thread: the servers die with the thread that started them,
            // and only this one lives as long as the process.
            let options = Options {
                node: with_node,
                ..Options::default()
            };
            let servers = Servers::start_with(&binaries, &options)?;
            for image in &images {
                servers.import_image(image)?;
            }
            // Written atomically: whoever waits for the file finds a ready server behind it.
            let tmp = kubeconfig.with_extension("tmp");
            std::fs::copy(servers.kubeconfig(), &tmp)?;
            std::fs::rename(&tmp, &kubeconfig)?;
            eprintln!(
                "testbed: API server {} ready; kubeconfig {}",
                servers.api_url(),
                kubeconfig.display()
            );
            eprintln!(
                "testbed: logs in {}; stop with Ctrl-C",
                servers.dir().display()
            );

            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                anyhow::Ok(())
            })?;
            let _ = std::fs::remove_file(&kubeconfig);
            if keep {
                eprintln!(
                    "testbed: stopped; data kept in {}",
                    servers.keep_dir().display()
                );
            }
        }
    }
    Ok(())
}
