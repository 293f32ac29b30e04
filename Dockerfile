# syntax=docker/dockerfile:1
# dpp (data-protection-proxy) container image.
#
#   docker build -t data-protection-proxy:dev .
#   docker run --rm data-protection-proxy:dev --help
#   docker run --rm -e DPP_KEY_PSEUDONYM=... -e DPP_KEY_FPE=... -e DPP_KEY_DEAD_LETTER=... -p 9464:9464 \
#       data-protection-proxy:dev run --policy /etc/dpp/policies/examples/customer-pii.yaml --bootstrap-servers HOST:9092
#
# Slim Python 3.11 base, the package and its dependencies installed from wheels built in a separate stage
# (no compiler or pip cache in the final image; the C accelerator links the image's libcrypto), runs as an unprivileged user (uid/gid 10001) and works with
# a read-only root filesystem (it writes nothing). The example policies are in /etc/dpp/policies; mount
# your own there (or anywhere) and pass --policy. Metrics, /healthz and /readyz listen on port 9464.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# A C compiler and OpenSSL's headers build proxy._native, the accelerator of the record path (about
# twice the throughput; optional for pip, required here: the image must not fall back silently).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
# Wheels for dpp and every runtime dependency (sdist-only ones are built here, not in the final image),
# with the KMS clients (extras vault: hvac, aws: boto3) for keys with source vault or aws (docs/kms.md).
RUN pip wheel --wheel-dir /wheels '.[vault,aws]' \
 && python -c "import glob, sys, zipfile; w = glob.glob('/wheels/data_protection_proxy-*.whl')[0]; \
sys.exit(0 if any(n.startswith('proxy/_native') for n in zipfile.ZipFile(w).namelist()) else 'proxy._native not built')"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="dpp" \
      org.opencontainers.image.description="Streaming data-protection proxy for Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 dpp \
 && useradd --system --uid 10001 --gid dpp --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dpp
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'data-protection-proxy[vault,aws]' \
 && dpp --version \
 && python -c "from proxy.policy import fastpath; assert fastpath.native_available(), 'proxy._native'"
COPY policies /etc/dpp/policies
WORKDIR /etc/dpp
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["dpp"]
CMD ["--help"]
