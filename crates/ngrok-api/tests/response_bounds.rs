//! Answers are read up to a bound: a server that sends an endless body (or declares a huge one)
//! makes the call fail with `ResponseTooLarge` (or, for an error answer, an answer that is not
//! ngrok's), never makes the client hold it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ngrok_api::types::EventDestination;
use ngrok_api::{Client, ClientConfig, Error, ErrorClass, MAX_RESPONSE_BYTES, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to every request.
#[derive(Clone, Copy)]
enum Answer {
    /// `status`, chunked, with `{"event_destinations":["` and then `x` without end.
    Endless { status: u16 },
    /// 200 declaring a `Content-Length` over the bound, then a body that never comes.
    Declared,
}

/// A server answering every request with `answer`; counts the body bytes it managed to send.
async fn serve(answer: Answer) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer_one(stream, answer, counter.clone()));
        }
    });
    (base_url, sent)
}

async fn answer_one(mut stream: TcpStream, answer: Answer, sent: Arc<AtomicU64>) {
    // The request's head (a GET has no body).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    match answer {
        Answer::Declared => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                MAX_RESPONSE_BYTES as u64 * 4
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // The body never comes; the client must not wait for it.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Answer::Endless { status } => {
            let head = format!(
                "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let opening = b"{\"event_destinations\":[\"";
            let mut chunk = format!("{:x}\r\n", opening.len()).into_bytes();
            chunk.extend_from_slice(opening);
            chunk.extend_from_slice(b"\r\n");
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
            let data = vec![b'x'; 64 * 1024];
            let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            while stream.write_all(&chunk).await.is_ok() {
                sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

fn client(base_url: &str) -> Client {
    let mut config = ClientConfig::new(Secret::new("key"))
        .with_base_url(base_url)
        .unwrap();
    config.rate_limit_per_minute = 0;
    config.max_retries = 0;
    // Long enough that an unbounded read would run into it (and hold what it read so far).
    config.timeout = Duration::from_secs(20);
    Client::new(config).unwrap()
}

#[tokio::test]
async fn an_endless_answer_fails_once_the_bound_is_read() {
    let (base_url, sent) = serve(Answer::Endless { status: 200 }).await;
    let client = client(&base_url);
    let error = client
        .get::<EventDestination>("ed_1")
        .await
        .expect_err("an endless body cannot succeed");
    assert!(
        matches!(error, Error::ResponseTooLarge { limit, .. } if limit == MAX_RESPONSE_BYTES),
        "{error:?}"
    );
    assert_eq!(error.reason(), "ResponseTooLarge");
    // Not the request's fault: retried later, never remembered as a refusal.
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(!error.is_refusal());
    assert!(
        error
            .to_string()
            .contains(&format!("over {MAX_RESPONSE_BYTES} bytes")),
        "{error}"
    );
    // The server could only push what the client read plus what the sockets buffer.
    let pushed = sent.load(Ordering::Relaxed);
    assert!(
        pushed < 4 * MAX_RESPONSE_BYTES as u64 + 16 * 1024 * 1024,
        "{pushed} bytes sent"
    );

    // A listing's page too, and a create's answer (which may have created: looked for).
    let listing = client.list::<EventDestination>().await.unwrap_err();
    assert_eq!(listing.reason(), "ResponseTooLarge");
    let create = client
        .create::<EventDestination>(&ngrok_api::types::EventDestinationCreate::new(
            ngrok_api::types::EventTarget::Kinesis(ngrok_api::types::EventTargetKinesis {
                auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                    role_arn: "arn:aws:iam::1:role/r".into(),
                }),
                stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
            }),
        ))
        .await
        .unwrap_err();
    assert_eq!(create.class(), ErrorClass::UnknownOutcome);
}

#[tokio::test]
async fn a_declared_length_over_the_bound_is_refused_unread() {
    let (base_url, _) = serve(Answer::Declared).await;
    let started = std::time::Instant::now();
    let error = client(&base_url)
        .get::<EventDestination>("ed_1")
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "ResponseTooLarge", "{error:?}");
    // Refused from its header, without waiting for a body that never comes.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn an_endless_error_answer_is_judged_by_its_beginning() {
    let (base_url, _) = serve(Answer::Endless { status: 400 }).await;
    let error = client(&base_url)
        .get::<EventDestination>("ed_1")
        .await
        .unwrap_err();
    // Its beginning is not ngrok's error object: an answer outside the contract, retried.
    let api = error.api_error().expect("an error answer");
    assert_eq!(api.status, 400);
    assert!(!api.ngrok_body);
    assert_eq!(error.class(), ErrorClass::Transient);
}
