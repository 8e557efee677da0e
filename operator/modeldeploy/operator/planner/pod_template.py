"""How `spec.template` composes with `spec.model` and the operator's own parts of a revision's Pod.

Precedence, lowest first: the operator's defaults (pod securityContext, terminationGracePeriodSeconds,
enableServiceLinks, the sidecar's ServiceAccount), then the template, then what the operator
needs to work, which always wins:

- labels: the template's plus the operator's (name, managed-by, model, revision);
- annotations: the template's plus the operator's Prometheus scrape annotations;
- containers: `model` (spec.model, completed by the template's `model` entry), the template's other
  containers in their order, then `sidecar`; a template entry named `sidecar` is dropped;
- the model container: the operator's defaults for it (startupProbe, lifecycle) lie under the
  template's entry; spec.model's fields and the operator's (port `model`, /tmp mount,
  security context) win over the template's entry field by field; lists are joined, the
  operator's entries winning on a clash (a port with the same number and protocol or the same name,
  a mount at the same path); the template's securityContext is laid over the operator's;
- volumes: the template's, then the operator's `model-tmp` and `sidecar-tmp` (same-named ones dropped).

The API server refuses most clashes already (CEL rules in api/pod_template.py); these rules keep a
Pod the operator can run whatever the template says.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from modeldeploy.contract.labels import CONTAINER_MODEL, CONTAINER_SIDECAR
from modeldeploy.operator.api.pod_template import (
    template_annotations,
    template_labels,
    template_pod_spec,
)

Obj = dict[str, Any]


def _join(
    ours: list[Obj], theirs: list[Obj], keys: Callable[[Mapping[str, Any]], set[Hashable]]
) -> list[Obj]:
    """`ours` then the entries of `theirs` whose keys clash with none of ours."""
    taken: set[Hashable] = set()
    for entry in ours:
        taken |= keys(entry)
    return [*ours, *(entry for entry in theirs if not keys(entry) & taken)]


def _port_keys(port: Mapping[str, Any]) -> set[Hashable]:
    keys: set[Hashable] = {("number", port.get("containerPort"), port.get("protocol", "TCP"))}
    if port.get("name"):
        keys.add(("name", port["name"]))
    return keys


def _mount_keys(mount: Mapping[str, Any]) -> set[Hashable]:
    return {mount.get("mountPath")}


def _name_keys(entry: Mapping[str, Any]) -> set[Hashable]:
    return {entry.get("name")}


def merge_model_container(
    ours: Obj, template_entry: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
) -> Obj:
    """The model container: `defaults` under the template's entry under spec.model's and the
    operator's fields."""
    merged: Obj = {**copy.deepcopy(dict(defaults or {})), **copy.deepcopy(dict(template_entry or {}))}
    for key, value in ours.items():
        if key == "ports":
            merged[key] = _join(value, merged.get(key) or [], _port_keys)
        elif key == "volumeMounts":
            merged[key] = _join(value, merged.get(key) or [], _mount_keys)
        elif key == "securityContext":
            merged[key] = {**value, **(merged.get(key) or {})}
        else:
            merged[key] = value
    return {"name": CONTAINER_MODEL, **{k: v for k, v in merged.items() if k != "name"}}


def pod_template(
    template: Mapping[str, Any] | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    defaults: Mapping[str, Any],
    model: Obj,
    sidecar: Obj,
    volumes: list[Obj],
    model_defaults: Mapping[str, Any] | None = None,
) -> Obj:
    """The Deployment's `spec.template`: `template` completed by the operator's parts (see above)."""
    spec = copy.deepcopy(template_pod_spec(template))
    containers = spec.pop("containers", None) or []
    entry = next((c for c in containers if c.get("name") == CONTAINER_MODEL), None)
    others = [c for c in containers if c.get("name") not in (CONTAINER_MODEL, CONTAINER_SIDECAR)]
    pod_spec: Obj = {**copy.deepcopy(dict(defaults)), **spec}
    if "securityContext" in spec and "securityContext" in defaults:
        pod_spec["securityContext"] = {**defaults["securityContext"], **spec["securityContext"]}
    pod_spec["containers"] = [merge_model_container(model, entry, model_defaults), *others, sidecar]
    pod_spec["volumes"] = [
        *(v for v in spec.get("volumes") or [] if not _name_keys(v) & {v["name"] for v in volumes}),
        *volumes,
    ]
    return {
        "metadata": {
            "labels": {**template_labels(template), **labels},
            "annotations": {**template_annotations(template), **annotations},
        },
        "spec": pod_spec,
    }


def pod_service_account(template: Mapping[str, Any] | None) -> str | None:
    """The ServiceAccount the template names for the pods (None: the operator's choice)."""
    name = template_pod_spec(template).get("serviceAccountName")
    return str(name) if name else None
