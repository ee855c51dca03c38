"""Run every benchmark, or those named on the command line."""

from __future__ import annotations

import importlib
import sys

BENCHES = ('core', 'scheduler', 'candidates', 'agent', 'placement')


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(BENCHES)
    for name in names:
        if name not in BENCHES:
            print('unknown benchmark %r; choose from %s' % (
                name, ', '.join(BENCHES)), file=sys.stderr)
            return 2
        try:
            module = importlib.import_module('passthrough_plugin.bench.'
                                             + name)
        except ImportError as exc:
            print('== %s: not available (%s)' % (name, exc))
            continue
        print('== %s' % name, flush=True)
        module.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
