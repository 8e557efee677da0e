"""Write a kubeconfig for one bearer-token user of the local cluster."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, user: str, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "modeldeploy-local",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "modeldeploy-local",
                "context": {"cluster": "modeldeploy-local", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "modeldeploy-local",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
