# songmill on Airflow: one image for every Airflow service (api-server, scheduler, dag-processor,
# triggerer, Celery workers) and for the one-off `songmill` CLI (docker-compose.yaml).
#
# Built from plain Debian bookworm (Python 3.11, what the project pins) so that the same file builds
# from the public image and from a base made offline:
#   docker build -t songmill-airflow .                                   # debian:bookworm-slim, torch's CPU wheel
#   docker build --build-arg BASE_IMAGE=local/debian:bookworm ...        # a base made by debootstrap (make test-docker)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 ...   # a GPU worker's image
# Wheels put in docker/wheels/ are preferred to the index (make test-docker puts the CPU torch wheel
# there, where download.pytorch.org is out of reach). No secret is baked in: every credential comes
# from the environment at run time (docker-compose.yaml, .env).
ARG BASE_IMAGE=debian:bookworm-slim

# --- build: the pinned requirements into a virtual environment (compilers stay in this stage) ---
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# CA certificates this build must trust to reach the index (docker/certs/README.md); this stage only
COPY docker/certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/venv
COPY docker/wheels/ /wheels/
COPY requirements.txt /opt/songmill/requirements.txt
# an empty TORCH_INDEX_URL: PyPI (and docker/wheels) only
RUN /opt/venv/bin/pip install --find-links /wheels ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /opt/songmill/requirements.txt

# --- runtime: Debian's audio tools and soundfont, the environment, the project; a non-root user ---
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 ffmpeg fluidsynth fluid-soundfont-gm espeak-ng libchromaprint-tools libatomic1 curl ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
# uid 50000, group 0: the official Airflow image's convention, so volumes made for it fit
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \
    && mkdir -p /opt/songmill /opt/airflow/secrets /opt/airflow/logs \
    && chown -R airflow:0 /opt/songmill /opt/airflow && chmod -R g+w /opt/airflow
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/songmill \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/songmill/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/songmill/plugins \
    SONGMILL_OUT_DIR=/opt/songmill/dist \
    SONGMILL_VAR_DIR=/opt/songmill/var \
    OMP_NUM_THREADS=1
WORKDIR /opt/songmill
# what runs, and nothing else (no tests, no wheels, no benchmarks)
COPY --chown=airflow:0 pyproject.toml README.md requirements.txt ./
COPY --chown=airflow:0 songmill songmill
COPY --chown=airflow:0 models models
COPY --chown=airflow:0 qc qc
COPY --chown=airflow:0 operators operators
COPY --chown=airflow:0 dags dags
COPY --chown=airflow:0 plugins plugins
COPY --chown=airflow:0 config config
COPY --chown=airflow:0 scripts scripts
COPY --chown=airflow:0 deploy deploy
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . && mkdir -p dist var && chown airflow:0 dist var
USER airflow
# numba's caches, written once here: two workers writing them at once can corrupt them
RUN python scripts/warm_numba_cache.py
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
