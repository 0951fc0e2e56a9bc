"""The prediction service's metrics in Prometheus' text format (`GET /metrics`), with prometheus-client.

    mlops_prediction_requests_total{model, status}        predict requests by model and HTTP status
    mlops_prediction_latency_seconds{model}                a histogram of the predict handler's time
    mlops_predicted_rows_total{model, version}             records scored, by the version that scored them
    mlops_served_version{model, version}                   1 for the version each model serves now
    mlops_model_ready{model}                               1 when the model has a version loaded
    mlops_prediction_log_pending_rows                      predictions waiting to be written (the queue)
    mlops_prediction_log_written_rows_total                predictions written to the log
    mlops_prediction_log_dropped_rows_total                predictions dropped because the log kept failing
    mlops_prediction_log_failing                           1 while writing the log fails

Each service has its own registry (no global state: tests build many apps in one process). A
request for a model the service does not know is counted under `model="unknown"`, so a caller
cannot grow the number of series by inventing names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from include.delivery.prediction_log import PredictionLogWriter
    from include.delivery.serving import ModelSlot

UNKNOWN_MODEL = "unknown"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _ServiceState(Collector):
    """Reads the service's state at each scrape: served versions, readiness, the prediction log."""

    def __init__(self, slots: Mapping[str, ModelSlot], log: Callable[[], PredictionLogWriter | None]):
        self.slots = slots
        self.log = log

    def collect(self) -> Iterator:
        served = GaugeMetricFamily("mlops_served_version", "1 for the version each model serves now",
                                   labels=["model", "version"])
        ready = GaugeMetricFamily("mlops_model_ready", "1 when the model has a version loaded", labels=["model"])
        for name, slot in self.slots.items():
            model = slot.served
            ready.add_metric([name], 1.0 if model else 0.0)
            if model:
                served.add_metric([name, model.version], 1.0)
        yield served
        yield ready
        log = self.log()
        yield GaugeMetricFamily("mlops_prediction_log_pending_rows", "Predictions waiting to be written",
                                value=log.pending_rows if log else 0)
        yield CounterMetricFamily("mlops_prediction_log_written_rows", "Predictions written to the log",
                                  value=log.written_rows if log else 0)
        yield CounterMetricFamily("mlops_prediction_log_dropped_rows",
                                  "Predictions dropped because writing the log kept failing",
                                  value=log.dropped_rows if log else 0)
        yield GaugeMetricFamily("mlops_prediction_log_failing", "1 while writing the prediction log fails",
                                value=1.0 if log and log.last_error else 0.0)


class ServiceMetrics:
    """The counters the predict route updates and the state read at each scrape."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, slots: Mapping[str, ModelSlot], log: Callable[[], PredictionLogWriter | None]):
        self.models = slots  # live: the service adds and removes models while it runs
        self.registry = CollectorRegistry()
        self.requests = Counter("mlops_prediction_requests", "Predict requests by model and HTTP status",
                                ["model", "status"], registry=self.registry)
        self.latency = Histogram("mlops_prediction_latency_seconds", "Time of the predict handler",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("mlops_predicted_rows", "Records scored, by the version that scored them",
                            ["model", "version"], registry=self.registry)
        self.registry.register(_ServiceState(slots, log))

    def observe_request(self, model: str, status: int, seconds: float) -> None:
        label = model if model in self.models else UNKNOWN_MODEL
        self.requests.labels(label, str(status)).inc()
        self.latency.labels(label).observe(seconds)

    def observe_rows(self, model: str, version: str, rows: int) -> None:
        self.rows.labels(model, version).inc(rows)

    def render(self) -> bytes:
        return generate_latest(self.registry)
