"""The gunicorn worker the model server runs: gunicorn's threaded worker, tuned for serving a model.

Each worker process accepts connections in its main thread and hands them to a pool of
threads; the WSGI app (model_code.serving.app) lets one of them predict at a time and keeps
the rest for /ping, the overload 503 and requests waiting their turn. On top of gunicorn's
``gthread`` worker this one:

* holds the math libraries (OpenMP, OpenBLAS, MKL) of every pool thread to one thread:
  concurrency comes from one process per core, and a library team per request would
  oversubscribe the cores (OpenMP's setting is per thread, so it is set in each pool thread);
* on SIGTERM, accepts what is already waiting in the listen backlog before it stops
  accepting, so a request whose connection the kernel had taken is answered, not reset;
* gives a new connection that has sent nothing 50 ms of a pool thread (gunicorn waits 5 s)
  before parking it in the event loop, so idle connections cannot hold the pool.

gunicorn is pinned to its major version: this class leans on the gthread worker's
``accept``, ``set_accept_enabled`` and ``handle``.
"""

from __future__ import annotations

import os
from concurrent import futures

from gunicorn.workers import gthread

# How long a pool thread waits for a new connection's first bytes before parking it.
FIRST_BYTES_WAIT_SECONDS = 0.05
# Enough to empty any listen backlog (the kernel caps it at net.core.somaxconn).
_MAX_BACKLOG_DRAIN = 65536


def math_threads() -> int:
    """Threads each math library may use in a worker: $OMP_NUM_THREADS, which mlops serve sets to 1."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def _limit_math_threads() -> None:
    from threadpoolctl import threadpool_limits

    # Kept for the life of the thread: this is its configuration, not a temporary scope.
    threadpool_limits(limits=math_threads())


class ModelWorker(gthread.ThreadWorker):
    """gunicorn's threaded worker with one-thread math, a drained backlog on SIGTERM, short idle waits."""

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        return futures.ThreadPoolExecutor(max_workers=self.cfg.threads, initializer=_limit_math_threads)

    def run(self) -> None:
        # Here rather than before init_process: until gunicorn installs the worker's signal
        # handlers there, a SIGTERM would be lost, so nothing slow may run before them.
        _limit_math_threads()
        super().run()

    def set_accept_enabled(self, enabled: bool) -> None:
        if not enabled and not self.alive:
            self._drain_backlog()
        super().set_accept_enabled(enabled)

    def _drain_backlog(self) -> None:
        """Accept every connection already queued on the (non-blocking) listeners."""
        drained = 0
        for listener in self.sockets:
            listener.setblocking(False)
            for _ in range(_MAX_BACKLOG_DRAIN):
                before = self.nr_conns
                self.accept(listener)  # returns quietly when nothing is waiting
                if self.nr_conns == before:
                    break
                drained += 1
        if drained:
            self.log.info("shutting down: accepted %d connections still in the backlog", drained)

    def handle(self, conn: gthread.TConn) -> object:
        if not conn.initialized and not conn.data_ready and not conn.wait_for_data(FIRST_BYTES_WAIT_SECONDS):
            return gthread._DEFER
        return super().handle(conn)
