"""Serve the worker's process metrics over HTTP (the worker has no web server of its own).

Runs beside `run_worker` on the same PROMETHEUS_MULTIPROC_DIR (a sidecar in Kubernetes) and
exposes what its processes counted. The database gauges are left to the web's /metrics, so they
are not scraped twice.
"""

from __future__ import annotations

import os
import time

from django.core.management.base import BaseCommand, CommandError
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector


class Command(BaseCommand):
    help = "Expose the metrics in PROMETHEUS_MULTIPROC_DIR on --port (default 9100)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--addr", default="0.0.0.0")

    def handle(self, *args, port: int, addr: str, **options) -> None:
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not path:
            raise CommandError("PROMETHEUS_MULTIPROC_DIR must be set (the directory the worker writes to).")
        os.makedirs(path, exist_ok=True)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        start_http_server(port, addr=addr, registry=registry)
        self.stdout.write(f"Serving metrics from {path} on {addr}:{port}")
        while True:
            time.sleep(3600)
