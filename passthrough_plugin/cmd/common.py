"""The wrapper every console entry point runs in: Ctrl-C, pipes, bad files.

No traceback reaches an operator: Ctrl-C is one line and exit 130, a
closed pipe (``| head``) ends the command quietly, a file that cannot be
read or decoded is one line naming it, and anything unforeseen is one line
(exit 70, the traceback only with ``PASSTHROUGH_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

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


def console(prog: str) -> Callable[[Main], Main]:
    """Decorate a ``main(argv=None, ...) -> int`` of a console script."""

    def wrap(main: Main) -> Main:
        @functools.wraps(main)
        def run(*args: Any, **kwargs: Any) -> int:
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
                _say(prog, 'error: cannot decode the input: %s'
                     % _one_line(exc))
                return EXIT_USAGE
            except OSError as exc:
                where = ' %s:' % exc.filename if exc.filename else ''
                _say(prog, 'error:%s %s' % (where,
                                            exc.strerror or _one_line(exc)))
                return 1
            except SystemExit:
                # argparse's --help and errors: their output may meet a
                # closed pipe too.
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
                _say(prog, 'internal error: %s: %s (set PASSTHROUGH_DEBUG=1 '
                     'for the traceback and please report it)' % (
                         type(exc).__name__, _one_line(exc)))
                return EXIT_SOFTWARE
        return run  # type: ignore[return-value]
    return wrap
