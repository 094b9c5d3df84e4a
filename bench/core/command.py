"""What every command's entry point shares: Ctrl-C (SIGINT) and SIGTERM, at any moment, end the
command with one line on stderr and exit status 130 (SIGTERM: 143), never a traceback.

Two phases, one mechanism::

    from bench.core.command import guard_startup, run_main
    guard_startup(__name__ == "__main__")   # a command's first statement: before its imports
    ...                                     # the heavy imports (torch, …)
    if __name__ == "__main__":
        sys.exit(run_main(main))

* start-up (the imports, before ``main`` runs): nothing has been done yet, so a signal prints
  one line and leaves at once (``os._exit``);
* ``run_main(main)``: Ctrl-C raises ``KeyboardInterrupt`` and SIGTERM raises ``Terminated`` (a
  ``KeyboardInterrupt``), so every ``except KeyboardInterrupt`` — a launcher stopping its
  workers, a task asking its trainer to checkpoint — handles both alike; what ``main`` does not
  catch itself ends as one line and ``exit_status``.

A stop signal the command inherited as ignored (a shell's background job ignores SIGINT) stays
ignored, as Python itself leaves it. Standard library only: importing this costs nothing, so it
can run before anything heavy.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

STOP = (signal.SIGINT, signal.SIGTERM)
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}     # 128 + the signal's number
_command = False                 # this process is a command (guard_startup(True) was called)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where a Ctrl-C raises ``KeyboardInterrupt`` (``run_main``)."""


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The exception a stop signal raises: ``Terminated`` (SIGTERM) or ``KeyboardInterrupt``."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def exit_status(e: BaseException) -> int:
    """130 for a Ctrl-C, 143 for SIGTERM."""
    return STATUS[signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT]


def stopped_word(e: BaseException) -> str:
    """How a message names the stop: 'interrupted' (Ctrl-C) or 'terminated (SIGTERM)'."""
    return "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):       # stderr closed: the exit status says it
        pass


def _stop_at_start_up(signum, frame) -> None:
    _say(f"{stopped_word(interrupt_for(signum))} during start-up; nothing was done")
    os._exit(STATUS[signum])


def _raise_stop(signum, frame) -> None:
    raise interrupt_for(signum)


def guard_startup(as_command: bool) -> None:
    """A command's first statement (``as_command``: ``__name__ == "__main__"``; an import by a
    test or by another command changes nothing): Ctrl-C or SIGTERM from here until ``run_main``
    prints one line and exits 130 / 143 at once — nothing has been done yet."""
    global _command
    if not as_command:
        return
    _command = True
    for s in STOP:
        if signal.getsignal(s) != signal.SIG_IGN:   # ignored (a shell's background job): kept so
            signal.signal(s, _stop_at_start_up)


def run_main(main: Callable[..., int | None], argv: list[str] | None = None) -> int:
    """``main(argv)`` with Ctrl-C as ``KeyboardInterrupt`` and SIGTERM as ``Terminated``; one
    that ``main`` lets through prints one line and returns 130 / 143. ``main``'s own handlers
    (``bench.train`` checkpoints on the first signal) replace these while it runs. In a command,
    a signal after ``main`` returned is ignored: its exit status stands (elsewhere — a test
    calling it — the handlers it found are restored)."""
    before = {s: signal.getsignal(s) for s in STOP}
    for s, handler in ((signal.SIGINT, signal.default_int_handler),
                       (signal.SIGTERM, _raise_stop)):
        if before[s] != signal.SIG_IGN:             # an ignored signal stays ignored, as Python
            signal.signal(s, handler)               # itself leaves an ignored SIGINT
    try:
        return main(argv) or 0
    except KeyboardInterrupt as e:
        _say(f"{stopped_word(e)}; rerun the command to finish")
        return exit_status(e)
    finally:
        for s in STOP:
            signal.signal(s, signal.SIG_IGN if _command else before[s] or signal.SIG_DFL)
