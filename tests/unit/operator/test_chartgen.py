"""The Helm chart's generated files: RBAC rules from rbac.py and the CRD, kept current."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator import chartgen
from modeldeploy.operator.planner.inputs import ModelDeploymentMeta
from modeldeploy.operator.planner.services import sidecar_rbac
from modeldeploy.operator.rbac import OPERATOR_RULES, Rule, sidecar_rules

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "modeldeploy"


def defined_rules(text: str) -> dict[str, list[Rule]]:
    """The rule lists of each `define` in _rules.tpl, parsed as YAML."""
    blocks = re.findall(r'{{- define "([^"]+)" -}}\n(.*?)\n{{- end }}', text, flags=re.S)
    return {name: yaml.safe_load(body) for name, body in blocks}


def grants(rules: list[Rule]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_committed_generated_files_are_current() -> None:
    for relative, text in chartgen.generated_files(CHART).items():
        path = CHART / relative
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make chart`"


def test_chart_crd_is_identical_to_the_repository_crd() -> None:
    chart_crd = (CHART / "crds" / "modeldeployment.yaml").read_bytes()
    assert chart_crd == (ROOT / "crds" / "modeldeployment.yaml").read_bytes()


def test_check_mode_names_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(CHART / "argocd", tmp_path / "argocd")
    for name in ("Chart.yaml", "values.yaml"):
        shutil.copy(CHART / name, tmp_path / name)
    assert chartgen.main([str(tmp_path), "--check"]) == 1
    assert "_rules.tpl" in capsys.readouterr().err
    assert chartgen.main([str(tmp_path)]) == 0
    assert chartgen.main([str(tmp_path), "--check"]) == 0


def test_the_all_template_is_exactly_operator_rules() -> None:
    rules = defined_rules((CHART / "templates" / "_rules.tpl").read_text())
    assert rules["modeldeploy.rules.all"] == OPERATOR_RULES


def test_namespaced_and_cluster_parts_together_grant_exactly_the_same() -> None:
    rules = defined_rules(chartgen.render_rules())
    namespaced, cluster = rules["modeldeploy.rules.namespaced"], rules["modeldeploy.rules.cluster"]
    assert grants(namespaced) | grants(cluster) == grants(OPERATOR_RULES)
    assert not grants(namespaced) & grants(cluster)
    assert {(g, r) for g, r, _ in grants(cluster)} <= chartgen.CLUSTER_SCOPED
    assert {(g, r) for g, r, _ in grants(namespaced)} <= chartgen.NAMESPACED


def test_a_resource_of_unknown_scope_is_refused_by_name() -> None:
    rule: dict[str, Any] = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}
    with pytest.raises(chartgen.ScopeError, match=re.escape("'widgets' in API group 'example.com'")):
        chartgen.split_by_scope([rule])


def test_no_secret_access_and_no_wildcards() -> None:
    for group, resource, verb in grants(OPERATOR_RULES):
        assert resource != "secrets" and "*" not in (group, resource, verb)
    assert {"bind", "escalate", "impersonate"}.isdisjoint(v for _, _, v in grants(OPERATOR_RULES))


def test_planner_sidecar_role_is_sidecar_rules_and_the_operator_may_grant_it() -> None:
    """RBAC escalation prevention: the operator can create the sidecars' Role only if it holds
    every permission in it (no `escalate` verb is granted)."""
    meta = ModelDeploymentMeta(name="iris", namespace="ml", uid="u", generation=1)
    roles = [m for m in sidecar_rbac(meta) if m["kind"] == "Role"]
    assert [role["rules"] for role in roles] == [sidecar_rules("iris")]
    for group, resource, verb in grants(sidecar_rules("iris")):
        assert (group, resource, verb) in grants(OPERATOR_RULES)
    kinds = {(m["apiVersion"], m["kind"]) for m in sidecar_rbac(meta)}
    plural = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}
    for api_version, kind in kinds:
        group = api_version.rpartition("/")[0]
        assert {(group, plural[kind], v) for v in ("create", "patch", "delete")} <= grants(OPERATOR_RULES)


def test_values_doc_reads_helm_docs_comments_and_refuses_undocumented_keys() -> None:
    text = (
        "# -- the image\nimage:\n  # -- its tag\n  # continued\n  tag: v1\n"
        "# -- all of it\nresources:\n  a: 1\n"
    )
    docs = chartgen.value_docs(text)
    assert [(d.path, d.description, d.default) for d in docs] == [
        ("image", "the image", {"tag": "v1"}),
        ("image.tag", "its tag continued", "v1"),
        ("resources", "all of it", {"a": 1}),
    ]
    with pytest.raises(chartgen.UndocumentedValueError, match=re.escape("image.pullPolicy has no")):
        chartgen.value_docs("image:\n  # -- its tag\n  tag: v1\n  pullPolicy: Always\n")


def test_every_chart_value_is_documented_in_the_chart_readme() -> None:
    docs = chartgen.value_docs((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    assert len(docs) > 50
    for doc in docs:
        assert f"| `{doc.path}` |" in readme
