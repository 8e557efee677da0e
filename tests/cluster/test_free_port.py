"""The harness' ports stay out of the kernel's ephemeral range, so no bind(0) can take them first."""

from __future__ import annotations

import socket

from tests.cluster.processes import HARNESS_PORTS, free_port


def ephemeral_range() -> range:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(part) for part in f.read().split())
    return range(low, high + 1)


def test_ports_are_outside_the_ephemeral_range_and_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port in HARNESS_PORTS for port in ports)
    assert not set(ports) & set(ephemeral_range())


def test_a_port_that_is_bound_is_not_handed_out() -> None:
    held = []
    try:
        for port in HARNESS_PORTS[:300]:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        bound = {s.getsockname()[1] for s in held}
        assert not bound & {free_port() for _ in range(300)}
    finally:
        for s in held:
            s.close()
