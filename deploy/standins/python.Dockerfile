# A stand-in for the official `python` image, made from Debian's packages (Python 3.11), for a
# machine that can't pull images (deploy/smoke). Users keep the official image (the Dockerfile's
# default). Like the official image, `python` and `pip` on PATH install where the app can import.
ARG DEBIAN_IMAGE=localhost/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local/python
# This machine's certificate bundle: its package index is reached through a TLS-inspecting proxy.
COPY ca-certificates.crt /etc/ssl/certs/host-ca-certificates.crt
ENV PATH=/usr/local/python/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt
