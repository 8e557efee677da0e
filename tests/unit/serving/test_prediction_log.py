"""The prediction log writer: sampling rate, bounded queue (drops counted), file sink, data path swaps."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from modeldeploy.contract.routing import DataPathSettings, PredictionLogSettings
from modeldeploy.serving.contract import Contract
from modeldeploy.serving.data_path import DataPath, DataPathError
from modeldeploy.serving.drift import FeatureHistograms
from modeldeploy.serving.metrics import SidecarMetrics
from modeldeploy.serving.prediction_log import PredictionLog
from modeldeploy.serving.prediction_record import Prediction
from tests.support.binomial import binomial_interval


def metric(metrics: SidecarMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name, {"model": "iris", "namespace": "ml", "revision": "aaaa"})
    return -1.0 if value is None else value


def prediction(i: int) -> Prediction:
    return Prediction(0.0, "aaaa", "local", 0.001, 200, f"t{i}", b'{"features": [[1, 2, 3, 4]]}', b"[0]")


def file_settings(path: Path, rate: float = 1.0, **extra: object) -> PredictionLogSettings:
    return PredictionLogSettings.model_validate(
        {"sampleRate": rate, "sink": "file", "path": str(path), **extra}
    )


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.5, 1.0])
async def test_sampling_rate_within_a_binomial_interval(rate: float, tmp_path: Path) -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    plog = PredictionLog("iris", "ml", metrics, queue_size=10, rng=random.Random(7))
    settings = file_settings(tmp_path / "p.jsonl", rate)
    plog.configure(settings, plog.open_sink(settings))
    n = 20_000
    low, high = binomial_interval(n, rate, 0.999)
    assert low <= sum(plog.sampled() for _ in range(n)) <= high
    await plog.close(grace=1)


async def test_lines_are_written_in_order_and_a_full_queue_drops(tmp_path: Path) -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    plog = PredictionLog("iris", "ml", metrics, queue_size=5)
    settings = file_settings(tmp_path / "logs" / "p.jsonl")  # the directory is created
    plog.configure(settings, plog.open_sink(settings))
    plog.start()
    # The writer task has not run yet: 5 fit in the queue, the other 3 are dropped at once.
    accepted = [plog.submit(prediction(i)) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert metric(metrics, "modeldeploy_prediction_log_dropped_total") == 3
    for chunk in (range(8, 13), range(13, 18), range(18, 20)):  # with room again, all get through
        await plog.flush()
        assert all(plog.submit(prediction(i)) for i in chunk)
    await plog.close(grace=5)
    lines = (tmp_path / "logs" / "p.jsonl").read_text().splitlines()
    assert [json.loads(line)["traceId"] for line in lines] == [f"t{i}" for i in [*range(5), *range(8, 20)]]
    assert metric(metrics, "modeldeploy_prediction_log_lines_total") == 17


async def test_switching_files_closes_the_old_one_after_its_lines(tmp_path: Path) -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    plog = PredictionLog("iris", "ml", metrics, queue_size=100)
    first, second = file_settings(tmp_path / "a.jsonl"), file_settings(tmp_path / "b.jsonl", redact=["x"])
    plog.configure(first, plog.open_sink(first))
    plog.start()
    plog.submit(prediction(1))
    plog.configure(second, plog.open_sink(second))
    plog.submit(prediction(2))
    same_file = file_settings(tmp_path / "b.jsonl", 0.5)
    assert plog.open_sink(same_file) is plog.open_sink(second)  # same file: the open sink is reused
    await plog.close(grace=5)
    assert [json.loads(x)["traceId"] for x in (tmp_path / "a.jsonl").read_text().splitlines()] == ["t1"]
    assert [json.loads(x)["traceId"] for x in (tmp_path / "b.jsonl").read_text().splitlines()] == ["t2"]


def data_path(metrics: SidecarMetrics) -> DataPath:
    return DataPath(
        metrics, FeatureHistograms("iris", "ml", "aaaa"), PredictionLog("iris", "ml", metrics, queue_size=4)
    )


SCHEMA = {"type": "object", "required": ["features"]}


async def test_contract_is_compiled_once_per_change() -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    dp = data_path(metrics)
    settings = DataPathSettings.model_validate({"contract": {"schema": SCHEMA, "policy": "reject"}})
    dp.apply(dp.prepare(settings))
    compiled = dp.contract
    assert isinstance(compiled, Contract)
    assert dp.prepare(settings) is None  # the same section: nothing to do
    with_log = DataPathSettings.model_validate(
        {"contract": {"schema": SCHEMA, "policy": "reject"}, "predictionLog": {"sampleRate": 0.5}}
    )
    dp.apply(dp.prepare(with_log))
    assert dp.contract is compiled  # the contract did not change: not recompiled
    assert dp.inspect("POST", b'{"rows": 1}') is not None
    assert dp.inspect("GET", b"") is None  # no body to check
    observe = DataPathSettings.model_validate({"contract": {"schema": SCHEMA, "policy": "observe"}})
    dp.apply(dp.prepare(observe))
    assert dp.contract is not compiled
    assert dp.inspect("POST", b'{"rows": 1}') is None  # counted, passed on
    checks = {
        result: metrics.registry.get_sample_value(
            "modeldeploy_contract_checks_total",
            {"model": "iris", "namespace": "ml", "revision": "aaaa", "result": result},
        )
        for result in ("pass", "violation")
    }
    assert checks == {"pass": 0.0, "violation": 2.0}
    dp.apply(dp.prepare(DataPathSettings()))
    assert dp.contract is None and not dp.inspects
    await dp.predictions.close(grace=1)


async def test_unusable_data_path_is_refused_and_the_old_one_stays(tmp_path: Path) -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    dp = data_path(metrics)
    good = DataPathSettings.model_validate({"contract": {"schema": SCHEMA}})
    dp.apply(dp.prepare(good))
    (tmp_path / "file").write_text("")
    bad_file = DataPathSettings.model_validate(
        {"predictionLog": {"sampleRate": 1, "sink": "file", "path": str(tmp_path / "file" / "p.jsonl")}}
    )
    with pytest.raises(DataPathError, match="cannot open prediction log file"):
        dp.prepare(bad_file)
    assert dp.settings == good
    await dp.predictions.close(grace=1)


def test_violation_field_labels_are_capped() -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    for i in range(60):
        metrics.observe_contract(f"/f{i}")
    fields = {
        s.labels["field"]
        for family in metrics.registry.collect()
        if family.name == "modeldeploy_contract_violations"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert len(fields) == 51 and "other" in fields and "/f49" in fields and "/f50" not in fields


async def test_stdout_sink_writes_whole_lines_to_file_descriptor_1(capfd: pytest.CaptureFixture[str]) -> None:
    metrics = SidecarMetrics("iris", "ml", "aaaa")
    plog = PredictionLog("iris", "ml", metrics, queue_size=10)
    settings = PredictionLogSettings.model_validate({"sampleRate": 1, "redact": ["features"]})
    plog.configure(settings, plog.open_sink(settings))
    plog.start()
    assert plog.submit(prediction(1)) and plog.submit(prediction(2))
    await plog.close(grace=5)
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [line["traceId"] for line in lines] == ["t1", "t2"]
    assert lines[0]["request"] == {"features": "[REDACTED]"}
