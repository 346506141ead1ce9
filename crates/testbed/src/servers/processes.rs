//! What every process of the test bed shares: a log file each in the data directory, death
//! with the thread that started it, waiting that fails as soon as one exits, and stopping in
//! reverse start order.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use backon::BlockingRetryable;

use super::Servers;

impl Servers {
    /// Asks `probe` every `every`, with a fresh client of the test bed, until `done` holds for
    /// its answer or `timeout` passed; fails at once when a server exits. Returns whether `done`
    /// held, and the last answer.
    pub(super) fn poll<T>(
        &mut self,
        timeout: Duration,
        every: Duration,
        probe: impl AsyncFn(kube::Client) -> Option<T>,
        done: impl Fn(&T) -> bool,
    ) -> Result<(bool, Option<T>)> {
        /// Why one probe did not end the wait.
        enum Miss<T> {
            /// `done` does not hold for this answer (or there was none) yet.
            NotYet(Option<T>),
            /// A server exited: no point waiting.
            Failed(anyhow::Error),
        }
        let deadline = Instant::now() + timeout;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let kubeconfig = self.kubeconfig.clone();
        let outcome = (|| {
            self.check_children().map_err(Miss::Failed)?;
            let answer = runtime.block_on(async {
                let client = crate::client_from_kubeconfig(&kubeconfig).await.ok()?;
                probe(client).await
            });
            match answer {
                Some(answer) if done(&answer) => Ok(answer),
                answer => Err(Miss::NotYet(answer)),
            }
        })
        .retry(crate::every(every))
        .when(|miss| matches!(miss, Miss::NotYet(_)) && Instant::now() <= deadline)
        .call();
        match outcome {
            Ok(answer) => Ok((true, Some(answer))),
            Err(Miss::NotYet(last)) => Ok((false, last)),
            Err(Miss::Failed(error)) => Err(error),
        }
    }

    fn check_children(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited with {status}; see its log: {}",
                    self.dir.path().join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    pub(super) fn spawn(&mut self, name: &'static str, command: &mut Command) -> Result<()> {
        let log = fs::File::create(self.dir.path().join(format!("{name}.log")))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        kill_with_parent(command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.push((name, child));
        Ok(())
    }
}

/// Stops in reverse start order: the controller manager and API server before etcd.
pub(super) fn stop(children: Vec<(&'static str, Child)>) {
    for (_, mut child) in children.into_iter().rev() {
        // SIGTERM first so the API server closes its watches cleanly, then SIGKILL.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        crate::poll_blocking(Duration::from_millis(50), Duration::from_secs(5), || {
            child.try_wait().ok().flatten()
        });
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// On Linux, the server dies with the thread that started it, so a test process that is
/// killed (or a test runner that times out) never leaves servers behind.
fn kill_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}
