"""The wrapper every console entry point runs in: Ctrl-C, pipes, bad files.

No traceback reaches an operator: Ctrl-C is one line and exit 130, a
closed pipe (``| head``) ends the command quietly, a file that cannot be
read or decoded is one line naming it, and anything unforeseen is one line
(exit 70, the traceback only with ``PASSTHROUGH_DEBUG=1``). Logging is
quiet too: warnings and errors only, unless ``--debug`` (see
:func:`setup_logging`).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging as std_logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO, TypeVar

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin import exception
from passthrough_plugin.pci import address as addr

EXIT_USAGE = 2
EXIT_SOFTWARE = 70  # sysexits.h EX_SOFTWARE: a defect of ours
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports
EXIT_PIPE = 141  # 128 + SIGPIPE, as if the pipe had killed us

Main = TypeVar('Main', bound=Callable[..., int])


def _say(prog: str, text: str) -> None:
    try:
        sys.stderr.write('%s: %s\n' % (prog, text))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr itself is gone: nothing more to say


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the exit-time flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def address_arg(field: str) -> Callable[[str], str]:
    """An argparse ``type`` for a PCI address; errors name ``field``."""
    def parse(value: str) -> str:
        try:
            return addr.normalize(value, field)
        except exception.InvalidPciAddress as exc:
            raise argparse.ArgumentTypeError(exc.message) from None
    return parse


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with ``--format json``, else ``text``."""
    if getattr(args, 'format', 'table') == 'json':
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


class Progress:
    """A one-line progress display on stderr while long work runs.

    Call it with ``(done, total)`` (``total`` None: a count alone); the
    library functions that do long work take such a callback. Only a
    terminal gets the line: on a pipe or a file nothing is written, so
    captured output and logs stay clean. Redrawn at most every
    ``interval`` seconds (and at the end), erased when closed.
    """

    def __init__(self, label: str, stream: TextIO | None = None,
                 interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream)
        self.interval = interval
        self.clock = clock
        self._drawn_at: float | None = None
        self._shown = False

    def __call__(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        last = total is not None and done >= total
        if not last and self._drawn_at is not None and \
                now - self._drawn_at < self.interval:
            return
        self._drawn_at = now
        if total:
            text = '%s: %d/%d (%d%%)' % (self.label, done, total,
                                         100 * done // total)
        else:
            text = '%s: %d' % (self.label, done)
        self._write('\r\x1b[K' + text)
        self._shown = True

    def close(self) -> None:
        """Erase the line (the command's own output follows)."""
        if self._shown:
            self._write('\r\x1b[K')
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False  # the terminal went away: stop drawing


def _is_terminal(stream: TextIO) -> bool:
    if os.environ.get('TERM') == 'dumb':
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


DEBUG_HELP = ('log everything to stderr, the libraries\' INFO and DEBUG '
              'lines too (default: warnings and errors only)')


def add_debug_option(parser: argparse.ArgumentParser,
                     sub: bool = False) -> None:
    """``--debug``; ``sub``: on a subcommand, where it may also go."""
    parser.add_argument('--debug', action='store_true', help=DEBUG_HELP,
                        default=argparse.SUPPRESS if sub else False)


def setup_logging(prog: str, debug: bool,
                  conf: cfg.ConfigOpts | None = None,
                  service: bool = False) -> None:
    """Log to stderr (stdout carries a command's output) through oslo.log.

    A one-shot command logs warnings and errors only: no INFO from alembic
    or any other library mixes with its output. A service (``service``)
    logs INFO too. ``debug`` (``--debug``, or ``[DEFAULT] debug`` in
    ``conf``) logs everything. ``conf``: parsed options with oslo.log's
    registered (its ``[DEFAULT]`` logging options apply); without it the
    defaults do. :func:`console` puts the previous state back afterwards.
    """
    if conf is None or 'use_stderr' not in conf:
        conf = cfg.ConfigOpts()
        logging.register_options(conf)
        conf([], project='passthrough-plugin', default_config_files=[])
    conf.set_default('use_stderr', True)
    logging.setup(conf, prog)
    root = std_logging.getLogger()
    if debug or conf.debug:
        root.setLevel(std_logging.DEBUG)
        return
    if service:
        return
    root.setLevel(std_logging.WARNING)
    # oslo.log's default_log_levels set some libraries to INFO.
    for pair in conf.default_log_levels:
        name, _sep, level = pair.partition('=')
        logger = std_logging.getLogger(name)
        if logger.level < std_logging.WARNING:
            logger.setLevel(std_logging.WARNING)


class _LoggingState:
    """The process's logging set-up, to put back when a main() returns
    (tests and the demo run several in one process)."""

    def __init__(self) -> None:
        root = std_logging.getLogger()
        self.handlers = list(root.handlers)
        self.level = root.level
        self.levels = {name: logger.level for name, logger in
                       std_logging.Logger.manager.loggerDict.items()
                       if isinstance(logger, std_logging.Logger)}
        self.excepthook = sys.excepthook

    def restore(self) -> None:
        root = std_logging.getLogger()
        for handler in list(root.handlers):
            if handler not in self.handlers:
                root.removeHandler(handler)
        for handler in self.handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(self.level)
        for name, logger in list(
                std_logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, std_logging.Logger):
                logger.setLevel(self.levels.get(name, std_logging.NOTSET))
        sys.excepthook = self.excepthook


# How many console mains this thread is inside: the demo runs the
# scheduler's main inside its own.
_NESTING = threading.local()


def console(prog: str) -> Callable[[Main], Main]:
    """Decorate a ``main(argv=None, ...) -> int`` of a console script.

    Only the outermost main is guarded: a main run inside another leaves
    Ctrl-C, a closed pipe and errors to the outer one, which alone decides
    the exit code (guarded twice, the inner one swallowed the closed pipe,
    pointed stdout at /dev/null, and the outer command went on to exit 0).
    """

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
            state = _LoggingState()
            depth = getattr(_NESTING, 'depth', 0)
            _NESTING.depth = depth + 1
            try:
                if depth:
                    return main(*args, **kwargs)
                return _guarded(main, prog, *args, **kwargs)
            finally:
                _NESTING.depth = depth
                state.restore()
        return run  # type: ignore[return-value]
    return wrap


def _guarded(main: Callable[..., int], prog: str, *args: Any,
             **kwargs: Any) -> int:
    """Run ``main``: every way out is an exit code and at most one line."""
    try:
        code = main(*args, **kwargs)
        # Fail here, inside the wrapper, if the reader went away.
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        _say(prog, 'interrupted')
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except UnicodeError as exc:
        _say(prog, 'error: cannot decode the input: %s' % _one_line(exc))
        return EXIT_USAGE
    except OSError as exc:
        where = ' %s:' % exc.filename if exc.filename else ''
        _say(prog, 'error:%s %s' % (where, exc.strerror or _one_line(exc)))
        return 1
    except SystemExit:
        # argparse's --help and errors: their output may meet a closed
        # pipe too.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_PIPE
        except (OSError, ValueError):
            pass
        raise
    except Exception as exc:  # noqa: BLE001 - the last defence
        if os.environ.get('PASSTHROUGH_DEBUG'):
            traceback.print_exc()
        _say(prog, 'internal error: %s: %s (set PASSTHROUGH_DEBUG=1 for the '
             'traceback and please report it)' % (
                 type(exc).__name__, _one_line(exc)))
        return EXIT_SOFTWARE
