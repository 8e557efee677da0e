"""Make the real node look like a node of a GPU pool, and undo it: label, taint, extended resource.

An extended resource (`example.com/gpu`) is advertised the way Kubernetes documents for resources
no device plugin manages ("Advertise Extended Resources for a Node"): a patch of the Node's
`status.capacity` through the status subresource,

    kubectl patch node modeldeploy-node --subresource=status --type=json \\
      -p '[{"op": "add", "path": "/status/capacity/example.com~1gpu", "value": "2"}]'

after which the kubelet reports it in `status.allocatable` too and the scheduler counts it; the
Pods asking for it get nothing real (no device is mounted), which is all a scheduling test needs.
`restore()` removes the resource from capacity and allocatable, the taint and the label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.cluster.localcluster import LocalCluster


def _json_pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


@dataclass
class FakeGpuNode:
    cluster: LocalCluster
    node: str
    resource: str
    label: tuple[str, str]
    advertised: bool = False

    @property
    def taint(self) -> str:
        return f"{self.resource}=present:NoSchedule"

    def label_and_taint(self) -> None:
        """The node pool's label (for a nodeSelector) and a NoSchedule taint (for a toleration)."""
        key, value = self.label
        self.cluster.kubectl("label", "node", self.node, f"{key}={value}", "--overwrite")
        self.cluster.kubectl("taint", "node", self.node, self.taint, "--overwrite")

    def advertise(self, count: int) -> None:
        path = f"/status/capacity/{_json_pointer(self.resource)}"
        patch = [{"op": "add", "path": path, "value": str(count)}]
        self.cluster.kubectl(
            "patch", "node", self.node, "--subresource=status", "--type=json", "-p", json.dumps(patch)
        )
        self.advertised = True

    def restore(self) -> None:
        """Undo whatever was done; each step on its own, so one failing leaves the others done."""
        if self.advertised:
            for field in ("capacity", "allocatable"):
                path = f"/status/{field}/{_json_pointer(self.resource)}"
                self.cluster.kubectl(
                    "patch", "node", self.node, "--subresource=status", "--type=json",
                    "-p", json.dumps([{"op": "remove", "path": path}]), check=False,
                )  # fmt: skip
        self.cluster.kubectl("taint", "node", self.node, f"{self.taint}-", check=False)
        self.cluster.kubectl("label", "node", self.node, f"{self.label[0]}-", check=False)
