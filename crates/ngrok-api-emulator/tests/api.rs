//! The emulator's HTTP behaviour, with responses validated against the component schemas of
//! ngrok's OpenAPI spec (`openapi/ngrok-openapi.yaml`) by a JSON-schema validator.

use std::sync::OnceLock;
use std::time::Duration;

use ngrok_api_emulator::{
    Emulator, EmulatorHandle, FaultsUpdate, RawObject, ScriptedAnswer, Spoiled, codes,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "test-key";
/// The API key of a second ngrok account.
const OTHER_KEY: &str = "other-account-key";

/// The spec's `components.schemas`, tightened for response checking:
/// - every property may be `null`: the spec omits `nullable`, yet ngrok's documented
///   responses carry `null` for unset targets and `next_page_uri` (ngrok's generated
///   clients read every field as optional);
/// - every property is required and no other property is allowed, so that a missing key,
///   a misspelled one or an extra one fails.
fn response_components() -> &'static Value {
    static COMPONENTS: OnceLock<Value> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ngrok-openapi.yaml");
        let spec: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut schemas = spec["components"]["schemas"].clone();
        for schema in schemas.as_object_mut().unwrap().values_mut() {
            tighten(schema);
        }
        schemas
    })
}

fn tighten(schema: &mut Value) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let names: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
    for property in properties.values_mut() {
        let nullable = match property.get("$ref") {
            Some(reference) => json!({"anyOf": [{"$ref": reference}, {"type": "null"}]}),
            None => {
                let mut p = property.clone();
                if let Some(Value::String(ty)) = p.get("type").cloned() {
                    p["type"] = json!([ty, "null"]);
                }
                p
            }
        };
        *property = nullable;
    }
    schema["required"] = Value::Array(names);
    schema["additionalProperties"] = json!(false);
}

/// Validates `instance` against `#/components/schemas/<name>`.
fn assert_schema(name: &str, instance: &Value) {
    let document = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": {"schemas": response_components()},
    });
    let validator = jsonschema::validator_for(&document).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not match the spec: {errors:#?}\n{instance:#}"
    );
}

/// ngrok's error body. The spec has no schema for it; this is the documented shape.
fn assert_error_body(body: &Value, status: StatusCode, code: &str) {
    let schema = json!({
        "type": "object",
        "required": ["error_code", "status_code", "msg", "details"],
        "additionalProperties": false,
        "properties": {
            "error_code": {"type": "string", "pattern": "^ERR_NGROK_[0-9]+$"},
            "status_code": {"type": "integer"},
            "msg": {"type": "string", "minLength": 1},
            "details": {
                "type": "object",
                "required": ["operation_id"],
                "properties": {"operation_id": {"type": "string", "pattern": "^op_[0-9A-Za-z]{27}$"}}
            }
        }
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(body), "not an ngrok error body: {body}");
    assert_eq!(body["status_code"], status.as_u16());
    assert_eq!(body["error_code"], code, "{body}");
}

/// The schema check itself catches a misspelled, missing or extra key.
#[test]
#[should_panic(expected = "does not match the spec")]
fn schema_check_rejects_a_deviation() {
    assert_schema(
        "EventDestinationList",
        &json!({"event_destinations": [], "uri": "u", "next_page": null}),
    );
}

#[test]
fn schema_check_accepts_the_docs_example() {
    let example = json!({
        "created_at": "2024-08-02T07:15:39Z", "description": "kinesis dev stream", "format": "json",
        "id": "ed_2k5okDBx9lLxNoCld1s7SFJnmhT", "metadata": "{\"environment\":\"dev\"}",
        "target": {"azure_logs_ingestion": null, "cloudwatch_logs": null, "datadog": null, "firehose": null,
                   "kinesis": {"auth": {"creds": null, "role": {"role_arn": "arn:aws:iam::123456789012:role/example"}},
                               "stream_arn": "arn:ngrok-local:kinesis:us-east-2:123456789012:stream/mystream2"}},
        "uri": "https://api.ngrok.com/event_destinations/ed_2k5okDBx9lLxNoCld1s7SFJnmhT"
    });
    assert_schema("EventDestination", &example);
}

struct Api {
    emulator: EmulatorHandle,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        let emulator = Emulator::builder()
            .api_key(KEY)
            .rate_limit_per_minute(0)
            .spawn()
            .await
            .unwrap();
        Self {
            emulator,
            http: reqwest::Client::new(),
        }
    }

    /// Two ngrok accounts: `KEY`'s and `OTHER_KEY`'s.
    async fn start_two_accounts() -> Self {
        let emulator = Emulator::builder()
            .api_key(KEY)
            .account_key(OTHER_KEY)
            .rate_limit_per_minute(0)
            .spawn()
            .await
            .unwrap();
        Self {
            emulator,
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request_as(KEY, method, path)
    }

    fn request_as(&self, key: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.emulator.base_url()))
            .bearer_auth(key)
            .header("Ngrok-Version", "2")
    }

    /// Creates a role-authenticated Kinesis destination and returns its id.
    async fn create_destination(&self) -> String {
        let (status, destination) = self
            .call(
                Method::POST,
                "/event_destinations",
                Some(json!({"target": kinesis_role()})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{destination}");
        destination["id"].as_str().unwrap().to_owned()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(KEY, method, path, body).await
    }

    async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request_as(key, method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }
}

fn kinesis_role() -> Value {
    json!({"kinesis": {"auth": {"role": {"role_arn": "arn:aws:iam::123456789012:role/example"}},
                       "stream_arn": "arn:aws:kinesis:us-east-2:123456789012:stream/s"}})
}

fn every_target() -> Vec<Value> {
    let creds = json!({"creds": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "aws-secret"}});
    vec![
        kinesis_role(),
        json!({"firehose": {"auth": creds, "delivery_stream_arn": "arn:aws:firehose:us-east-2:1:deliverystream/d"}}),
        json!({"cloudwatch_logs": {"auth": creds, "log_group_arn": "arn:aws:logs:us-east-2:1:log-group:g"}}),
        json!({"datadog": {"api_key": "dd-secret", "ddsite": "datadoghq.eu"}}),
        json!({"azure_logs_ingestion": {"tenant_id": "t", "client_id": "c", "client_secret": "az-secret",
               "logs_ingestion_uri": "https://x.ingest.monitor.azure.com", "data_collection_rule_id": "dcr-1",
               "data_collection_stream_name": "Custom-s"}}),
    ]
}

#[tokio::test]
async fn crud_responses_match_the_spec_and_withhold_secrets() {
    let api = Api::start().await;
    for target in every_target() {
        let body = json!({"description": "d", "metadata": "{\"k\":1}", "format": "json", "target": target.clone()});
        let (status, created) = api
            .call(Method::POST, "/event_destinations", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_schema("EventDestination", &created);
        let id = created["id"].as_str().unwrap();
        assert!(
            id.starts_with("ed_")
                && id.len() == 30
                && id[3..].chars().all(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(
            created["uri"],
            format!("{}/event_destinations/{id}", api.emulator.base_url())
        );
        time::OffsetDateTime::parse(
            created["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("created_at is RFC 3339");
        let text = created.to_string();
        for secret in ["aws-secret", "dd-secret", "az-secret"] {
            assert!(!text.contains(secret), "secret in response: {text}");
        }
        // Stored, though withheld.
        if target.to_string().contains("secret") {
            assert!(
                api.emulator
                    .object(id)
                    .unwrap()
                    .to_string()
                    .contains("secret")
            );
        }

        let (status, fetched) = api
            .call(Method::GET, &format!("/event_destinations/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_schema("EventDestination", &fetched);
        assert_eq!(fetched, created);

        let (status, updated) = api
            .call(
                Method::PATCH,
                &format!("/event_destinations/{id}"),
                Some(json!({"description": "changed"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_schema("EventDestination", &updated);
        assert_eq!(updated["description"], "changed");
        assert_eq!(updated["target"], created["target"]);
    }

    let (status, list) = api.call(Method::GET, "/event_destinations", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema("EventDestinationList", &list);
    assert_eq!(list["event_destinations"].as_array().unwrap().len(), 5);
    assert_eq!(list["next_page_uri"], Value::Null);

    let id = list["event_destinations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = api
        .call(Method::DELETE, &format!("/event_destinations/{id}"), None)
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = api
        .call(Method::GET, &format!("/event_destinations/{id}"), None)
        .await;
    assert_error_body(&body, status, codes::NOT_FOUND);
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_pages_newest_first_with_before_id() {
    let api = Api::start().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let body = json!({"description": format!("n{i}"), "target": kinesis_role()});
        let (_, d) = api
            .call(Method::POST, "/event_destinations", Some(body))
            .await;
        created.push(d["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/event_destinations?limit=3".to_owned();
    loop {
        let (status, page) = api.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_schema("EventDestinationList", &page);
        seen.extend(
            page["event_destinations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned()),
        );
        match page["next_page_uri"].as_str() {
            Some(next) => {
                path = next
                    .strip_prefix(&api.emulator.base_url())
                    .unwrap()
                    .to_owned()
            }
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created);
    let (status, body) = api
        .call(Method::GET, "/event_destinations?limit=101", None)
        .await;
    assert_error_body(&body, status, codes::INVALID_REQUEST);
}

#[tokio::test]
async fn auth_version_and_unknown_ids_answer_ngrok_errors() {
    let api = Api::start().await;
    let url = format!("{}/event_destinations", api.emulator.base_url());

    let response = api
        .http
        .get(&url)
        .header("Ngrok-Version", "2")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("ngrok-operation-id"));
    assert_error_body(
        &response.json().await.unwrap(),
        status,
        codes::MISSING_API_KEY,
    );

    let response = api
        .http
        .get(&url)
        .bearer_auth("wrong")
        .header("Ngrok-Version", "2")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_body(
        &response.json().await.unwrap(),
        status,
        codes::INVALID_API_KEY,
    );

    let response = api.http.get(&url).bearer_auth(KEY).send().await.unwrap();
    let status = response.status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(
        &response.json().await.unwrap(),
        status,
        codes::VERSION_HEADER,
    );

    for (method, path) in [
        (Method::GET, "/event_destinations/ed_doesnotexist"),
        (Method::DELETE, "/event_destinations/ed_doesnotexist"),
        (Method::GET, "/event_subscriptions/esb_doesnotexist"),
        (Method::GET, "/nothing_here"),
    ] {
        let (status, body) = api.call(method, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error_body(&body, status, codes::NOT_FOUND);
    }
    let (status, body) = api
        .call(
            Method::PATCH,
            "/event_destinations/ed_doesnotexist",
            Some(json!({"description": "x"})),
        )
        .await;
    assert_error_body(&body, status, codes::NOT_FOUND);
}

#[tokio::test]
async fn invalid_bodies_are_rejected_with_ngrok_errors() {
    let api = Api::start().await;
    let aws = |auth: Value| json!({"kinesis": {"auth": auth, "stream_arn": "arn"}});
    let cases = [
        (json!({"target": {}}), codes::INVALID_TARGET),
        (
            json!({"target": {"kinesis": null, "firehose": null}}),
            codes::INVALID_TARGET,
        ),
        (
            json!({"target": {"kinesis": {"auth": {"role": {"role_arn": "r"}}, "stream_arn": "a"},
                              "firehose": {"auth": {"role": {"role_arn": "r"}}, "delivery_stream_arn": "a"}}}),
            codes::INVALID_TARGET,
        ),
        (json!({"target": aws(json!({}))}), codes::INVALID_TARGET),
        (
            json!({"target": aws(json!({"role": {"role_arn": "r"}, "creds": {"aws_access_key_id": "a", "aws_secret_access_key": "s"}}))}),
            codes::INVALID_TARGET,
        ),
        (
            json!({"target": aws(json!({"creds": {"aws_access_key_id": "a"}}))}),
            codes::INVALID_TARGET,
        ),
        (
            json!({"target": {"kinesis": {"auth": {"role": {"role_arn": "r"}}}}}),
            codes::INVALID_TARGET,
        ),
        (
            json!({"target": {"s3": {"bucket": "b"}}}),
            codes::INVALID_REQUEST,
        ),
        (json!({"description": "x"}), codes::INVALID_TARGET),
        (
            json!({"description": "é".repeat(128), "target": kinesis_role()}),
            codes::DESCRIPTION_TOO_LONG,
        ),
        (
            json!({"metadata": "m".repeat(4097), "target": kinesis_role()}),
            codes::METADATA_TOO_LONG,
        ),
        (
            json!({"format": "xml", "target": kinesis_role()}),
            codes::INVALID_FORMAT,
        ),
        (
            json!({"description": null, "target": kinesis_role()}),
            codes::INVALID_REQUEST,
        ),
        (
            json!({"Description": "x", "target": kinesis_role()}),
            codes::INVALID_REQUEST,
        ),
        (json!(["not", "an", "object"]), codes::INVALID_REQUEST),
    ];
    for (body, code) in cases {
        let (status, answer) = api
            .call(Method::POST, "/event_destinations", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error_body(&answer, status, code);
    }
    // Limits are in bytes: 255 bytes pass, 4096 bytes pass.
    let body = json!({"description": "d".repeat(255), "metadata": "m".repeat(4096), "target": kinesis_role()});
    assert_eq!(
        api.call(Method::POST, "/event_destinations", Some(body))
            .await
            .0,
        StatusCode::CREATED
    );
    // Wrong content type.
    let response = api
        .request(Method::POST, "/event_destinations")
        .body(json!({"target": kinesis_role()}).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error_body(
        &response.json().await.unwrap(),
        status,
        codes::INVALID_REQUEST,
    );
    assert!(
        api.emulator.destination_ids().len() == 1,
        "nothing invalid was stored"
    );
}

/// ngrok's docs spell the format `JSON`, its Python SDK sends `""` by default, the operator
/// sends `json`: all are accepted, stored and read back as sent.
#[tokio::test]
async fn format_is_accepted_in_any_case_or_empty() {
    let api = Api::start().await;
    for format in ["", "json", "JSON", "Json"] {
        let (status, created) = api
            .call(
                Method::POST,
                "/event_destinations",
                Some(json!({"format": format, "target": kinesis_role()})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{format:?}: {created}");
        assert_eq!(created["format"], format);
        let path = format!("/event_destinations/{}", created["id"].as_str().unwrap());
        let (status, updated) = api
            .call(Method::PATCH, &path, Some(json!({"format": "JSON"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["format"], "JSON");
    }
    let (_, omitted) = api
        .call(
            Method::POST,
            "/event_destinations",
            Some(json!({"target": kinesis_role()})),
        )
        .await;
    assert_eq!(omitted["format"], "json");
}

/// ngrok's spec: a destination's description and metadata are limited in bytes, a
/// subscription's in characters. Each side of each boundary, with multi-byte text.
#[tokio::test]
async fn limits_are_bytes_for_destinations_and_characters_for_subscriptions() {
    let api = Api::start().await;
    let destination_id = api.create_destination().await;
    let subscription = |field: &str, text: String| json!({field: text, "sources": [{"type": "ip_policy_created.v0"}], "destination_ids": [destination_id]});
    let destination = |field: &str, text: String| json!({field: text, "target": kinesis_role()});
    // (path, body, accepted, code when refused)
    let cases = [
        (
            "/event_destinations",
            destination("description", "é".repeat(127) + "d"),
            true,
            "",
        ),
        (
            "/event_destinations",
            destination("description", "é".repeat(128)),
            false,
            codes::DESCRIPTION_TOO_LONG,
        ),
        (
            "/event_destinations",
            destination("metadata", "€".repeat(1365) + "m"),
            true,
            "",
        ),
        (
            "/event_destinations",
            destination("metadata", "€".repeat(1366)),
            false,
            codes::METADATA_TOO_LONG,
        ),
        (
            "/event_subscriptions",
            subscription("description", "é".repeat(255)),
            true,
            "",
        ),
        (
            "/event_subscriptions",
            subscription("description", "é".repeat(256)),
            false,
            codes::DESCRIPTION_TOO_LONG,
        ),
        (
            "/event_subscriptions",
            subscription("metadata", "€".repeat(4096)),
            true,
            "",
        ),
        (
            "/event_subscriptions",
            subscription("metadata", "€".repeat(4097)),
            false,
            codes::METADATA_TOO_LONG,
        ),
    ];
    for (path, body, accepted, code) in cases {
        let (status, answer) = api.call(Method::POST, path, Some(body.clone())).await;
        if accepted {
            assert_eq!(status, StatusCode::CREATED, "{path} {answer}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert_error_body(&answer, status, code);
        }
    }
}

/// `sources[].fields`, as ngrok's Terraform provider sends them: stored, returned, replaced by
/// a PATCH, and refused with ngrok's documented codes where misused.
#[tokio::test]
async fn source_fields_are_stored_returned_and_checked() {
    let api = Api::start().await;
    let destination_id = api.create_destination().await;
    let sources = json!([
        {"type": "http_request_complete.v0", "fields": ["conn.client_ip", "http.request.method"]},
        {"type": "ip_policy_created.v0"}
    ]);
    let (status, created) = api
        .call(
            Method::POST,
            "/event_subscriptions",
            Some(json!({"sources": sources, "destination_ids": [destination_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["sources"][0]["fields"],
        json!(["conn.client_ip", "http.request.method"])
    );
    assert!(created["sources"][1].get("fields").is_none());
    let path = format!("/event_subscriptions/{}", created["id"].as_str().unwrap());
    let (_, fetched) = api.call(Method::GET, &path, None).await;
    assert_eq!(fetched["sources"], created["sources"]);
    let (_, patched) = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"sources": [{"type": "tcp_connection_closed.v0", "fields": ["conn.bytes_in"]}]})),
        )
        .await;
    assert_eq!(patched["sources"][0]["fields"], json!(["conn.bytes_in"]));

    for (source, code) in [
        (
            json!({"type": "ip_policy_created.v0", "fields": ["conn.client_ip"]}),
            codes::SOURCE_FIELDS_NOT_ALLOWED,
        ),
        (
            json!({"type": "http_request_complete.v0", "fields": [""]}),
            codes::INVALID_EVENT_FIELD,
        ),
        (
            json!({"type": "http_request_complete.v0", "fields": ["conn client ip"]}),
            codes::INVALID_EVENT_FIELD,
        ),
        (
            json!({"type": "http_request_complete.v0", "fields": "conn.client_ip"}),
            codes::INVALID_REQUEST,
        ),
    ] {
        let (status, answer) = api
            .call(Method::PATCH, &path, Some(json!({"sources": [source]})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{source}");
        assert_error_body(&answer, status, code);
    }
}

/// `sources[].filter`, as ngrok's events docs and Terraform provider describe it: stored,
/// returned, replaced or removed by a PATCH, settable from the dashboard (admin), and refused
/// with ngrok's documented codes on an event type that is not filtered or when invalid.
#[tokio::test]
async fn source_filters_are_stored_returned_and_checked() {
    let api = Api::start().await;
    let destination_id = api.create_destination().await;
    let filter = r#"ev.conn.server_name.matches("ngrok-docs-examples\\.ngrok\\.dev")"#;
    let sources = json!([
        {"type": "http_request_complete.v0", "fields": ["conn.client_ip"], "filter": filter},
        {"type": "ip_policy_created.v0"}
    ]);
    let (status, created) = api
        .call(
            Method::POST,
            "/event_subscriptions",
            Some(json!({"sources": sources, "destination_ids": [destination_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["sources"][0]["filter"], filter);
    assert!(created["sources"][1].get("filter").is_none());
    let id = created["id"].as_str().unwrap();
    let path = format!("/event_subscriptions/{id}");
    let (_, fetched) = api.call(Method::GET, &path, None).await;
    assert_eq!(fetched["sources"], created["sources"]);
    let (_, listed) = api.call(Method::GET, "/event_subscriptions", None).await;
    assert_eq!(
        listed["event_subscriptions"][0]["sources"],
        created["sources"]
    );

    // A PATCH of the sources replaces them: a new filter, then none (omitted, or empty).
    let tcp = json!({"type": "tcp_connection_closed.v0", "filter": "ev.conn.server_port == 22"});
    let (status, patched) = api
        .call(Method::PATCH, &path, Some(json!({"sources": [tcp]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["sources"][0]["filter"], "ev.conn.server_port == 22");
    for without in [
        json!({"type": "tcp_connection_closed.v0"}),
        json!({"type": "tcp_connection_closed.v0", "filter": ""}),
        json!({"type": "tcp_connection_closed.v0", "filter": null}),
    ] {
        let (_, patched) = api
            .call(Method::PATCH, &path, Some(json!({"sources": [without]})))
            .await;
        assert!(patched["sources"][0].get("filter").is_none(), "{patched}");
    }

    // Set in the dashboard (admin), returned by the API.
    let edited = api
        .emulator
        .patch_object(
            id,
            &json!({"sources": [{"type": "http_request_complete.v0", "filter": filter}]}),
        )
        .unwrap();
    assert_eq!(edited["sources"][0]["filter"], filter);
    let (_, fetched) = api.call(Method::GET, &path, None).await;
    assert_eq!(fetched["sources"][0]["filter"], filter);

    for (source, code, msg) in [
        (
            json!({"type": "ip_policy_created.v0", "filter": "ev.id == \"x\""}),
            codes::SOURCE_FILTER_NOT_ALLOWED,
            "Event Sources for the \"ip_policy_created.v0\" event may not specify a filter.",
        ),
        (
            json!({"type": "http_request_complete.v1", "filter": "ev.conn.server_port == 80"}),
            codes::SOURCE_FILTER_NOT_ALLOWED,
            "Event Sources for the \"http_request_complete.v1\" event may not specify a filter.",
        ),
        (
            json!({"type": "http_request_complete.v0", "filter": "ev.conn.server_port == (80"}),
            codes::INVALID_SOURCE_FILTER,
            "Event Source filter is invalid: \"unbalanced brackets\"",
        ),
        (
            json!({"type": "http_request_complete.v0", "filter": "ev.conn.server_name == \"a"}),
            codes::INVALID_SOURCE_FILTER,
            "Event Source filter is invalid: \"unterminated string\"",
        ),
        (
            json!({"type": "http_request_complete.v0", "filter": 80}),
            codes::INVALID_REQUEST,
            "",
        ),
    ] {
        for method in [Method::PATCH, Method::POST] {
            let (target, body) = if method == Method::PATCH {
                (path.clone(), json!({"sources": [source]}))
            } else {
                (
                    "/event_subscriptions".to_string(),
                    json!({"sources": [source], "destination_ids": [destination_id]}),
                )
            };
            let (status, answer) = api.call(method.clone(), &target, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {source}");
            assert_error_body(&answer, status, code);
            if !msg.is_empty() {
                assert_eq!(answer["msg"], msg);
            }
        }
    }
    // The dashboard cannot set one where ngrok refuses it either.
    assert!(
        api.emulator
            .patch_object(
                id,
                &json!({"sources": [{"type": "ip_policy_created.v0", "filter": "ev.id == \"x\""}]}),
            )
            .is_err()
    );
}

#[tokio::test]
async fn subscriptions_match_the_spec_and_pin_their_destinations() {
    let api = Api::start().await;
    let destination_id = api.create_destination().await;
    let body = json!({"description": "s", "sources": [{"type": "ip_policy_created.v0"}], "destination_ids": [destination_id]});
    let (status, subscription) = api
        .call(Method::POST, "/event_subscriptions", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{subscription}");
    assert_schema("EventSubscription", &subscription);
    let id = subscription["id"].as_str().unwrap();
    assert!(id.starts_with("esb_") && id.len() == 31);
    assert_eq!(subscription["destinations"][0]["id"], destination_id);

    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/event_destinations/{destination_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(&body, status, codes::DESTINATION_IN_USE);

    let (status, list) = api.call(Method::GET, "/event_subscriptions", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema("EventSubscriptionList", &list);

    let (status, updated) = api
        .call(
            Method::PATCH,
            &format!("/event_subscriptions/{id}"),
            Some(json!({"destination_ids": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_schema("EventSubscription", &updated);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/event_destinations/{destination_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api
        .call(
            Method::POST,
            "/event_subscriptions",
            Some(json!({"destination_ids": [destination_id]})),
        )
        .await;
    assert_error_body(&body, status, codes::UNKNOWN_DESTINATION);
    assert_eq!(
        api.call(Method::DELETE, &format!("/event_subscriptions/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_err_ngrok_226_and_retry_after() {
    let api = Api::start().await;
    api.emulator
        .set_faults(&FaultsUpdate {
            rate_limit_per_minute: Some(5),
            ..Default::default()
        })
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            api.call(Method::GET, "/event_destinations", None).await.0,
            StatusCode::OK
        );
    }
    let response = api
        .request(Method::GET, "/event_destinations")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_error_body(&response.json().await.unwrap(), status, codes::RATE_LIMITED);
}

#[tokio::test]
async fn injected_errors_and_dropped_creates() {
    let api = Api::start().await;
    api.emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    let (status, body) = api.call(Method::GET, "/event_destinations", None).await;
    assert!([500, 502, 503].contains(&status.as_u16()));
    assert_eq!(body["status_code"], status.as_u16());

    api.emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(0.0),
            drop_after_create_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();
    let result = api
        .request(Method::POST, "/event_destinations")
        .json(&json!({"target": kinesis_role()}))
        .send()
        .await;
    let error = result.expect_err("the connection is closed without an answer");
    assert!(!error.is_connect(), "the request was sent: {error:?}");
    assert_eq!(
        api.emulator.destination_ids().len(),
        1,
        "the create was stored"
    );
    let dropped = api
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect::<Vec<_>>();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].status, None);
}

#[tokio::test]
async fn admin_surface_logs_counts_edits_and_deletes() {
    let api = Api::start().await;
    let admin = api.emulator.admin_client();
    let (_, created) = api
        .call(
            Method::POST,
            "/event_destinations",
            Some(json!({"description": "before", "target": kinesis_role()})),
        )
        .await;
    let id = created["id"].as_str().unwrap();

    let log = admin.requests().await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].status, Some(201));
    assert_eq!(
        log[0].body,
        Some(json!({"description": "before", "target": kinesis_role()}))
    );
    assert_eq!(log[0].ngrok_version.as_deref(), Some("2"));
    assert!(log[0].authorized);

    let edited = admin
        .patch_object(id, &json!({"description": "edited in the dashboard"}))
        .await
        .unwrap();
    assert_eq!(edited["description"], "edited in the dashboard");
    let (_, fetched) = api
        .call(Method::GET, &format!("/event_destinations/{id}"), None)
        .await;
    assert_eq!(fetched["description"], "edited in the dashboard");
    assert!(
        api.emulator
            .patch_object(
                id,
                &json!({"target": {"firehose": {"delivery_stream_arn": "x"}}})
            )
            .is_err()
    );

    assert!(admin.delete_object(id).await.unwrap());
    assert_eq!(
        api.call(Method::GET, &format!("/event_destinations/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let counts = admin.counts().await.unwrap();
    let get_404 = counts.iter().find(|c| {
        c.method == "GET" && c.route == "/event_destinations/{id}" && c.status == Some(404)
    });
    assert_eq!(get_404.map(|c| c.count), Some(1));
    assert_eq!(api.emulator.count("GET", "/event_destinations/{id}"), 2);

    let faults = admin
        .set_faults(&FaultsUpdate {
            latency_ms: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(faults.latency_ms, 5);
    assert_eq!(faults.rate_limit_per_minute, 0);
    admin.reset().await.unwrap();
    assert!(admin.requests().await.unwrap().is_empty());
    assert_eq!(admin.faults().await.unwrap().latency_ms, 0);
}

#[tokio::test]
async fn concurrent_creates_all_land() {
    let api = std::sync::Arc::new(Api::start().await);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.call(
                    Method::POST,
                    "/event_destinations",
                    Some(json!({"description": format!("c{i}"), "target": kinesis_role()})),
                )
                .await
                .0
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap(),
            StatusCode::CREATED
        );
    }
    assert_eq!(api.emulator.destination_ids().len(), 50);
}

/// Ids in a list answer, in order.
fn listed_ids(list: &Value, collection: &str) -> Vec<String> {
    list[collection]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates a destination as `key`'s account; answers its id.
async fn create_destination_as(api: &Api, key: &str, description: &str) -> String {
    let (status, created) = api
        .call_as(
            key,
            Method::POST,
            "/event_destinations",
            Some(json!({"description": description, "target": kinesis_role()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn accounts_do_not_see_each_others_objects() {
    let api = Api::start_two_accounts().await;
    // Interleaved, so that paging has to skip the other account's objects.
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..3 {
        mine.push(create_destination_as(&api, KEY, &format!("mine{i}")).await);
        theirs.push(create_destination_as(&api, OTHER_KEY, &format!("theirs{i}")).await);
    }
    let (status, subscription) = api
        .call(
            Method::POST,
            "/event_subscriptions",
            Some(json!({"description": "mine", "destination_ids": [mine[0]]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{subscription}");
    assert_schema("EventSubscription", &subscription);
    let subscription_id = subscription["id"].as_str().unwrap().to_owned();

    // The other account: get, patch and delete answer 404 exactly as for an unknown id.
    for path in [
        format!("/event_destinations/{}", mine[0]),
        format!("/event_subscriptions/{subscription_id}"),
    ] {
        let (status, body) = api.call_as(OTHER_KEY, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_error_body(&body, status, codes::NOT_FOUND);
        let (status, body) = api
            .call_as(
                OTHER_KEY,
                Method::PATCH,
                &path,
                Some(json!({"description": "hijacked"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_error_body(&body, status, codes::NOT_FOUND);
        let (status, body) = api.call_as(OTHER_KEY, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_error_body(&body, status, codes::NOT_FOUND);
        // Untouched for its owner.
        let (status, owned) = api.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(owned["description"], "hijacked");
    }
    // And the other way round.
    let path = format!("/event_destinations/{}", theirs[0]);
    assert_eq!(
        api.call(Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(Method::DELETE, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call_as(OTHER_KEY, Method::GET, &path, None).await.0,
        StatusCode::OK
    );

    // Lists hold only the caller's objects, newest first, paged as before.
    for (key, own) in [(KEY, &mine), (OTHER_KEY, &theirs)] {
        let mut seen = Vec::new();
        let mut path = "/event_destinations?limit=2".to_owned();
        loop {
            let (status, page) = api.call_as(key, Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK);
            assert_schema("EventDestinationList", &page);
            seen.extend(listed_ids(&page, "event_destinations"));
            match page["next_page_uri"].as_str() {
                Some(next) => {
                    path = next
                        .strip_prefix(&api.emulator.base_url())
                        .unwrap()
                        .to_owned()
                }
                None => break,
            }
        }
        let mut expected = own.clone();
        expected.reverse();
        assert_eq!(seen, expected, "{key}");
    }
    let (status, list) = api
        .call_as(OTHER_KEY, Method::GET, "/event_subscriptions", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_schema("EventSubscriptionList", &list);
    assert!(listed_ids(&list, "event_subscriptions").is_empty());
    let (_, list) = api.call(Method::GET, "/event_subscriptions", None).await;
    assert_eq!(
        listed_ids(&list, "event_subscriptions"),
        [subscription_id.as_str()]
    );

    // The in-process helpers see every account.
    assert_eq!(api.emulator.destination_ids().len(), 6);
    assert_eq!(api.emulator.subscription_ids(), [subscription_id.as_str()]);
    assert_eq!(api.emulator.account_of(&mine[1]).as_deref(), Some(KEY));
    assert_eq!(
        api.emulator.account_of(&theirs[1]).as_deref(),
        Some(OTHER_KEY)
    );
    assert_eq!(api.emulator.account_of("ed_doesnotexist"), None);
    assert_eq!(api.emulator.api_keys(), [KEY, OTHER_KEY]);
    assert_eq!(
        api.emulator.object(&theirs[2]).unwrap()["description"],
        "theirs2"
    );
    assert!(api.emulator.delete_object(&theirs[2]));
    assert_eq!(
        api.call_as(
            OTHER_KEY,
            Method::GET,
            &format!("/event_destinations/{}", theirs[2]),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_subscription_cannot_name_another_accounts_destination() {
    let api = Api::start_two_accounts().await;
    let mine = create_destination_as(&api, KEY, "mine").await;
    let theirs = create_destination_as(&api, OTHER_KEY, "theirs").await;

    let (status, body) = api
        .call_as(
            OTHER_KEY,
            Method::POST,
            "/event_subscriptions",
            Some(json!({"destination_ids": [theirs, mine]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(&body, status, codes::UNKNOWN_DESTINATION);
    assert!(api.emulator.subscription_ids().is_empty());

    let (status, subscription) = api
        .call_as(
            OTHER_KEY,
            Method::POST,
            "/event_subscriptions",
            Some(json!({"destination_ids": [theirs]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{subscription}");
    let id = subscription["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call_as(
            OTHER_KEY,
            Method::PATCH,
            &format!("/event_subscriptions/{id}"),
            Some(json!({"destination_ids": [mine]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(&body, status, codes::UNKNOWN_DESTINATION);
    // An out-of-band edit is held to the same rule.
    assert!(
        api.emulator
            .patch_object(&id, &json!({"destination_ids": [mine]}))
            .is_err()
    );
    assert_eq!(
        api.emulator.object(&id).unwrap()["destination_ids"],
        json!([theirs])
    );

    // The subscription pins its own account's destination only.
    let (status, body) = api
        .call_as(
            OTHER_KEY,
            Method::DELETE,
            &format!("/event_destinations/{theirs}"),
            None,
        )
        .await;
    assert_error_body(&body, status, codes::DESTINATION_IN_USE);
    assert_eq!(
        api.call(Method::DELETE, &format!("/event_destinations/{mine}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn with_several_accounts_an_unknown_key_is_still_refused() {
    let api = Api::start_two_accounts().await;
    for key in [KEY, OTHER_KEY] {
        assert_eq!(
            api.call_as(key, Method::GET, "/event_destinations", None)
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, body) = api
        .call_as("wrong", Method::GET, "/event_destinations", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_body(&body, status, codes::INVALID_API_KEY);
    let authorized: Vec<bool> = api
        .emulator
        .requests()
        .iter()
        .map(|r| r.authorized)
        .collect();
    assert_eq!(authorized, [true, true, false]);

    let duplicate = Emulator::builder()
        .api_key(KEY)
        .account_key(OTHER_KEY)
        .account_key(KEY)
        .spawn()
        .await;
    assert_eq!(
        duplicate.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}

#[tokio::test]
async fn rate_limit_windows_are_per_account() {
    let api = Api::start_two_accounts().await;
    api.emulator
        .set_faults(&FaultsUpdate {
            rate_limit_per_minute: Some(2),
            ..Default::default()
        })
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            api.call(Method::GET, "/event_destinations", None).await.0,
            StatusCode::OK
        );
    }
    let (status, body) = api.call(Method::GET, "/event_destinations", None).await;
    assert_error_body(&body, status, codes::RATE_LIMITED);
    assert_eq!(
        api.call_as(OTHER_KEY, Method::GET, "/event_destinations", None)
            .await
            .0,
        StatusCode::OK
    );
}

/// `GET /api_keys` answers ngrok's `APIKeyList`: the account's keys (a second key included,
/// another account's not, a revoked one no more), newest first, paged, without tokens.
#[tokio::test]
async fn api_keys_list_the_accounts_keys_without_tokens() {
    let emulator = Emulator::builder()
        .api_key(KEY)
        .second_key(KEY, "second-key")
        .account_key(OTHER_KEY)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap();
    let api = Api {
        emulator,
        http: reqwest::Client::new(),
    };
    let (status, list) = api.call(Method::GET, "/api_keys", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema("APIKeyList", &list);
    let key_id = |key: &str| api.emulator.api_key_id(key).unwrap();
    // Newest first: the second key was added after the main one.
    assert_eq!(
        listed_ids(&list, "keys"),
        [key_id("second-key"), key_id(KEY)]
    );
    for key in list["keys"].as_array().unwrap() {
        assert_eq!(key["token"], Value::Null);
        assert_eq!(
            key["uri"],
            format!(
                "{}/api_keys/{}",
                api.emulator.base_url(),
                key["id"].as_str().unwrap()
            )
        );
    }
    assert!(!list.to_string().contains(KEY) && !list.to_string().contains("second-key"));

    let (_, first) = api.call(Method::GET, "/api_keys?limit=1", None).await;
    assert_eq!(listed_ids(&first, "keys"), [key_id("second-key")]);
    let next = first["next_page_uri"].as_str().unwrap();
    let next = next.strip_prefix(&api.emulator.base_url()).unwrap();
    let (_, second) = api.call(Method::GET, next, None).await;
    assert_eq!(listed_ids(&second, "keys"), [key_id(KEY)]);
    assert_eq!(second["next_page_uri"], Value::Null);

    let (_, other) = api.call_as(OTHER_KEY, Method::GET, "/api_keys", None).await;
    assert_eq!(listed_ids(&other, "keys"), [key_id(OTHER_KEY)]);

    api.emulator.revoke_key(KEY);
    let (_, after) = api
        .call_as("second-key", Method::GET, "/api_keys", None)
        .await;
    assert_eq!(listed_ids(&after, "keys"), [key_id("second-key")]);
}

/// Raw objects are answered exactly as stored, by `GET` and in lists; scripted answers spoil
/// exactly the next N answers to a path; both work over the HTTP admin surface.
#[tokio::test]
async fn raw_objects_and_scripted_answers() {
    let api = Api::start().await;
    let admin = api.emulator.admin_client();
    let good = api.create_destination().await;
    let raw = json!({"id": "ed_future", "target": {"splunk": {"hec": "x"}}, "description": null});
    let id = admin
        .insert_raw_object(&RawObject {
            api_key: KEY.into(),
            collection: "event_destinations".into(),
            object: raw.clone(),
        })
        .await
        .unwrap();
    assert_eq!(id, "ed_future");
    let (status, fetched) = api
        .call(Method::GET, "/event_destinations/ed_future", None)
        .await;
    assert_eq!((status, &fetched), (StatusCode::OK, &raw));
    let (_, list) = api.call(Method::GET, "/event_destinations", None).await;
    assert!(
        list["event_destinations"]
            .as_array()
            .unwrap()
            .contains(&raw)
    );
    assert!(listed_ids(&list, "event_destinations").contains(&good));
    // Another account's key cannot be named; an unknown collection is refused.
    assert!(
        api.emulator
            .insert_raw_object("nobody", "event_destinations", json!({}))
            .is_err()
    );
    assert!(
        api.emulator
            .insert_raw_object(KEY, "tunnels", json!({}))
            .is_err()
    );
    // An existing object made raw, over HTTP.
    let nulled = json!({"id": good, "target": null});
    assert!(
        admin
            .set_raw_object(&good, nulled.as_object().unwrap())
            .await
            .unwrap()
    );
    let (_, fetched) = api
        .call(Method::GET, &format!("/event_destinations/{good}"), None)
        .await;
    assert_eq!(fetched, nulled);

    let one = "/event_destinations/{id}";
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        let request = no_redirects
            .get(format!("{}{path}", api.emulator.base_url()))
            .bearer_auth(KEY)
            .header("Ngrok-Version", "2");
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let location = response.headers().get("location").cloned();
            let text = response.text().await.unwrap();
            (status, location, text)
        }
    };
    admin
        .script_answer(&ScriptedAnswer {
            method: Some("GET".into()),
            path: one.into(),
            times: 2,
            answer: Spoiled::MalformedBody,
        })
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, _, text) = get(format!("/event_destinations/{good}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
    let (_, _, text) = get(format!("/event_destinations/{good}")).await;
    assert!(
        serde_json::from_str::<Value>(&text).is_ok(),
        "used up after 2"
    );

    api.emulator
        .script_answer(ScriptedAnswer {
            method: None,
            path: "/event_destinations".into(),
            times: 1,
            answer: Spoiled::Redirect,
        })
        .unwrap();
    let (status, location, _) = get("/event_destinations".into()).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(location.is_some());

    api.emulator
        .script_answer(ScriptedAnswer {
            method: None,
            path: "/event_destinations".into(),
            times: 1,
            answer: Spoiled::ErrorPage { status: 403 },
        })
        .unwrap();
    let (status, _, text) = get("/event_destinations".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(text.starts_with("<html>"), "{text}");
    assert!(
        api.emulator
            .script_answer(ScriptedAnswer {
                method: None,
                path: "/x".into(),
                times: 0,
                answer: Spoiled::Redirect,
            })
            .is_err()
    );

    // Reset forgets scripted answers still to come.
    api.emulator
        .script_answer(ScriptedAnswer {
            method: None,
            path: "/event_destinations".into(),
            times: 5,
            answer: Spoiled::Redirect,
        })
        .unwrap();
    admin.reset().await.unwrap();
    assert_eq!(get("/event_destinations".into()).await.0, StatusCode::OK);
}
