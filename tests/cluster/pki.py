"""A small certificate authority for the real node (openssl), one per cluster run.

It signs the kubelet's serving certificate (so the API server verifies the kubelet it calls for
`kubectl logs/exec`, `--kubelet-certificate-authority`) and the API server's client certificate
for those calls (the kubelet trusts this CA for client certificates and lets `system:masters` in).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.processes import ClusterError


@dataclass(frozen=True)
class CertKey:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    out = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ClusterError(f"node pki: openssl {args[0]} failed: {out.stderr.strip()}")


class NodePKI:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = CertKey(directory / "node-ca.crt", directory / "node-ca.key")

    def create_ca(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-subj", "/CN=modeldeploy-node-ca",
            "-keyout", str(self.ca.key), "-out", str(self.ca.cert),
        )  # fmt: skip

    def issue(self, name: str, subject: str, *, server_ip: str | None = None) -> CertKey:
        """A certificate signed by the CA: a client one, or a server one for `server_ip`."""
        pair = CertKey(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        csr = self.dir / f"{name}.csr"
        ext = self.dir / f"{name}.ext"
        usage = "serverAuth" if server_ip else "clientAuth"
        lines = [
            "basicConstraints=CA:FALSE",
            "keyUsage=digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        if server_ip:
            lines.append(f"subjectAltName=IP:{server_ip}")
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", str(pair.key), "-out", str(csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca.cert), "-CAkey", str(self.ca.key),
            "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(pair.cert),
        )  # fmt: skip
        csr.unlink()
        ext.unlink()
        return pair
