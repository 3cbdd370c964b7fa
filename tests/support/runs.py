"""Running a sync the ways the worker tests do: by task name through a real worker, or in process on a thread."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection
from syncs.core.settings import Settings
from tests.worker.conftest import stop
from worker.app import SYNC_TASK, create_app
from worker.run_records import RunOutcome
from worker.runs import execute_sync


def connection_id(db: sessionmaker[Session], name: str = "acme") -> int:
    with db() as session:
        return session.scalars(select(Connection.id).where(Connection.name == name)).one()


def send_sync(settings: Settings, name: str = "acme") -> Any:
    """`send_task('exact.sync_connection', [name])` to the queue of `settings`; the AsyncResult."""
    return create_app(settings).send_task(SYNC_TASK, args=[name], queue=settings.celery_queue)


def summary_of(result: Any, worker: subprocess.Popen[bytes], timeout: float = 60.0) -> dict[str, Any]:
    """The task's summary; when it does not come, the worker is stopped and its log is the failure."""
    try:
        return dict(result.get(timeout=timeout))
    except Exception as exc:
        raise AssertionError(f"{exc!r}\n{stop(worker)}") from None


def sync_in_thread(settings: Settings, name: str = "acme") -> tuple[threading.Thread, list[RunOutcome | BaseException]]:
    """`execute_sync` on a started thread; the list receives its outcome or what it raised."""
    ended: list[RunOutcome | BaseException] = []

    def work() -> None:
        try:
            ended.append(execute_sync(settings, name))
        except BaseException as exc:
            ended.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    return thread, ended
