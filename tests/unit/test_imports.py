"""The package's imports: a DAG, pci/ layered, every module importable."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import fixtures
import testtools

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PACKAGE = 'passthrough_plugin'
# Run by alembic with its context set up, never imported as a module.
NOT_IMPORTABLE = {'passthrough_plugin.lifecycle.migrations.env'}


def modules(root: str = os.path.join(TOP, PACKAGE)) -> dict[str, str]:
    """{dotted module name: source path} of every module of the package."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.path.dirname(root))[:-3]
            dotted = rel.replace(os.sep, '.')
            if dotted.endswith('.__init__'):
                dotted = dotted[:-len('.__init__')]
            found[dotted] = path
    return found


def import_graph(found: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, wherever the import
    sits (top level, function body or ``if TYPE_CHECKING``): an import
    hidden from the interpreter is still a dependency of the design."""
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        package = name if path.endswith('__init__.py') \
            else name.rpartition('.')[0]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = package.split('.')[:len(
                        package.split('.')) - node.level + 1]
                    base = '.'.join(parts + ([base] if base else []))
                for alias in node.names:
                    full = '%s.%s' % (base, alias.name)
                    deps.add(full if full in found else base)
        graph[name] = {d for d in deps if d in found and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


class CyclesTest(testtools.TestCase):

    def test_finds_a_cycle(self) -> None:
        # The checker itself: a cycle through three modules, a self-free
        # chain beside it.
        graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}, 'e': set()}
        self.assertEqual([['a', 'b', 'c']], cycles(graph))
        self.assertEqual([], cycles({'a': {'b'}, 'b': set()}))

    def test_reads_relative_and_type_checking_imports(self) -> None:
        root = os.path.join(self.useFixture(fixtures.TempDir()).path, 'pkg')
        os.mkdir(root)
        for name, text in (
                ('__init__.py', ''),
                ('a.py', 'from typing import TYPE_CHECKING\n'
                         'if TYPE_CHECKING:\n    from pkg import b\n'),
                ('b.py', 'def f():\n    from . import a\n')):
            with open(os.path.join(root, name), 'w', encoding='utf-8') as f:
                f.write(text)
        graph = import_graph(modules(root))
        self.assertEqual({'pkg.b'}, graph['pkg.a'])
        self.assertEqual({'pkg.a'}, graph['pkg.b'])
        self.assertEqual([['pkg.a', 'pkg.b']], cycles(graph))


class ImportGraphTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.found = modules()
        self.graph = import_graph(self.found)

    def test_walks_the_package(self) -> None:
        self.assertIn('passthrough_plugin.pci.pools', self.graph)
        self.assertIn('passthrough_plugin.pci.explain',
                      self.graph['passthrough_plugin.pci.pools'])

    def test_no_cycles_among_pci_modules(self) -> None:
        prefix = 'passthrough_plugin.pci.'
        pci = {name: {d for d in deps if d.startswith(prefix)}
               for name, deps in self.graph.items()
               if name.startswith(prefix)}
        self.assertEqual([], cycles(pci))

    def test_no_cycles_in_the_package(self) -> None:
        self.assertEqual([], cycles(self.graph))

    def test_pci_imports_nothing_of_ours_but_exception(self) -> None:
        allowed = {'passthrough_plugin.exception', 'passthrough_plugin.pci'}
        outside = {
            name: sorted(d for d in deps if d not in allowed
                         and not d.startswith('passthrough_plugin.pci.'))
            for name, deps in self.graph.items()
            if name.startswith('passthrough_plugin.pci.')}
        self.assertEqual({}, {k: v for k, v in outside.items() if v})

    def test_agent_holds_no_fakes(self) -> None:
        # agent/ is what runs on a real host; fake trees and the kernel
        # emulator live in passthrough_plugin.fakehost.
        fakes = [name for name in self.found
                 if name.startswith('passthrough_plugin.agent.')
                 and 'fake' in name.rpartition('.')[2]]
        self.assertEqual([], fakes)
        users = sorted(name for name, deps in self.graph.items()
                       if name.startswith('passthrough_plugin.agent.')
                       and any(d.startswith('passthrough_plugin.fakehost')
                               for d in deps))
        self.assertEqual([], users)


# One interpreter: before each import every module of the package is
# dropped from sys.modules, so each one is imported from scratch (and an
# import that only works after another module was imported shows up).
ISOLATED = '''
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules
                   if m == 'passthrough_plugin'
                   or m.startswith('passthrough_plugin.')]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed.append('%s: %s: %s' % (name, type(exc).__name__, exc))
print('\\n'.join(failed))
'''


class IsolatedImportTest(testtools.TestCase):

    def test_every_module_imports_on_its_own(self) -> None:
        names = sorted(set(modules()) - NOT_IMPORTABLE)
        result = subprocess.run(
            [sys.executable, '-c', ISOLATED, *names], cwd=TOP,
            capture_output=True, text=True, timeout=600, check=False)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual('', result.stdout.strip(),
                         'modules that fail to import on their own')

