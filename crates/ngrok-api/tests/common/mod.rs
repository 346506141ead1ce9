//! What the client's tests against the emulator share: an emulator with one key and no rate
//! limit, and a client configuration for it with the limiter off and quick retries.

use std::time::Duration;

use ngrok_api::{ClientConfig, Secret};
use ngrok_api_emulator::{Emulator, EmulatorHandle, FaultsUpdate};

pub async fn emulator(key: &str) -> EmulatorHandle {
    Emulator::builder()
        .api_key(key)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap()
}

/// A configuration for `key` at `emulator`: no client-side limit, backoff 5–20 ms.
pub fn quick_config(emulator: &EmulatorHandle, key: &str) -> ClientConfig {
    let mut config = ClientConfig::new(Secret::new(key))
        .with_base_url(&emulator.base_url())
        .unwrap();
    config.rate_limit_per_minute = 0;
    config.min_backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(20);
    config
}

/// The API key the client tests' emulator accepts.
#[allow(dead_code)]
pub const KEY: &str = "test-api-key";

/// A client configuration with the limiter off and three quick retries, unless a test says
/// otherwise.
#[allow(dead_code)] // Each test file is its own crate, and uses what it needs.
pub fn retrying_config(emulator: &EmulatorHandle) -> ClientConfig {
    let mut config = quick_config(emulator, KEY);
    config.max_retries = 3;
    config
}

#[allow(dead_code)]
pub fn client(emulator: &EmulatorHandle) -> ngrok_api::Client {
    ngrok_api::Client::new(retrying_config(emulator)).unwrap()
}

/// From now on the emulator answers every API request with a server error (503).
#[allow(dead_code)]
pub fn fail_every_request(emulator: &EmulatorHandle) {
    emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
}
