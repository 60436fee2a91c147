# songmill engine image: Debian's audio tools, the soundfont, and the project with pinned requirements.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
        ffmpeg fluidsynth fluid-soundfont-gm espeak-ng libchromaprint-tools make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/songmill
COPY requirements.txt pyproject.toml ./
# The CPU build of torch: PyPI's default Linux wheel pulls the CUDA stack.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
ENV OMP_NUM_THREADS=1
ENTRYPOINT []
CMD ["songmill", "--help"]
