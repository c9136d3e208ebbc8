"""Progress bars for long computations (tqdm), silent when not wanted.

A bar shows only when asked for (``progress=True``) and stderr is a
terminal; pass ``progress="always"`` to force it (in a notebook, say).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["TimeProgress"]


class TimeProgress:
    """A bar over simulated time ``[t0, t1]``: ``update(t)`` moves it to ``t``.

    Parameters
    ----------
    t0, t1 : float
        The simulated time span.
    enabled : bool or "always"
        Show the bar (``True``: when stderr is a terminal; ``"always"``: anywhere).
    desc : str
        The bar's label.
    """

    def __init__(self, t0: float, t1: float, enabled: bool | str = False, desc: str = "solve"):
        show = enabled == "always" or (bool(enabled) and sys.stderr.isatty())
        self.t0, self.t1 = t0, t1
        self._bar = tqdm(total=1000, desc=desc, unit="‰", leave=False,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| t={postfix} [{elapsed}]",
                         ) if show else None
        self._done = 0

    def update(self, t: float, **info) -> None:
        if self._bar is None:
            return
        done = int(1000 * (t - self.t0) / (self.t1 - self.t0))
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done
        self._bar.set_postfix_str(f"{t:.4g}" + "".join(f" {k}={v}" for k, v in info.items()),
                                  refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
