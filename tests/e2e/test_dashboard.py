"""`kubectl modeldeploy dashboard` in a real browser (headless Debian Chromium, driven by Playwright)
during a real rollout and a real rollback on the real node (real_env.py: the operator from the chart,
iris + Rust sidecar Pods, Prometheus discovering them): what a person sees, and what the buttons do.

One ModelDeployment, one good revision (paused and resumed from the page, then promoted) and one
bad revision (30% errors, rolled back by the analysis). Screenshots are saved in the test's output
folder; with MODELDEPLOY_REFRESH_SCREENSHOTS=1 they also replace docs/img/dashboard-*.png:

    MODELDEPLOY_REFRESH_SCREENSHOTS=1 .venv/bin/pytest tests/e2e/test_dashboard.py
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.cluster.localcluster import ROOT, LocalCluster
from tests.support.dashboard import chromium_page, running_dashboard
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

NAME = "dash"
STEPS = [{"shadow": {"percent": 100, "duration": "4s"}}, {"canary": {"weight": 50, "duration": "8s"}}]
ANALYSIS = {
    "interval": "2s",
    "failureLimit": 2,
    "minRequests": 20,
    "slo": {"latencyP99": "500ms", "errorRate": 0.05},
}
ACTION_ANNOTATION = "modeldeploy.io/action"
DOCS_IMAGES = ROOT / "docs" / "img"
SECONDS = 1000  # Playwright timeouts are in milliseconds


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("e2e-dashboard")).start()
    try:
        yield e2e
    finally:
        e2e.stop()


def screenshot(card: Locator, out: Path, name: str, docs: bool = True) -> None:
    """Save the card as `<out>/<name>.png`; also as docs/img/dashboard-<name>.png when refreshing."""
    path = out / f"{name}.png"
    card.screenshot(path=str(path), animations="disabled")
    if docs and os.environ.get("MODELDEPLOY_REFRESH_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / f"dashboard-{name}.png")


def click_action(card: Locator, action: str) -> None:
    card.locator(f"button[data-action={action}]").click()
    expect(card.get_by_test_id("action-result")).to_contain_text(f"{action}: Applied", timeout=40 * SECONDS)


def post_from_page(page: Page, path: str, body: str) -> tuple[int, dict[str, str]]:
    """A POST the page's own script could send (same origin, application/json)."""
    status, answer = page.evaluate(
        """async ([path, body]) => {
            const headers = {"Content-Type": "application/json"};
            const r = await fetch(path, {method: "POST", headers, body});
            return [r.status, await r.json()];
        }""",
        [path, body],
    )
    return int(status), dict(answer)


def test_dashboard_follows_a_rollout_and_a_rollback(env: RealNodeEnv, tmp_path: Path) -> None:
    stable = deploy_stable(env, NAME, steps=STEPS, analysis=ANALYSIS)
    env.start_load(NAME)
    args = ("--enable-actions", "--range", "2m", "--rate-window", "4s")
    with running_dashboard(env.cluster, tmp_path, *args) as dash, chromium_page() as page:
        page.goto(dash.url)
        card = page.locator(f"#md-{env.namespace}-{NAME}")
        phase = card.get_by_test_id("phase")
        expect(phase).to_have_text("Succeeded", timeout=30 * SECONDS)
        expect(page.locator("#mode")).to_have_text("actions enabled")
        expect(page.locator("#connection")).to_have_text("live")

        # A good revision: the page shows it progressing; Pause and Resume clicked in the page.
        env.patch_spec(NAME, new_revision_spec(env, NAME, variant="b"))
        expect(phase).to_have_text("Progressing", timeout=30 * SECONDS)
        expect(card.locator(".timeline li.running")).to_have_count(1)
        click_action(card, "pause")
        expect(phase).to_have_text("Paused (UserPaused)")
        obj = env.get(NAME)
        written = obj["metadata"]["annotations"][ACTION_ANNOTATION]
        assert written.startswith("pause@") and obj["status"]["lastAction"]["id"] == written
        click_action(card, "resume")
        assert env.status(NAME)["lastAction"]["name"] == "resume"
        expect(phase).to_have_text("Succeeded", timeout=90 * SECONDS)
        promoted = env.status(NAME)["stableRevision"]
        assert promoted != stable
        expect(card.locator(".revision-stable")).to_contain_text(promoted)
        expect(card.locator(".timeline li.done")).to_have_count(len(STEPS))
        # Prometheus: the new revision served traffic; the analysis charts show its runs passing.
        expect(card.locator(f'[data-chart=requests] path[data-revision="{promoted}"]')).to_have_count(
            1, timeout=15 * SECONDS
        )
        expect(card.locator("[data-metric=errorRate] circle.run").first).to_be_visible()
        expect(card.locator("[data-metric=errorRate] circle.breach")).to_have_count(0)
        # A mark is a vertical SVG line (an empty bounding box, which Playwright calls hidden) and its
        # label: the person sees the label; the line must be in the chart.
        expect(card.locator("[data-chart=requests] text.promoted").first).to_be_visible(timeout=15 * SECONDS)
        expect(card.locator("[data-chart=requests] line.promoted").first).to_be_attached()
        screenshot(card, tmp_path, "promoted")

        # A bad revision: 30% errors, rolled back by the analysis; the page says why and marks it.
        env.patch_spec(NAME, new_revision_spec(env, NAME, variant="c", env={"IRIS_FAIL_RATE": "0.3"}))
        expect(phase).to_have_text("Progressing", timeout=30 * SECONDS)
        expect(phase).to_have_text("RolledBack", timeout=120 * SECONDS)
        status = env.status(NAME)
        bad = status["abortedRevision"]
        assert status["stableRevision"] == promoted and bad not in (None, promoted)
        expect(card.get_by_test_id("rollback-reason")).to_have_text(
            "Rolled back: " + status["rollbackReason"]
        )
        assert "error" in status["rollbackReason"].lower(), status["rollbackReason"]
        failed = [r["metric"] for r in status["analysis"]["results"] if r["verdict"] == "Fail"]
        assert failed, status["analysis"]
        for metric in failed:
            expect(card.locator(f'[data-metric="{metric}"] circle.breach').first).to_be_visible()
            expect(card.locator(f'[data-metric="{metric}"] .latest')).to_contain_text("Fail")
        expect(card.locator("[data-chart=errors] text.breach")).to_be_visible(timeout=15 * SECONDS)
        expect(card.locator("[data-chart=errors] line.breach")).to_be_attached()
        expect(card.locator("[data-chart=errors] text.breach")).to_have_text("rolled back")
        expect(card.locator(f'[data-chart=errors] path[data-revision="{bad}"]')).to_have_count(1)
        last = card.get_by_test_id("history").locator("tr").last
        expect(last).to_contain_text(bad)
        expect(last).to_contain_text("RolledBack")
        screenshot(card, tmp_path, "rolled-back")

    # Without --enable-actions: no buttons, and the server refuses an action (403, JSON).
    with running_dashboard(env.cluster, tmp_path) as dash, chromium_page() as page:
        page.goto(dash.url)
        card = page.locator(f"#md-{env.namespace}-{NAME}")
        expect(card.get_by_test_id("phase")).to_have_text("RolledBack", timeout=30 * SECONDS)
        expect(page.locator("#mode")).to_have_text("read-only")
        expect(page.locator("button")).to_have_count(0)
        status_code, answer = post_from_page(
            page, f"/api/modeldeployments/{env.namespace}/{NAME}/actions", '{"action": "retry"}'
        )
        assert status_code == 403 and "--enable-actions" in answer["error"], answer
        screenshot(card, tmp_path, "read-only", docs=False)
    assert env.status(NAME)["lastAction"]["name"] == "resume", "the refused retry changed nothing"
