"""The documented model-image flow: `bentoml build` of the iris example renders the Dockerfile that
`bentoml containerize` builds (the containerize step itself needs a Docker engine, absent here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modeldeploy.operator.api import ModelSpec
from tests.cluster.localcluster import ROOT
from tests.packaging.dockerfile import stages

IRIS = ROOT / "serving" / "examples" / "iris"


@pytest.mark.slow
def test_bentoml_build_renders_a_non_root_image_on_the_model_port(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = Path(sys.executable).with_name("bentoml")
    out = subprocess.run(
        [str(bentoml), "build", str(IRIS), "--output", "tag"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    tag = out.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "bentos" / name / version
    assert yaml.safe_load((bento / "bento.yaml").read_text())["service"] == "service:Iris"
    [final] = stages(bento / "env" / "docker" / "Dockerfile")[-1:]
    user = final.last("USER")
    assert user is not None and user.value == "1034:1034", "numeric user for runAsNonRoot"
    exposed = {p for i in final.all("EXPOSE") for p in i.value.split()}
    assert str(ModelSpec(image="x").port) in exposed, "the bento serves on the ModelDeployment's default port"
