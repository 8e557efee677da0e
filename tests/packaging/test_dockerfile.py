"""The operator image's Dockerfile, checked for the essentials (no Docker engine here to build it):
non-root numeric USER matching the chart, its entry points, ports and sources, and nothing of the
sidecar (which has its own image: tests/packaging/test_sidecar_dockerfile.py)."""

from __future__ import annotations

import re
import tomllib

import yaml

from modeldeploy.operator.settings import OperatorSettings
from tests.cluster.localcluster import ROOT
from tests.packaging.dockerfile import Stage, logical_lines, stages

DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "charts" / "modeldeploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def final_stage() -> Stage:
    return stages(DOCKERFILE)[-1]


def test_two_stages_and_the_final_one_runs_as_the_charts_non_root_user() -> None:
    build, final = stages(DOCKERFILE)
    assert build.name == "build"
    user = final.last("USER")
    assert user is not None, "the image must set USER"
    uid, _, gid = user.value.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root user (runAsNonRoot can verify it)"
    assert int(uid) == VALUES["podSecurityContext"]["runAsUser"]
    assert int(gid) == VALUES["podSecurityContext"]["runAsGroup"]
    # Nothing after USER runs as root again.
    after = final.instructions[final.instructions.index(user) + 1 :]
    assert not [i for i in after if i.keyword == "RUN"]


def test_the_entry_points_are_installed_checked_and_documented() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == {"modeldeploy-operator", "kubectl-modeldeploy"}
    build, final = stages(DOCKERFILE)
    install = " ".join(i.value for i in build.all("RUN"))
    for script in scripts:
        assert f"/opt/modeldeploy/bin/{script} --help" in install, f"the build stage runs {script}"
    header = DOCKERFILE.read_text().split("\nARG", 1)[0]
    assert all(script in header for script in scripts)
    cmd = final.last("CMD")
    assert cmd is not None and cmd.exec_form() == ["modeldeploy-operator"]
    path = next(i.value for i in final.all("ENV") if i.value.startswith("PATH="))
    assert path.startswith("PATH=/opt/modeldeploy/bin:")


def test_the_operator_image_holds_no_sidecar() -> None:
    """One implementation of the sidecar: the Rust binary in its own image."""
    build, final = stages(DOCKERFILE)
    copied = [i.value for stage in (build, final) for i in stage.all("COPY")]
    assert not [c for c in copied if "serving" in c or "sidecar" in c], copied
    assert not (ROOT / "serving" / "modeldeploy").exists(), "the Python sidecar is gone"
    label = " ".join(i.value for i in final.all("LABEL"))
    assert "sidecar" not in label, label


def test_exposed_ports_are_the_operators() -> None:
    exposed = {int(p) for i in final_stage().all("EXPOSE") for p in i.value.split()}
    assert exposed == {VALUES["metrics"]["port"], VALUES["operator"]["healthPort"]}


def test_copied_sources_exist_and_are_not_docker_ignored() -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    build = stages(DOCKERFILE)[0]
    for copy in build.all("COPY"):
        *sources, _ = copy.value.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(source.rstrip("/") == pattern for pattern in ignored), source


def test_image_names_and_versions_agree() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = PYPROJECT["project"]["version"]
    assert chart["appVersion"] == version
    default_sidecar = OperatorSettings().sidecar_image
    assert default_sidecar == f"{VALUES['sidecar']['image']['repository']}:{version}"
    assert re.search(r"docker build -t \S+:" + re.escape(version), DOCKERFILE.read_text())


def test_reader_joins_continuations_and_skips_comments() -> None:
    text = "FROM a AS b\n# note\nRUN one \\\n  # inline\n  two\nUSER 1:1\n"
    assert logical_lines(text) == ["FROM a AS b", "RUN one two", "USER 1:1"]
