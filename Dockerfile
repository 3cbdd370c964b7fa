# exact-sync: one image for every role (worker, beat, migrate, sandbox, demo); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY models ./models
COPY syncs ./syncs
COPY worker ./worker
COPY bench ./bench
RUN pip install . \
    && useradd --create-home --uid 10001 exact \
    && rm -rf /src

USER exact
WORKDIR /home/exact
ENTRYPOINT ["exact-sync"]
CMD ["--help"]
