"""SLO analysis: one module per kind of check in `checks/` (its PromQL and its judgement), the run
that asks them all (`run.analyze`), the Prometheus client, the statistics and the results.

Import the submodules directly; `results` has no I/O imports (the planner uses it).
"""
