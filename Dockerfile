# The mailer image: web (the default command) and worker (`python manage.py run_worker`) alike.
# PYTHON_IMAGE: the official image for users; deploy/smoke passes a stand-in made from Debian's
# packages where the official one can't be pulled.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROMETHEUS_MULTIPROC_DIR=/app/var/prometheus \
    LOG_FORMAT=json

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mailer
WORKDIR /app

# Dependencies first: this layer is rebuilt only when the pins change.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected into the image (whitenoise serves them); settings need a key to load.
RUN DEBUG=1 SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:///:memory: \
        python manage.py collectstatic --noinput -v0 \
    && mkdir -p var/prometheus \
    && chown -R mailer:mailer var

USER mailer
EXPOSE 8000
# gunicorn takes its worker count from WEB_CONCURRENCY. Access lines come from the app's own
# middleware (one log format for everything), so gunicorn's access log stays off. The timeout
# covers an .xlsx export of a million messages (about 75 s on 2 cores, docs/benchmarks.md), which
# is written whole before a byte is sent; every page answers in well under a second.
CMD ["gunicorn", "mailer.wsgi", "--bind", "0.0.0.0:8000", "--timeout", "180", "--graceful-timeout", "20"]
