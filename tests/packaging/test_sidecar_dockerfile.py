"""sidecar/Dockerfile, checked for the essentials: the release binary on a distroless base, numeric
non-root user, nothing run at build time (the base has no shell), only the binary sent as context."""

from __future__ import annotations

from modeldeploy.operator.planner.inputs import PlannerConfig
from tests.cluster.images import content
from tests.cluster.localcluster import ROOT
from tests.packaging.dockerfile import stages

SIDECAR = ROOT / "sidecar"
BINARY = "target/release/modeldeploy-sidecar"


def test_the_binary_on_a_distroless_base_as_65532() -> None:
    [final] = stages(SIDECAR / "Dockerfile")
    assert final.base == "${BASE_IMAGE}"
    assert "ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot" in (SIDECAR / "Dockerfile").read_text()
    assert not final.all("RUN"), "distroless has no shell"
    user = final.last("USER")
    assert user is not None and user.value == "65532:65532"
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == ["/usr/local/bin/modeldeploy-sidecar"]
    assert content.copy_sources(SIDECAR / "Dockerfile") == [BINARY]
    # The operator sets `command: [modeldeploy-sidecar]` on the sidecar container: found on the
    # base's PATH (distroless: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin).
    [command] = PlannerConfig(sidecar_image="x").sidecar_command
    assert f"/usr/local/bin/{command}" == entrypoint.exec_form()[0]
    exposed = {p for i in final.all("EXPOSE") for p in i.value.split()}
    assert exposed == {"8080", "9090"}


def test_only_the_binary_is_sent_to_the_builder() -> None:
    rules = content.ignore_rules(SIDECAR)
    assert not content.is_ignored(BINARY, rules)
    for other in (
        "Cargo.toml",
        "src/main.rs",
        "target/release/deps/x.rlib",
        "target/debug/modeldeploy-sidecar",
    ):
        assert content.is_ignored(other, rules), other
