"""The kinds of check an analysis run makes, one module each (its PromQL and its judgement together):

    error_rate  errorRate, errorRateDeltaToStable (fixed window, or sequential since the rollout began)
    latency     latencyDistribution (sequential), latencyP99, latencyP99RatioToStable
    guard       guardTripped (the sidecars' fast guard; canary steps)
    shadow      shadowAgreement (shadow steps)
    drift       inputPSI/<feature> (spec.guardrails.drift)
    custom      spec.rollout.analysis.metrics

Every module offers the same small interface (`base.CheckKind`): `checks(run) -> list[Check]`, the
checks it makes for this run; a `Check` names the queries it needs and judges their answers.
`analysis.run` asks every kind, fetches all their queries at once and collects the verdicts.
"""
