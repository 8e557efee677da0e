"""`kubectl modeldeploy dashboard`: a local, read-only (unless asked) web view of every rollout.

    snapshot.py   one ModelDeployment object -> the JSON the page draws (pure)
    recorder.py   analysis values over the rollout, recorded from the watched status
    charts.py     Prometheus range queries per revision (requests/s, error ratio, p99, ...)
    watch.py      the Kubernetes watch, in a thread, feeding the server
    server.py     aiohttp: the page, /api/* (JSON), /api/events (server-sent events), actions
    static/       index.html, dashboard.js, dashboard.css: plain JS + SVG, no framework, no CDN

See docs/dashboard.md.
"""
