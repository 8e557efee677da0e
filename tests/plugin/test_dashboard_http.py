"""`kubectl modeldeploy dashboard` over HTTP against the real API server (no browser, no operator):
the watch feeds the event stream, read-only refuses actions, malformed requests get JSON 4xx, and an
action with --enable-actions writes the action annotation with the user's kubeconfig."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.cluster.localcluster import LocalCluster
from tests.support.dashboard import DashboardProcess, running_dashboard
from tests.support.e2e_objects import GROUP, PLURAL, VERSION
from tests.support.e2e_scenarios import modeldeployment
from tests.support.operator_process import install_crd

pytestmark = pytest.mark.cluster

UNREACHABLE_PROMETHEUS = "http://127.0.0.1:9"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def namespace(cluster: LocalCluster, k8s: ApiClient) -> Iterator[str]:
    install_crd(cluster)
    ns = f"dash-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, modeldeployment("iris", UNREACHABLE_PROMETHEUS)
    )
    yield ns
    core.delete_namespace(ns)


def read_events(dashboard: DashboardProcess, timeout: float = 30) -> Generator[dict[str, Any], None, None]:
    """The messages of /api/events as they come (keepalive comments skipped)."""
    with urllib.request.urlopen(f"{dashboard.url}api/events", timeout=timeout) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                yield json.loads(line[len("data: ") :])


def test_read_only_dashboard_watches_and_refuses_actions(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, tmp_path: Path
) -> None:
    key = f"{namespace}/iris"
    custom = client.CustomObjectsApi(k8s)
    with running_dashboard(cluster, tmp_path) as dash:
        item = dash.item(key)
        state = dash.request("GET", "/api/modeldeployments")[1]
        assert state["actions"] is False and state["scope"] == "all namespaces" and state["problem"] is None
        assert item["phase"] == "Pending" and item["prometheusUrl"] == UNREACHABLE_PROMETHEUS
        assert [s["label"] for s in item["steps"]] == [
            "shadow 100% for 8s",
            "canary 30% for 8s",
            "canary 60% for 8s",
        ]

        # The event stream starts with everything, then follows the watch.
        events = read_events(dash)
        first = next(events)
        assert first["type"] == "reset" and key in [i["key"] for i in first["items"]]
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "iris", {"spec": {"replicas": 2}}
        )
        update = next(e for e in events if e["type"] == "upsert" and e["item"]["key"] == key)
        assert update["item"]["replicas"] == 2 and update["item"]["generation"] == item["generation"] + 1
        events.close()

        status, body = dash.request(
            "POST", f"/api/modeldeployments/{namespace}/iris/actions", b'{"action": "abort"}', JSON
        )
        assert status == 403 and "--enable-actions" in body["error"]
        annotations = (
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "iris")["metadata"].get(
                "annotations"
            )
            or {}
        )
        assert "modeldeploy.io/action" not in annotations

        # Charts: Prometheus unreachable is said per chart; bad ranges and unknown objects are 4xx.
        status, charts = dash.request("GET", f"/api/modeldeployments/{namespace}/iris/charts?range=60")
        assert status == 200 and {c["id"] for c in charts["charts"]} == {
            "requests",
            "errors",
            "latency",
            "shadow",
            "guard",
        }
        assert all("unreachable" in c["error"] for c in charts["charts"]), charts
        assert dash.request("GET", f"/api/modeldeployments/{namespace}/iris/charts?range=soon")[0] == 400
        assert dash.request("GET", f"/api/modeldeployments/{namespace}/iris/charts?range=1")[0] == 400
        status, body = dash.request("GET", f"/api/modeldeployments/{namespace}/nothing/charts")
        assert status == 404 and "nothing" in body["error"]
        assert dash.request("GET", "/api/nope")[0] == 404
        assert dash.request("DELETE", "/api/modeldeployments")[0] == 405
        status, body = dash.request("GET", "/api/modeldeployments", headers={"Host": "evil.example"})
        assert status == 421 and "Host" in body["error"]

        with urllib.request.urlopen(dash.url, timeout=10) as page:
            html = page.read().decode()
        assert '<script src="/static/dashboard.js">' in html
        with urllib.request.urlopen(f"{dash.url}static/dashboard.js", timeout=10) as script:
            assert script.headers["Content-Type"].startswith("text/javascript")


def test_actions_write_the_annotation_and_bad_requests_get_json_errors(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, tmp_path: Path
) -> None:
    path = f"/api/modeldeployments/{namespace}/iris/actions"
    with running_dashboard(cluster, tmp_path, "--enable-actions", "--wait", "1") as dash:
        assert dash.request("GET", "/api/modeldeployments")[1]["actions"] is True
        dash.item(f"{namespace}/iris")
        cases: list[tuple[bytes, dict[str, str], int, str]] = [
            (b'{"action": "abort"}', {"Content-Type": "text/plain"}, 415, "application/json"),
            (b'{"action": ', JSON, 400, "not JSON"),
            (b'{"action": "explode"}', JSON, 400, "one of promote"),
            (b'["abort"]', JSON, 400, "one of promote"),
            (b"x" * 5000, JSON, 413, "bytes"),
            (b'{"action": "abort"}', {**JSON, "Origin": "http://evil.example"}, 403, "cross-origin"),
        ]
        for body, headers, code, words in cases:
            status, answer = dash.request("POST", path, body, headers)
            assert (status, words in answer["error"]) == (code, True), (body[:40], status, answer)
        status, answer = dash.request(
            "POST", f"/api/modeldeployments/{namespace}/nothing/actions", b'{"action": "abort"}', JSON
        )
        assert status == 404

        # No operator runs here: the request is written, not acknowledged (202).
        status, answer = dash.request("POST", path, b'{"action": "pause"}', JSON)
        assert status == 202 and answer["result"] is None and "did not acknowledge" in answer["message"]
        written = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "iris"
        )["metadata"]["annotations"]["modeldeploy.io/action"]
        assert written == answer["request"] and written.startswith("pause@")
