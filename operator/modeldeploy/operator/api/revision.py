"""The revision hash: a short, stable name for the pod-template-relevant part of a spec.

Like a Deployment's pod-template-hash. It covers `spec.model` only (image, port, command, args,
env, resources, probes); replicas, rollout steps, analysis, traffic and Prometheus settings can
change without starting a new rollout.

Canonical form: the model as JSON with camelCase names, fields equal to their defaults and unset
fields left out, keys sorted. So a value the API server filled in by default and the same value
written by hand give the same hash, and a field added to the API later (with a default) does not
change the hash of existing ModelDeployments. Order of `env`, `command` and `args` matters (it
matters to the container too).
"""

from __future__ import annotations

import hashlib
import json

from modeldeploy.operator.api.model import ModelSpec
from modeldeploy.operator.api.spec import ModelDeploymentSpec

REVISION_LENGTH = 10


def model_fingerprint(model: ModelSpec) -> str:
    """The canonical JSON text the revision hash is computed from."""
    data = model.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def revision_hash(spec: ModelDeploymentSpec) -> str:
    """10 lowercase hex characters identifying the pod template of `spec` (e.g. "1a2b3c4d5e")."""
    digest = hashlib.sha256(model_fingerprint(spec.model).encode("utf-8")).hexdigest()
    return digest[:REVISION_LENGTH]
