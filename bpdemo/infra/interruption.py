"""Interruptions: Ctrl-C (SIGINT) and a polite kill (SIGTERM) stop a run the same way, keeping what it finished.

`cli.run_main` installs `handlers()` around a whole command. Either signal raises `Interrupted`, a
`KeyboardInterrupt`, so the training loop's own Ctrl-C handling keeps the history it has. The signal is
also remembered: a library that swallows `KeyboardInterrupt` (scikit-learn's `fit` catches it, warns
and returns) is followed by `check()`, which raises it again. `set_phase` marks what the run is doing
("data", "training", "baselines", "figures", ...), so the run's metrics.json says where it stopped. The
command ends with one line and exit status 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.

While what was finished is being saved (`shielded()`), a second signal is remembered but raises nothing,
so the files being written are completed. A file written while the run goes on is written `deferred()`:
a signal that comes meanwhile is raised as soon as the file is complete. Before `run_main` begins (Python still importing torch) and
after it ends, `exit_outside_run` makes a signal end the process at once with one line: nothing is
being written then.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bpdemo.infra.ranks import is_rank_zero

SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
START = "start"  # the phase of a command before it names one


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by `signum` while in `phase`; `detail` says how far it got."""

    def __init__(self, signum: int, phase: str, detail: str = ""):
        super().__init__(signum, phase, detail)
        self.signum, self.phase, self.detail = signum, phase, detail

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    def describe(self) -> str:
        """`interrupted after 2 of 10 epochs (Ctrl-C, during training)`."""
        how = SIGNALS.get(self.signum, self.signal_name)
        detail = f" {self.detail}" if self.detail else ""
        return f"interrupted{detail} ({how}, during {self.phase})"

    def marks(self) -> dict[str, object]:
        """What a run's metrics.json adds about the interruption."""
        return {"interrupted": True, "phase": self.phase, "signal": self.signal_name}


class _State:
    received: int | None = None  # the first signal received since `handlers()` began
    count: int = 0  # signals received since `handlers()` began
    phase: str = START
    shield: int = 0
    started: bool = False  # whether a command's `handlers()` ever began


_state = _State()


def set_phase(name: str) -> None:
    """Mark what the run does from now on; an interruption reports the phase it happened in."""
    _state.phase = name


def phase() -> str:
    return _state.phase


def _on_signal(signum: int, frame) -> None:
    _state.count += 1
    if _state.received is None:
        _state.received = signum
    if not _state.shield:
        raise Interrupted(signum, _state.phase)


@contextmanager
def handlers() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` inside the block (main thread only), as before after.

    The signal is remembered for the block only: a demo's `main` called after it (a notebook does)
    is not stopped, nor is its own Ctrl-C reported, by the signal that ended an earlier command."""
    _state.received, _state.phase, _state.shield, _state.started = None, START, 0, True
    _state.count = 0
    try:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, _on_signal) for signum in SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    finally:
        _state.received, _state.count = None, 0


@contextmanager
def shielded() -> Iterator[None]:
    """Inside the block a signal is remembered but raises nothing: what is being saved is completed."""
    _state.shield += 1
    try:
        yield
    finally:
        _state.shield -= 1


@contextmanager
def deferred() -> Iterator[None]:
    """Inside the block a signal waits, and is raised as the block ends (unless an outer `shielded()`
    still holds it): what the block does is done whole, and the run still stops at once after."""
    before = _state.count
    with shielded():
        yield
    if _state.count != before and not _state.shield:
        raise Interrupted(_state.received or signal.SIGINT, _state.phase)


def _exit_at_once(signum: int, frame) -> None:
    when = (
        "as the command ended"
        if _state.started
        else "before the command began; nothing was written"
    )
    if is_rank_zero():  # in a data-parallel run, rank 0 speaks for all
        os.write(2, f"error: interrupted ({SIGNALS[signum]}) {when}\n".encode())
    os._exit(128 + signum)


def exit_outside_run() -> None:
    """Make SIGINT and SIGTERM end the process at once, with one line, outside `handlers()`: for a
    command (`python -m ...`) that is still starting up, before anything is written."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _exit_at_once)


def received() -> int | None:
    """The first signal received since `handlers()` began, if any."""
    return _state.received


def check() -> None:
    """Raise `Interrupted` if a signal came and a library swallowed it (scikit-learn's `fit` does)."""
    if _state.received is not None and not _state.shield:
        raise Interrupted(_state.received, _state.phase)


def stopped(detail: str = "") -> Interrupted:
    """The `Interrupted` to raise for an interruption that code caught itself (the training loop),
    once it has kept what it had; `detail` says how far it got ("after 2 of 10 epochs")."""
    return Interrupted(_state.received or signal.SIGINT, _state.phase, detail)


def as_interrupted(error: KeyboardInterrupt) -> Interrupted:
    """Any KeyboardInterrupt as an `Interrupted` (a plain one counts as Ctrl-C in the current phase)."""
    if isinstance(error, Interrupted):
        return error
    return Interrupted(_state.received or signal.SIGINT, _state.phase)
