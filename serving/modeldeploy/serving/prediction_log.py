"""Sampled prediction logging, off the request path: a bounded queue and a background writer.

The request path only decides the sample (`sampled()`, one random number) and, when sampled,
hands the raw request and response bytes to `submit`, which never waits: when the queue is full
the line is dropped and counted (`modeldeploy_prediction_log_dropped_total`). A background task
takes entries from the queue (gathering for up to 50 ms), formats the JSON lines
(prediction_record.py) a few at a time, yielding to the event loop in between, and hands batches
to one writer thread, so a slow disk or a full stdout pipe never stalls a request. Written lines
are counted in `modeldeploy_prediction_log_lines_total`; lines queued or being written are shown
by `modeldeploy_prediction_log_pending`.

Sinks: `stdout` (the container log) or `file` (appended; its directory is created). A table that
switches the sink or the file opens the new one at once (an unusable path rejects the table); the
old one is closed once the lines queued for it are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from modeldeploy.contract.routing import PredictionLogSettings
from modeldeploy.serving.metrics import SidecarMetrics
from modeldeploy.serving.prediction_record import Prediction, format_line

log = logging.getLogger("modeldeploy.sidecar.predictions")

BATCH_LINES = 256
"""Most lines handed to the writer thread at once."""
GATHER_SECONDS = 0.05
"""After a line arrives, the writer waits this long for more, so that a thread hand-off and a
write are paid per batch rather than per line at low rates (lines reach the sink <= ~50 ms late)."""
YIELD_EVERY = 8
"""Lines formatted between two yields to the event loop."""


class PredictionLogError(ValueError):
    """The prediction log's sink cannot be opened."""


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    """File descriptor 1, written with os.write (no Python buffering, whole batches)."""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]

    def close(self) -> None:
        pass


class FileSink:
    """A file opened for appending; each batch is flushed when written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: BinaryIO = path.open("ab")
        except OSError as exc:
            raise PredictionLogError(f"cannot open prediction log file {path}: {exc}") from exc

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class _Config:
    settings: PredictionLogSettings
    sink: Sink


def _sink_key(settings: PredictionLogSettings) -> tuple[str, str | None]:
    return (settings.sink, settings.path if settings.sink == "file" else None)


class PredictionLog:
    """Create inside the running event loop; `configure` per table, `start`, then `close`."""

    def __init__(
        self,
        model: str,
        namespace: str,
        metrics: SidecarMetrics,
        *,
        queue_size: int,
        rng: random.Random | None = None,
    ) -> None:
        self._model = model
        self._namespace = namespace
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[tuple[Prediction, _Config]] = asyncio.Queue(maxsize=queue_size)
        self._config: _Config | None = None
        self._retired: list[Sink] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prediction-log")
        self._task: asyncio.Task[None] | None = None
        self._pending = 0  # submitted, not yet written or lost
        metrics.prediction_log_pending.set_function(lambda: self._pending)

    @property
    def settings(self) -> PredictionLogSettings | None:
        return None if self._config is None else self._config.settings

    def open_sink(self, settings: PredictionLogSettings | None) -> Sink | None:
        """The sink `configure(settings)` would use (opened now if new); PredictionLogError if unusable."""
        if settings is None:
            return None
        current = self._config
        if current is not None and _sink_key(current.settings) == _sink_key(settings):
            return current.sink
        if settings.sink == "file":
            assert settings.path is not None  # PredictionLogSettings requires it
            return FileSink(Path(settings.path))
        return StdoutSink()

    def configure(self, settings: PredictionLogSettings | None, sink: Sink | None) -> None:
        """Put `settings` in force with `sink` from `open_sink`; a replaced sink is closed later."""
        old = self._config
        self._config = None if settings is None or sink is None else _Config(settings, sink)
        if old is not None and old.sink is not sink:
            self._retired.append(old.sink)
            if self._queue.empty():
                self._close_retired()

    def sampled(self) -> bool:
        """Whether to log the request now arriving (False when logging is off)."""
        config = self._config
        if config is None:
            return False
        rate = config.settings.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)

    def submit(self, prediction: Prediction) -> bool:
        """Queue one line; never waits. False (and counted as dropped) when the queue is full."""
        config = self._config
        if config is None:
            return False
        try:
            self._queue.put_nowait((prediction, config))
        except asyncio.QueueFull:
            self._metrics.prediction_log_dropped.inc()
            return False
        self._pending += 1
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            taken = [await self._queue.get()]
            batch = [self._format(*taken[0])]
            await asyncio.sleep(GATHER_SECONDS)
            while len(taken) < BATCH_LINES and not self._queue.empty():
                if len(taken) % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                    if self._queue.empty():
                        break
                taken.append(self._queue.get_nowait())
                batch.append(self._format(*taken[-1]))
            unformatted = batch.count(None)
            if unformatted:
                self._metrics.prediction_log_dropped.inc(unformatted)
                self._pending -= unformatted
            for sink, text in _group([line for line in batch if line is not None]):
                lines = text.count("\n")
                try:
                    await loop.run_in_executor(self._executor, sink.write, text.encode("utf-8"))
                except (OSError, ValueError) as exc:
                    self._metrics.prediction_log_dropped.inc(lines)
                    log.error("prediction log: %d lines lost: %s", lines, exc)
                else:
                    self._metrics.prediction_log_lines.inc(lines)
                self._pending -= lines
            for _ in taken:
                self._queue.task_done()
            if self._queue.empty():
                self._close_retired()

    def _format(self, prediction: Prediction, config: _Config) -> tuple[Sink, str] | None:
        settings = config.settings
        try:
            line = format_line(
                prediction, self._model, self._namespace, settings.redact, settings.max_body_bytes
            )
        except (RecursionError, ValueError, TypeError) as exc:  # e.g. a body nested too deeply
            log.warning("prediction log: line for trace %s not written: %r", prediction.trace_id, exc)
            return None
        return config.sink, line

    def _close_retired(self) -> None:
        current = self._config.sink if self._config is not None else None
        for sink in self._retired:
            if sink is not current:
                self._executor.submit(sink.close)
        self._retired = []

    async def flush(self) -> None:
        """Wait until every queued line has been written (or counted lost)."""
        await self._queue.join()

    async def close(self, grace: float) -> None:
        """Write what is queued (up to `grace` seconds), then stop the writer and close the sinks."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._config is not None:
            self._retired.append(self._config.sink)
            self._config = None
        self._close_retired()
        self._executor.shutdown(wait=True)


def _group(batch: list[tuple[Sink, str]]) -> list[tuple[Sink, str]]:
    """Consecutive lines for the same sink joined into one write, order kept."""
    groups: list[tuple[Sink, list[str]]] = []
    for sink, line in batch:
        if groups and groups[-1][0] is sink:
            groups[-1][1].append(line)
        else:
            groups.append((sink, [line]))
    return [(sink, "".join(lines)) for sink, lines in groups]
