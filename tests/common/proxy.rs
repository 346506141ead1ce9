//! A TCP proxy between one client and the test bed's API server, to cut that client off the
//! way a network does: [`ApiServerProxy::pause`] holds every byte both ways while the
//! connections stay open (a partition: requests hang, nothing fails), and
//! [`ApiServerProxy::cut`] closes every connection and refuses new ones. Nothing held while
//! paused is delivered after a cut.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Paused,
    Cut,
}

pub struct ApiServerProxy {
    /// A copy of the test bed's kubeconfig that points at the proxy.
    pub kubeconfig: PathBuf,
    mode: watch::Sender<Mode>,
}

impl ApiServerProxy {
    /// Listens on a free loopback port, and writes the kubeconfig pointing there into `dir`.
    pub async fn start(dir: &Path) -> Self {
        let original = super::process::kubeconfig().await;
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&original).unwrap()).unwrap();
        let server = &mut config["clusters"][0]["cluster"]["server"];
        let upstream = server
            .as_str()
            .expect("a server URL")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *server = format!("https://{}", listener.local_addr().unwrap()).into();
        let kubeconfig = dir.join("proxied-kubeconfig");
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
        let (mode, _) = watch::channel(Mode::Open);
        let modes = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), modes.subscribe()));
            }
        });
        ApiServerProxy { kubeconfig, mode }
    }

    /// Holds every byte from now on, both ways.
    pub fn pause(&self) {
        self.mode.send_replace(Mode::Paused);
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }
}

async fn relay(client: TcpStream, upstream: String, mut mode: watch::Receiver<Mode>) {
    // A connection opened while paused waits; one opened after a cut is closed at once.
    match mode.wait_for(|m| *m != Mode::Paused).await {
        Ok(m) if *m == Mode::Open => {}
        _ => return,
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let both_ways = futures::future::join(
        pipe(client_read, server_write, mode.clone()),
        pipe(server_read, client_write, mode.clone()),
    );
    tokio::select! {
        _ = both_ways => {}
        // Dropping both streams closes the connection.
        _ = mode.wait_for(|m| *m == Mode::Cut) => {}
    }
}

/// Copies `from` to `to`, holding what it read while paused.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        match mode.wait_for(|m| *m != Mode::Paused).await {
            Ok(m) if *m == Mode::Open => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
