# exact-sync: one image for every role (worker, beat, migrate, sandbox, demo); the command picks the role.
# The base image is pinned to a patch release (override with --build-arg PYTHON_IMAGE=...@sha256:... to pin a
# digest); Python packages come from requirements.lock, every one pinned with its hashes.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY models ./models
COPY syncs ./syncs
COPY worker ./worker
COPY bench ./bench
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 exact \
    && rm -rf /src

USER exact
WORKDIR /home/exact
ENTRYPOINT ["exact-sync"]
CMD ["--help"]
