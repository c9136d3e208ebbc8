"""Where the chunks of a batch job are computed: dask's local schedulers or a cluster.

A :class:`Scheduler` takes dask ``Delayed`` objects (one per chunk) and yields
their results **in order**, with at most a window of chunks in flight, so the
driver can write finished chunks one after another while memory stays bounded
by the window. Every kind is dask's own machinery:

* ``"sync"``: dask's single-threaded scheduler, in the calling thread (a
  model on a GPU, debugging);
* ``"threads"``: dask's threaded scheduler with ``workers`` threads (torch
  releases the GIL in its kernels);
* ``"processes"``: dask's multiprocessing scheduler on one pool of
  ``workers`` processes kept for the whole job;
* ``"distributed"``: a ``dask.distributed`` cluster: a ``LocalCluster`` of
  ``workers`` single-threaded worker processes, or the scheduler at
  ``address`` (``HOST:PORT``), whose workers must see the input file at the
  same path and have opflow installed.
"""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import dask

if TYPE_CHECKING:  # an optional dependency, imported when a cluster starts
    from distributed import Client, LocalCluster

from ..errors import InvalidArgumentError, OpflowError

__all__ = ["SCHEDULERS", "Scheduler"]

SCHEDULERS = ("sync", "threads", "processes", "distributed")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, "a positive integer", value)
    return value


class Scheduler:
    """Compute chunk tasks with dask and hand back their results in order.

    Parameters
    ----------
    kind : {"sync", "threads", "processes", "distributed"}, optional
        Default ``"distributed"`` with an ``address``, else ``"threads"``.
    workers : int
        Threads, processes or LocalCluster workers (ignored with ``address``).
    address : str, optional
        ``HOST:PORT`` of a running ``dask.distributed`` scheduler; implies
        ``kind="distributed"``.
    window : int, optional
        Most chunks in flight (default: ``workers``, twice the cluster's
        threads for ``"distributed"``); memory grows with it.

    Notes
    -----
    Use it as a context manager: the process pool or cluster starts on
    entry and stops on exit.
    """

    def __init__(self, kind: str | None = None, workers: int = 1, address: str | None = None,
                 window: int | None = None):
        if kind is None:
            kind = "threads" if address is None else "distributed"
        if address is not None:
            if not isinstance(address, str) or ":" not in address:
                raise InvalidArgumentError("address", "HOST:PORT of a dask scheduler", address)
            if kind != "distributed":
                raise InvalidArgumentError("scheduler", "'distributed' with an address", kind)
            kind = "distributed"
        if kind not in SCHEDULERS:
            raise InvalidArgumentError("scheduler", f"one of {list(SCHEDULERS)}", kind)
        self.kind, self.address = kind, address
        self.workers = _positive_int("workers", workers)
        self.window = None if window is None else _positive_int("window", window)
        self._pool: ProcessPoolExecutor | None = None
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None

    def __repr__(self) -> str:
        where = f", address={self.address!r}" if self.address else ""
        return f"Scheduler({self.kind!r}, workers={self.workers}{where})"

    # ----------------------------------------------------------- lifecycle
    def __enter__(self) -> Scheduler:
        if self.kind == "processes":
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        elif self.kind == "distributed":
            self._start_distributed()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the process pool or the cluster (a no-op otherwise)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def _start_distributed(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ModuleNotFoundError:
            raise OpflowError("--scheduler distributed needs the 'distributed' package: "
                              "pip install distributed") from None
        if self.address is not None:
            try:
                self._client = Client(self.address, timeout="20s")
            except OSError as e:
                raise OpflowError(f"cannot reach the dask scheduler at {self.address}: "
                                  f"{e}") from None
            return
        self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                     processes=True, dashboard_address=None)
        self._client = Client(self._cluster)

    # ----------------------------------------------------------- computing
    def _window(self) -> int:
        if self.window is not None:
            return self.window
        if self._client is not None:
            return 2 * max(1, sum(self._client.nthreads().values()))
        return self.workers

    def map(self, tasks: Iterable[Any]) -> Iterator[Any]:
        """Results of the dask ``Delayed`` objects ``tasks``, in their order.

        Parameters
        ----------
        tasks : iterable of dask.delayed.Delayed
            Consumed lazily: at most a window of them is built and in flight.

        Yields
        ------
        object
            ``task.compute()`` for each task, in order.
        """
        if self.kind == "distributed":
            if self._client is None:
                raise OpflowError("Scheduler('distributed') must be entered (`with`) first")
            yield from self._map_distributed(tasks)
            return
        options: dict[str, Any] = {"scheduler": self.kind}
        if self.kind != "sync":
            options["num_workers"] = self.workers
        if self.kind == "processes":
            if self._pool is None:
                raise OpflowError("Scheduler('processes') must be entered (`with`) first")
            options["pool"] = self._pool
        group: list[Any] = []
        for task in tasks:
            group.append(task)
            if len(group) == self._window():
                yield from dask.compute(*group, **options)
                group = []
        if group:
            yield from dask.compute(*group, **options)

    def _map_distributed(self, tasks: Iterable[Any]) -> Iterator[Any]:
        pending: collections.deque = collections.deque()
        client = self._client
        assert client is not None  # map() refused a scheduler that was not entered
        try:
            for task in tasks:
                pending.append(client.compute(task))
                if len(pending) >= self._window():
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
