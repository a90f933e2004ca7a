# A stand-in for the official `postgres` image, made from Debian's PostgreSQL 15, for a machine
# that can't pull images (deploy/smoke). It honours the same POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB and data directory (/var/lib/postgresql/data); production keeps the official image.
ARG DEBIAN_IMAGE=localhost/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
# As the official image: SIGINT is PostgreSQL's fast shutdown.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
