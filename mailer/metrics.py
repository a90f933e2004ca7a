"""Prometheus metrics that worker and web processes count. Defined once, here.

Counters come from processes (prometheus-client multiprocess mode when PROMETHEUS_MULTIPROC_DIR
is set); gauges about messages and mailings are read from the database at scrape time.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

# In multiprocess mode every process writes its values into this directory, from the first metric
# on: make sure it exists (a fresh volume may not have it yet).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# The Python names say "gateway" like the code around them; the metric names ("provider") are kept
# as dashboards and alerts know them.
GATEWAY_REQUEST_SECONDS = Histogram(
    "mailer_provider_request_seconds",
    "Time of one request to the SMS gateway.",
    ["outcome"],  # ok | retryable | permanent | auth
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GATEWAY_ERRORS = Counter(
    "mailer_provider_errors",
    "Failed requests to the SMS gateway, by kind.",
    ["kind"],  # timeout | connection | http_5xx | http_429 | http_4xx | auth | bad_answer
)
MESSAGE_RETRIES = Counter("mailer_message_retries", "Messages put back for another attempt.")
MESSAGES_FINISHED = Counter(
    "mailer_messages_finished", "Messages that reached a final status, by status.", ["status"]
)
RECEIPTS = Counter(
    "mailer_receipts",
    "Delivery receipts the gateway posted, by result.",
    ["result"],  # taken | unknown (no message of ours has its id)
)

# The web app's own requests. Labels stay low-cardinality: a status class, a URL name.
HTTP_REQUESTS = Counter(
    "mailer_http_requests", "HTTP requests answered, by method and status class.", ["method", "status"]
)
HTTP_REQUEST_SECONDS = Histogram(
    "mailer_http_request_seconds",
    "Time to answer one HTTP request, by URL name.",
    ["view"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
