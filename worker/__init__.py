"""The Celery app, tasks, beat scheduling and the CLI. Imports `syncs` and `models`; nothing imports it."""
