//! What the client's tests against the emulator share: an emulator with one key and no rate
//! limit, and a client configuration for it with the limiter off and quick retries.

use std::time::Duration;

use ngrok_api::{ClientConfig, Secret};
use ngrok_api_emulator::{Emulator, EmulatorHandle};

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
