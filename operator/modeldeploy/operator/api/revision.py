"""The revision hash: a short, stable name for the pod-relevant part of a spec.

Like a Deployment's pod-template-hash. It covers `spec.model` (image, port, command, args, env,
resources, probes) and `spec.template` (everything in it, labels and annotations included: a Pod
gets them when it is created, and a Deployment replaces its pods when its template changes);
replicas, rollout steps, analysis, traffic and Prometheus settings can change without starting a
new rollout.

Canonical form: the model as JSON with camelCase names, fields equal to their defaults and unset
fields left out, keys sorted. So a value the API server filled in by default and the same value
written by hand give the same hash, and a field added to the API later (with a default) does not
change the hash of existing ModelDeployments. The template joins the form only when it says
something (empty maps and lists left out), so a spec without one keeps the hash it always had.
Order of `env`, `command`, `args` and of the template's lists matters (it matters to the pod too).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modeldeploy.operator.api.model import ModelSpec
from modeldeploy.operator.api.spec import ModelDeploymentSpec

REVISION_LENGTH = 10


def _canonical(text: Any) -> str:
    return json.dumps(text, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def model_fingerprint(model: ModelSpec) -> str:
    """The canonical JSON text of `spec.model` (the whole fingerprint when there is no template)."""
    return _canonical(model.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True))


def without_empty(value: Any) -> Any:
    """`value` with nulls, empty maps and empty lists left out, recursively (they say nothing)."""
    if isinstance(value, dict):
        pruned = {key: without_empty(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [without_empty(item) for item in value]
    return value


def fingerprint(spec: ModelDeploymentSpec) -> str:
    """The canonical JSON text the revision hash is computed from."""
    template = without_empty(spec.template or {})
    if not template:
        return model_fingerprint(spec.model)
    model = spec.model.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    return _canonical({"model": model, "template": template})


def revision_hash(spec: ModelDeploymentSpec) -> str:
    """10 lowercase hex characters identifying the pod template of `spec` (e.g. "1a2b3c4d5e")."""
    digest = hashlib.sha256(fingerprint(spec).encode("utf-8")).hexdigest()
    return digest[:REVISION_LENGTH]
