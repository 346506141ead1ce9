"""The emulator as ngrok's own clients see it: ngrok's Python SDK (`ngrok-api` on PyPI, generated
by ngrok from its API definition) drives the `ngrok-api-emulator` binary through every call the
operator's resources involve. The SDK's defaults (`format: ""`, empty description and metadata,
`null`s dropped) work against ngrok, so they must work against the emulator too."""

from __future__ import annotations

import copy
import os
import pathlib
import socket
import subprocess
import time
import types

import ngrok
import pytest
from ngrok.datatypes import EventSourceReplace

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("NEO_TARGET_DIR", ROOT / "target")) / "debug"
API_KEY = "python-sdk-test-key"

ROLE = {"role": {"role_arn": "arn:aws:iam::123456789012:role/ngrok"}}
CREDS = {"creds": {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "secret-value"}}
TARGETS = {
    "kinesis": {"kinesis": {"auth": ROLE, "stream_arn": "arn:aws:kinesis:us-east-2:123456789012:stream/s"}},
    "firehose": {"firehose": {"auth": CREDS, "delivery_stream_arn": "arn:aws:firehose:us-east-2:123456789012:deliverystream/d"}},
    "cloudwatch_logs": {"cloudwatch_logs": {"auth": ROLE, "log_group_arn": "arn:aws:logs:us-east-2:123456789012:log-group:g"}},
    "datadog": {"datadog": {"api_key": "dd-secret", "ddsite": "datadoghq.eu", "ddtags": "env:ci", "service": "ngrok"}},
    "azure_logs_ingestion": {"azure_logs_ingestion": {
        "tenant_id": "t", "client_id": "c", "client_secret": "azure-secret",
        "logs_ingestion_uri": "https://x.ingest.monitor.azure.com", "data_collection_rule_id": "dcr-1",
        "data_collection_stream_name": "Custom-X"}},
}
SECRET_FIELDS = {"aws_secret_access_key", "api_key", "client_secret"}


def target(kind: str):
    """A target as the SDK's methods read it (`extract_props` takes `._props`). The SDK's own
    `EventTarget(client, props)` turns the nested dicts of `props` into objects in place, which
    the SDK then cannot serialise as JSON, so the raw props are handed over as they would be."""
    return types.SimpleNamespace(_props=copy.deepcopy(TARGETS[kind]))


@pytest.fixture
def client():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emulator = subprocess.Popen(
        [TARGET / "ngrok-api-emulator", "--listen", f"127.0.0.1:{port}", "--api-key", API_KEY,
         "--rate-limit-per-minute", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert emulator.poll() is None, "the emulator exited"
                assert time.monotonic() < deadline, "the emulator did not listen within 10 s"
                time.sleep(0.05)
        yield ngrok.Client(API_KEY, base_url=f"http://127.0.0.1:{port}")
    finally:
        emulator.terminate()
        emulator.wait(10)


def plain(value):
    """The SDK's objects as plain data, without the keys it holds as None (unset or withheld)."""
    if hasattr(value, "_props"):
        return plain(value._props)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def shown(destination) -> dict:
    """The target as ngrok shows it: only the set kind, secrets withheld."""
    return plain(destination.target)


def without_secrets(value):
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if k not in SECRET_FIELDS}
    return value


def test_every_target_is_created_read_updated_and_deleted_with_the_sdk_defaults(client):
    for kind in TARGETS:
        # No format, description or metadata: the SDK sends "" for each.
        created = client.event_destinations.create(target=target(kind))
        assert created.id.startswith("ed_")
        assert created.format == ""
        assert shown(created) == without_secrets(TARGETS[kind])

        fetched = client.event_destinations.get(created.id)
        assert fetched.id == created.id and shown(fetched) == shown(created)

        updated = client.event_destinations.update(created.id, description=f"{kind} updated", format="JSON")
        assert (updated.description, updated.format) == (f"{kind} updated", "JSON")
        assert shown(updated) == shown(created), "a PATCH without target keeps it"

        client.event_destinations.delete(created.id)
        with pytest.raises(ngrok.NotFoundError):
            client.event_destinations.get(created.id)


def test_format_is_accepted_as_ngrok_spells_it(client):
    for format in ("JSON", "json"):
        assert client.event_destinations.create(format=format, target=target("kinesis")).format == format


def test_lists_are_followed_across_pages(client):
    ids = {client.event_destinations.create(description=f"d{i}", target=target("kinesis")).id for i in range(23)}
    listed = [d.id for d in client.event_destinations.list(limit="10")]
    assert len(listed) == 23 and set(listed) == ids, "every destination once, across three pages"
    assert listed == sorted(listed, reverse=True), "newest first"
    first_page = client.event_destinations.list(limit="10")
    assert len(first_page.event_destinations) == 10 and first_page.next_page_uri

    destination = listed[0]
    subs = {client.event_subscriptions.create(sources=[EventSourceReplace(None, {"type": "ip_policy_created.v0"})],
                                              destination_ids=[destination]).id for _ in range(12)}
    assert {s.id for s in client.event_subscriptions.list(limit="5")} == subs


def test_errors_carry_ngrok_codes(client):
    with pytest.raises(ngrok.NotFoundError) as missing:
        client.event_destinations.get("ed_2kqAhNnNpD9XnBpV9g3hRMEGtGc")
    assert missing.value.http_status_code == 404
    cases = [
        (dict(format="xml", target=target("kinesis")), "ERR_NGROK_7801"),
        (dict(target=types.SimpleNamespace(_props={"kinesis": {"auth": {}, "stream_arn": "arn:s"}})), "ERR_NGROK_7800"),
        (dict(description="é" * 128, target=target("kinesis")), "ERR_NGROK_101"),
        (dict(metadata="m" * 4097, target=target("kinesis")), "ERR_NGROK_100"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ngrok.Error) as refused:
            client.event_destinations.create(**kwargs)
        assert (refused.value.http_status_code, refused.value.error_code) == (400, code), kwargs
    with pytest.raises(ngrok.Error) as unknown:
        client.event_subscriptions.create(sources=[EventSourceReplace(None, {"type": "ip_policy_created.v0"})],
                                          destination_ids=["ed_2kqAhNnNpD9XnBpV9g3hRMEGtGc"])
    assert unknown.value.error_code == "ERR_NGROK_7803"
    with pytest.raises(ngrok.Error) as unauthorized:
        ngrok.Client("wrong-key", base_url=client.http_client.base_url).event_destinations.list()
    assert unauthorized.value.http_status_code == 401


def test_subscriptions_are_created_read_updated_and_deleted(client):
    a = client.event_destinations.create(target=target("kinesis")).id
    b = client.event_destinations.create(target=target("datadog")).id
    created = client.event_subscriptions.create(
        description="http traffic", metadata='{"team":"platform"}',
        sources=[EventSourceReplace(None, {"type": "http_request_complete.v0"}),
                 EventSourceReplace(None, {"type": "ip_policy_created.v0"})],
        destination_ids=[a])
    assert created.id.startswith("esb_")
    assert [s.type for s in created.sources] == ["http_request_complete.v0", "ip_policy_created.v0"]
    assert [d.id for d in created.destinations] == [a]

    fetched = client.event_subscriptions.get(created.id)
    assert (fetched.description, fetched.metadata) == ("http traffic", '{"team":"platform"}')

    updated = client.event_subscriptions.update(created.id, destination_ids=[a, b],
                                                sources=[EventSourceReplace(None, {"type": "tcp_connection_closed.v0"})])
    assert [d.id for d in updated.destinations] == [a, b]
    assert [s.type for s in updated.sources] == ["tcp_connection_closed.v0"]
    assert updated.description == "http traffic", "a PATCH keeps what it does not name"

    with pytest.raises(ngrok.Error) as in_use:
        client.event_destinations.delete(a)
    assert in_use.value.error_code == "ERR_NGROK_7802"
    client.event_subscriptions.delete(created.id)
    client.event_destinations.delete(a)
    with pytest.raises(ngrok.NotFoundError):
        client.event_subscriptions.get(created.id)
