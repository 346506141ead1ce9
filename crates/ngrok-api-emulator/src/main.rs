//! `ngrok-api-emulator`: a local emulator of ngrok's event destination API.

use std::net::SocketAddr;

use clap::Parser;
use ngrok_api_emulator::Emulator;

/// A local emulator of ngrok's `/event_destinations` and `/event_subscriptions` API, with
/// fault injection, for tests and demos.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The API key of the main ngrok account: clients send `Authorization: Bearer <key>`.
    #[arg(long, env = "NGROK_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The API key of a further ngrok account, which sees only its own objects. Repeat for
    /// more accounts (in the environment variable, separate keys with commas).
    #[arg(
        long = "extra-account-key",
        value_name = "KEY",
        env = "NGROK_EXTRA_ACCOUNT_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    extra_account_keys: Vec<String>,
    /// Another API key of an existing account (the main key's or an extra account's): both
    /// see and change the same objects, as ngrok lets an account have several keys. Repeat for
    /// more (in the environment variable, separate pairs with commas).
    #[arg(
        long = "second-key",
        value_name = "ACCOUNT_KEY=KEY",
        env = "NGROK_SECOND_KEYS",
        value_delimiter = ',',
        value_parser = key_pair,
        hide_env_values = true
    )]
    second_keys: Vec<(String, String)>,
    /// Delay before every API answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction (0..=1) of API requests answered 500, 502 or 503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Requests per rolling minute per API key; beyond it 429 ERR_NGROK_226. 0 = off.
    #[arg(long, default_value_t = 120)]
    rate_limit_per_minute: u32,
    /// Fraction (0..=1) of creates that are stored but answered by closing the connection.
    #[arg(long, default_value_t = 0.0)]
    drop_after_create_rate: f64,
    /// Refuse (400 ERR_NGROK_7800) creates and updates whose body contains this text.
    #[arg(long)]
    refuse_marker: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut builder = Emulator::builder();
    for key in args.extra_account_keys {
        builder = builder.account_key(key);
    }
    for (account_key, key) in args.second_keys {
        builder = builder.second_key(account_key, key);
    }
    if let Some(marker) = args.refuse_marker {
        builder = builder.refuse_marker(marker);
    }
    let handle = builder
        .listen(args.listen)
        .api_key(args.api_key)
        .latency_ms(args.latency_ms)
        .error_rate(args.error_rate)
        .rate_limit_per_minute(args.rate_limit_per_minute)
        .drop_after_create_rate(args.drop_after_create_rate)
        .spawn()
        .await?;
    println!("ngrok-api-emulator listening on {}", handle.base_url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

/// `ACCOUNT_KEY=KEY`, both non-empty.
fn key_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((account, key)) if !account.is_empty() && !key.is_empty() => {
            Ok((account.to_string(), key.to_string()))
        }
        _ => Err("expected ACCOUNT_KEY=KEY, both non-empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_keys_are_pairs_of_an_account_key_and_another_key() {
        let args = Args::try_parse_from([
            "ngrok-api-emulator",
            "--api-key",
            "main",
            "--second-key",
            "main=main-2",
            "--second-key",
            "other=other-2",
        ])
        .unwrap();
        assert_eq!(
            args.second_keys,
            [
                ("main".to_string(), "main-2".to_string()),
                ("other".to_string(), "other-2".to_string())
            ]
        );
        for bad in ["main", "=k", "main="] {
            let error = Args::try_parse_from([
                "ngrok-api-emulator",
                "--api-key",
                "main",
                "--second-key",
                bad,
            ])
            .unwrap_err()
            .to_string();
            assert!(error.contains("ACCOUNT_KEY=KEY"), "{error}");
        }
    }
}
