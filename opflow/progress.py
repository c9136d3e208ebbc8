"""Progress of long computations: one mechanism for every loop in opflow.

``progress`` arguments (and the CLI's ``--quiet``) mean the same everywhere:

* ``True`` (the default of training and data generation): a tqdm bar when
  stderr is a terminal; otherwise (a log file, a batch job, a pipe) plain
  lines on stderr with the elapsed time and the latest loss or values, at
  most one every :data:`LOG_INTERVAL` seconds, plus the first and the last;
* ``"always"``: a bar anywhere (a notebook, say);
* ``False`` (``--quiet``, ``quiet=True`` in the demos): nothing.

:class:`Progress` counts units (epochs, batches, samples, steps);
:class:`TimeProgress` follows a solver through simulated time. Both pick the
mode with :func:`progress_mode`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["LOG_INTERVAL", "Progress", "TimeProgress", "progress_mode"]

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 5.0


def progress_mode(progress: bool | str) -> str | None:
    """How to show progress: ``"bar"``, ``"lines"`` or ``None`` (silent).

    Parameters
    ----------
    progress : bool or "always"
        ``True``: a bar on a terminal, lines elsewhere; ``"always"``: a bar;
        ``False``: nothing.

    Returns
    -------
    str or None
    """
    if progress == "always":
        return "bar"
    if not progress:
        return None
    return "bar" if sys.stderr.isatty() else "lines"


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d} min"


class _Clock:
    """When the last line was printed: shared by nested progress (epochs and batches)
    so that together they print at most one line per interval."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.last: float | None = None

    def due(self, interval: float) -> bool:
        since = self.start if self.last is None else self.last
        return time.perf_counter() - since >= interval

    def printed(self) -> None:
        self.last = time.perf_counter()


class Progress:
    """Progress over ``total`` units (epochs, batches, samples, steps).

    On a terminal a tqdm bar; elsewhere one line on stderr per update at most
    every ``interval`` seconds (always the first and the last update, unless
    ``edges`` is false), e.g. ``train: epoch 3/100, train_loss=0.0123 [12.5 s]``;
    nothing when ``progress`` is false.

    Parameters
    ----------
    total : int or None
        Units to do (None: unknown).
    desc : str
        Label of the bar and the lines.
    progress : bool or "always"
        See :func:`progress_mode`.
    unit : str
        Name of a unit (``"epoch"``, ``"sample"``, ...).
    initial : int
        Units already done (a resumed job).
    every : int
        Lines every ``every`` units (and the last) instead of every
        ``interval`` seconds (0: by time).
    interval : float, optional
        Seconds between two lines (default :data:`LOG_INTERVAL`).
    parent : Progress, optional
        An enclosing Progress (epochs around batches): both share one clock,
        so they print at most one line per interval together.
    edges : bool
        Print the first and the last update whatever the interval (default
        True; inner loops pass False).
    leave : bool
        Keep the bar on screen when closed.

    Examples
    --------
    >>> bar = Progress(3, "work", progress=False)
    >>> for i in range(3):
    ...     bar.update(1, loss=0.5 / (i + 1))
    >>> bar.close()
    """

    def __init__(self, total: int | None, desc: str, progress: bool | str = True, *,
                 unit: str = "it", initial: int = 0, every: int = 0,
                 interval: float | None = None, parent: Progress | None = None,
                 edges: bool = True, leave: bool = True):
        self.mode = progress_mode(progress)
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.every = every
        self.interval = LOG_INTERVAL if interval is None else interval
        self.clock: _Clock = parent.clock if parent is not None else _Clock()
        self.edges = edges
        self.info: dict[str, Any] = {}
        self._since = 0  # updates since the last line
        self._lines = 0  # lines printed
        self._printed_units = initial
        self.bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave,
                         dynamic_ncols=True) if self.mode == "bar" else None)

    def update(self, n: int = 1, **info: Any) -> None:
        """``n`` more units done; ``info`` (a loss, ...) is shown with them.

        Parameters
        ----------
        n : int
            Units done since the last call.
        **info
            Values to show (floats with 4 significant digits).
        """
        self.done += n
        self.info.update(info)
        if self.bar is not None:
            self.bar.update(n)
            if info:
                self.bar.set_postfix({k: _format(v) for k, v in self.info.items()},
                                     refresh=False)
        elif self.mode == "lines":
            self._since += 1
            last = self.total is not None and self.done >= self.total
            if self.every:  # every `every` units and the last
                if self.done - self._printed_units >= self.every or (self.edges and last):
                    self._line()
            elif self.clock.due(self.interval) or (self.edges and (last or not self._lines)):
                self._line()

    def write(self, text: str) -> None:
        """A line of its own (above the bar on a terminal; on stderr otherwise).

        Parameters
        ----------
        text : str
            The line.
        """
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.mode == "lines":
            print(text, file=sys.stderr, flush=True)

    def _line(self) -> None:
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        count = f"{self.unit} {count}" if self.unit.isalpha() else f"{count}{self.unit}"
        info = "".join(f", {k}={_format(v)}" for k, v in self.info.items())
        elapsed = _elapsed(time.perf_counter() - self.clock.start)
        print(f"{self.desc}: {count}{info} [{elapsed}]", file=sys.stderr, flush=True)
        self.clock.printed()
        self._since, self._printed_units = 0, self.done
        self._lines += 1

    def close(self) -> None:
        """Close the bar; in lines mode, print the last state if it was not printed."""
        if self.bar is not None:
            self.bar.close()
        elif self.mode == "lines" and self._since and self.edges:
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TimeProgress:
    """Progress over simulated time ``[t0, t1]``: ``update(t)`` moves it to ``t``.

    A bar on a terminal, lines elsewhere (at most one every
    :data:`LOG_INTERVAL` seconds), nothing when not enabled.

    Parameters
    ----------
    t0, t1 : float
        The simulated time span.
    enabled : bool or "always"
        See :func:`progress_mode` (solvers default to False).
    desc : str
        The bar's label.
    """

    def __init__(self, t0: float, t1: float, enabled: bool | str = False, desc: str = "solve"):
        self.mode = progress_mode(enabled)
        self.t0, self.t1 = t0, t1
        self._bar = tqdm(total=1000, desc=desc, unit="‰", leave=False,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| t={postfix} [{elapsed}]",
                         ) if self.mode == "bar" else None
        self._lines = Progress(100, desc, enabled, unit="%") if self.mode == "lines" else None
        self._done = 0
        self._percent = 0

    def update(self, t: float, **info: Any) -> None:
        """Move to simulated time ``t``.

        Parameters
        ----------
        t : float
            The solver's current time.
        **info
            Values to show (step size, ...).
        """
        done = int(1000 * (t - self.t0) / (self.t1 - self.t0))
        if self._lines is not None:
            percent = max(self._percent, min(100, done // 10))
            self._lines.update(percent - self._percent, t=float(t), **info)
            self._percent = percent
            return
        if self._bar is None:
            return
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done
        self._bar.set_postfix_str(f"{t:.4g}" + "".join(f" {k}={v}" for k, v in info.items()),
                                  refresh=False)

    def close(self) -> None:
        """Close the bar (lines: print the last state)."""
        if self._bar is not None:
            self._bar.close()
        if self._lines is not None:
            self._lines.close()
