"""Act as a ServiceAccount: a kubeconfig holding its token, and what RBAC lets it do."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cluster.localcluster import LocalCluster


def service_account_kubeconfig(cluster: LocalCluster, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig authenticating as ServiceAccount `namespace/name` (a TokenRequest token)."""
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout.strip()
    assert token.count(".") == 2, "expected a JWT from the TokenRequest API"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca_file)},
            }
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def can_i(cluster: LocalCluster, user: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    """`kubectl auth can-i` as `user` (impersonated by the admin); without namespace: cluster-wide."""
    args = ["auth", "can-i", verb, resource, f"--as={user}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    out = cluster.kubectl(*args, check=False)
    answer = out.stdout.strip()
    assert answer in ("yes", "no"), out.stdout + out.stderr
    return answer == "yes"


def granted(cluster: LocalCluster, user: str, namespace: str) -> dict[str, set[str]]:
    """`kubectl auth can-i --list` in `namespace`: resource (with group) -> verbs, resource rules only."""
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    table: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        # Columns: Resources, Non-Resource URLs, Resource Names, Verbs ([a b c]).
        if not line.strip() or line.lstrip().startswith("["):
            continue
        resource = line.split()[0]
        verbs = line[line.rindex("[") + 1 : line.rindex("]")].split()
        if resource.startswith("["):
            continue
        table.setdefault(resource, set()).update(verbs)
    return table
