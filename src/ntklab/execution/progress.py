"""Progress of a run: a ``rich`` progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, TextIO

from ..store import TrialRecord

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress of a run: a ``rich`` progress bar on a terminal (trials done of the total,
    the methods running now, elapsed time, ETA; a failed trial is printed above it), plain
    log lines otherwise, one per stored trial.

    Parameters
    ----------
    total : int
        Trials in the study (all points).
    already : int
        Trials done before this invocation (resume).
    stream : file, default sys.stdout
    tty : bool, optional
        Force the terminal display on or off (default: ``stream.isatty()``).
    points : int, default 1
        Sweep points; log lines name the point only when there are several.
    console : rich.console.Console, optional
        Draw the bar on this console (implies the terminal display; for tests and notebooks).
    costs : TrialCosts or mapping of (point, trial) to float, optional
        The estimated cost of each trial this invocation runs
        (:class:`~ntklab.execution.cost.TrialCosts`, or a mapping). The ETA then takes each
        trial left to last as long as the finished trials of its cost did (a cost not seen
        yet: its cost at the seconds per unit seen so far), shared by the workers as the
        work so far was, instead of the mean finished trial times the trials left (trials
        may differ by orders of magnitude, e.g. networks in some trials only).
    """

    def __init__(
        self,
        total: int,
        already: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        points: int = 1,
        console: Any = None,
        costs: Any = None,
    ):
        self.total = total
        self.points = points
        self.done = already
        self.already = already
        self.failed = 0
        self.stream = stream if stream is not None else sys.stdout
        self.tty = console is not None or (self.stream.isatty() if tty is None else bool(tty))
        self.console = console
        self.start = time.monotonic()
        self.running: dict[tuple[int, int], str] = {}
        self._finished: set[tuple[int, int]] = set()
        self._bar: Any = None  # the rich progress bar, started on the first event
        self._task: Any = None
        self._cost: Any = None  # (point, trial) -> its cost
        self._left: Counter = Counter()  # cost -> trials of that cost not finished
        self._walls: dict[float, list[float]] = {}  # cost -> wall times of finished trials
        self._cost_done = self._wall_done = 0.0
        if isinstance(costs, Mapping) and costs:
            mean = sum(costs.values()) / len(costs)
            self._cost = lambda p, t: costs.get((p, t), mean)
            self._left = Counter(float(c) for c in costs.values())
        elif costs is not None and not isinstance(costs, Mapping):
            self._cost, self._left = costs, Counter(costs.remaining())

    def _eta(self) -> str:
        finished = self.done + self.failed - self.already
        if finished <= 0:
            return "?"
        elapsed = time.monotonic() - self.start
        if self._cost is None or self._cost_done <= 0 or self._wall_done <= 0:
            return format_seconds(elapsed / finished * (self.total - self.done))
        # each trial left takes the mean wall time of the finished trials of its cost (its
        # methods), or, for a cost not seen yet, its cost at the rate seen so far; the work
        # is shared by the workers as it was so far (wall time per elapsed second)
        rate = self._wall_done / self._cost_done
        work = sum(
            n * (sum(self._walls[c]) / len(self._walls[c]) if c in self._walls else c * rate)
            for c, n in self._left.items()
            if n > 0
        )
        return format_seconds(work * elapsed / self._wall_done)

    def _account(self, key: tuple[int, int], wall_time: float) -> None:
        """Move a finished trial from the work left to the work done."""
        if self._cost is None or key in self._finished:
            return
        cost = float(self._cost(*key))
        self._left[cost] -= 1
        if wall_time > 0:
            self._walls.setdefault(cost, []).append(wall_time)
            self._cost_done += cost
            self._wall_done += wall_time

    def running_text(self) -> str:
        """The methods running now, ``t3 NN1, t4@p1 NTKB2`` (trial, point when not 0)."""
        return ", ".join(
            f"t{t}{'' if p == 0 else f'@p{p}'} {m}" for (p, t), m in sorted(self.running.items())
        )

    def _draw(self) -> None:
        if not self.tty:
            return
        if self._bar is None:
            self._start_bar()
        failed = f"[red]failed {self.failed}[/red]" if self.failed else ""
        self._bar.update(
            self._task,
            completed=self.done,
            failed=failed,
            eta=self._eta(),
            running=_shorten(self.running_text(), 80),
            refresh=True,
        )

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn
        from rich.progress import Progress as Bar
        from rich.text import Text

        start = self.start

        class Elapsed(ProgressColumn):  # since the run started, as the plain lines count it
            def render(self, task) -> Text:
                return Text(f"elapsed {format_seconds(time.monotonic() - start)}")

        console = self.console or Console(file=self.stream, force_terminal=True)
        self._bar = Bar(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[failed]}"),
            Elapsed(),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[running]}", markup=False),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._bar.add_task(
            "trials", total=self.total, completed=self.done, failed="", eta="?", running=""
        )
        self._bar.start()

    def method(self, point: int, trial: int, method: str) -> None:
        """A trial has started running ``method``."""
        if (point, trial) in self._finished:  # a late message from a worker
            return
        self.running[(point, trial)] = method
        self._draw()

    def finished(self, record: TrialRecord) -> None:
        """A trial's record was stored."""
        self.running.pop((record.point, record.trial), None)
        self._account((record.point, record.trial), float(record.wall_time or 0.0))
        self._finished.add((record.point, record.trial))
        if record.status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.tty:
            self._draw()
            if record.status != "done":
                self._bar.console.print(
                    f"trial {record.trial} (point {record.point}) failed: {record.error}",
                    markup=False,
                    highlight=False,
                )
            return
        where = f" (point {record.point})" if self.points > 1 else ""
        status = "done" if record.status == "done" else f"FAILED: {record.error}"
        errors = (
            f"; {len(record.errors)} method error(s): "
            + "; ".join(f"{m}: {msg}" for m, msg in record.errors)
            if record.errors
            else ""
        )
        print(
            f"{time.strftime('%H:%M:%S')} trial {record.trial}{where} {status} in "
            f"{record.wall_time:.1f}s{errors} [{self.done}/{self.total}, ETA {self._eta()}]",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """The run ended (or stopped): draw the bar a last time and leave it on screen."""
        if self._bar is not None:
            self._draw()
            self._bar.stop()
            self._bar = None


def _shorten(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
