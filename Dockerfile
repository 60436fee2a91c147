# songmill on Airflow: the official Airflow 3.3.2 image (Python 3.11), Debian's audio tools and
# soundfont, and the project with its pinned requirements. One image for every Airflow service
# and for the one-off `songmill` CLI (docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends \
        ffmpeg fluidsynth fluid-soundfont-gm espeak-ng libchromaprint-tools curl \
    && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /opt/songmill /opt/airflow/secrets && chown -R airflow:0 /opt/songmill /opt/airflow/secrets
USER airflow
WORKDIR /opt/songmill
COPY --chown=airflow:0 requirements.txt pyproject.toml ./
# The CPU build of torch keeps the image small; a GPU worker image swaps in the CUDA wheel
# (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128) on top.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY --chown=airflow:0 . .
RUN pip install --no-cache-dir --no-deps -e .
# numba's caches, written once here: two workers writing them at once can corrupt them
RUN python scripts/warm_numba_cache.py
ENV PYTHONPATH=/opt/songmill \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/songmill/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/songmill/plugins \
    SONGMILL_OUT_DIR=/opt/songmill/dist \
    OMP_NUM_THREADS=1
