//! kube-controller-manager: without it deleted namespaces stay Terminating and
//! ownerReferences are never collected. It runs only the controllers the test bed needs,
//! more of them with a node (so that pods run).

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::Servers;

impl Servers {
    /// Starts the controller manager against the administrator's kubeconfig.
    pub(super) fn start_kube_controller_manager(&mut self, kcm: &Path) -> Result<()> {
        let sa_key = self.service_account_key();
        let mut command = Command::new(kcm);
        command.args([
            &format!("--kubeconfig={}", self.kubeconfig.display()),
            "--leader-elect=false",
            "--secure-port=0",
            "--port=0",
        ]);
        if self.node.is_some() {
            // What pods need: ServiceAccounts and their tokens' CA (root-ca publisher),
            // Deployments, Jobs (the chart's uninstall drain), the node's not-ready taint
            // lifted, Service endpoints.
            command.args([
                "--controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token,\
                 deployment,replicaset,job,nodelifecycle,root-ca-cert-publisher,endpoint,\
                 endpointslice,podgc,resourcequota",
                &format!("--service-account-private-key-file={}", sa_key.display()),
                &format!("--root-ca-file={}", self.api_ca().display()),
            ]);
        } else {
            // resourcequota: a ResourceQuota is enforced only once its controller has
            // counted what the namespace holds (the README's quota example is tested).
            command.arg("--controllers=namespace,garbagecollector,resourcequota");
        }
        self.spawn("kube-controller-manager", &mut command)?;
        Ok(())
    }
}
