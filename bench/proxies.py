"""The proxies the serving benchmarks compare: nginx (the baseline) and the Rust sidecar.

Worker counts, so the two are compared on the same number of cores: an nginx worker process and
a sidecar traffic worker are the same thing, one event loop serving connections on one core,
accepting from the shared listening socket. nginx runs `worker_processes N` (plus a master that
only supervises); the sidecar runs N traffic workers (`MODELDEPLOY_WORKERS=N`; unset, one per CPU
the process may use, cgroup quota included): its main thread (which also runs the metrics port,
the routing source and the drain) and N - 1 threads named traffic-<i>, each a current-thread
tokio event loop; plus the prediction log's writer thread (idle unless the log is on).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from modeldeploy.contract.routing import Backend, Comparison, DataPathSettings, RoutingTable, ShadowRoute
from tests.serving.processes import (
    Proc,
    Processes,
    SidecarProc,
    free_port,
    http,
    sidecar_binary,
    spawn,
    start_sidecar,
    write_routing,
)

STATIC_BODY = "[[0.98, 0.018, 1.4e-08]]"
"""What the static upstream answers: the iris model's answer to one row."""

WORKER_THREADS_ENV = "MODELDEPLOY_WORKERS"

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
"""nginx's echo module (Debian's nginx-light depends on it): `echo_sleep` delays an answer on a
timer, so a slow upstream costs no CPU while it waits."""

NGINX_CONF = """
%(modules)s
worker_processes %(workers)d;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  %(upstream_block)s
  server {
    listen 127.0.0.1:%(port)d;
    %(location)s
  }
}
"""

PROXY_LOCATION = """location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }"""

STATIC_LOCATION = """location / {
      default_type application/json;
      return 200 '%s';
    }"""

DELAYED_STATIC_LOCATION = """location / {
      default_type application/json;
      echo_sleep %.3f;
      echo -n '%s';
    }"""


def start_nginx(
    workdir: Path, *, upstream_port: int | None, workers: int = 1, delay_ms: float = 0.0
) -> tuple[Proc, str]:
    """nginx with `workers` workers: keep-alive reverse proxy to `upstream_port`, or (None) a
    static JSON server answering STATIC_BODY, `delay_ms` (whole ms) after each request when given (a timer,
    no CPU spent waiting). Returns the process (the master) and its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    modules = ""
    if upstream_port is None and delay_ms > 0:
        modules = f"load_module {ECHO_MODULE};"
        upstream_block, location = "", DELAYED_STATIC_LOCATION % (delay_ms / 1000, STATIC_BODY)
    elif upstream_port is None:
        upstream_block, location = "", STATIC_LOCATION % STATIC_BODY
    else:
        upstream_block = f"upstream model {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}"
        location = PROXY_LOCATION
    conf.write_text(
        NGINX_CONF
        % {
            "modules": modules,
            "workers": workers,
            "dir": workdir,
            "port": port,
            "upstream_block": upstream_block,
            "location": location,
        }
    )
    argv = ["nginx", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    proc = spawn(f"nginx-{workdir.name}", argv, workdir / "nginx.log", {})
    url = f"http://127.0.0.1:{port}"
    probe = "/" if upstream_port is None else "/readyz"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.alive():
        try:
            if http("GET", url + probe, timeout=1)[0] == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.1)
    proc.stop()
    log_tail = (workdir / "error.log").read_text(errors="replace").splitlines()[-10:]
    raise RuntimeError("nginx did not start; its error.log ends:\n" + "\n".join(log_tail))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def sidecar_for(
    workdir: Path,
    upstream: str,
    procs: Processes,
    shadow_url: str | None = None,
    data_path: DataPathSettings | None = None,
    *,
    workers: int | None = None,
) -> SidecarProc:
    """A stable sidecar in front of `upstream`, optionally copying every request to `shadow_url`;
    `workers` traffic workers (None: the default, one per CPU). Waits for /healthz."""
    workdir.mkdir(parents=True, exist_ok=True)
    routing = workdir / "routing.json"
    table = RoutingTable(
        model="iris",
        namespace="bench",
        stable=Backend(revision="stable0000", url="http://iris-stable0000.bench.svc:8080"),
        shadow=None
        if shadow_url is None
        else ShadowRoute(revision="shadow0000", url=shadow_url, percent=100),
        comparison=Comparison(tolerance=1e-9),
        data_path=data_path or DataPathSettings(),
    )
    write_routing(routing, table)
    return procs.add(
        start_sidecar(
            workdir,
            name=f"sidecar-{workdir.name}",
            revision="stable0000",
            upstream=upstream,
            namespace="bench",
            routing_file=routing,
            env={} if workers is None else {WORKER_THREADS_ENV: str(workers)},
            wait_ready=False,
        )
    )


def sidecar_build() -> str:
    """Which sidecar binary a benchmark ran: its path, size, build time and sha256 prefix."""
    path = sidecar_binary()
    stat = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stat.st_mtime))
    return f"`{path}` ({stat.st_size / 1024 / 1024:.1f} MiB, built {built}, sha256 {digest}…)"
