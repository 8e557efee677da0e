"""SLO analysis: Prometheus client, PromQL builders, statistics and verdicts.

Import the submodules directly; `results` has no I/O imports (the planner uses it).
"""
