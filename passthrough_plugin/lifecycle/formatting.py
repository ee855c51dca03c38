"""Plain-text table, CSV and JSON output of the ledger commands."""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Mapping, Sequence

from passthrough_plugin.lifecycle import records

FORMATS = ('table', 'json', 'csv')
Columns = Sequence[tuple[str, str]]  # (key, heading)
Row = Mapping[str, object]


def cell(value: object, missing: str = '-') -> str:
    if value is None:
        return missing
    if isinstance(value, datetime.datetime):
        return records.iso(value)
    return str(value)


def jsonable(value: object) -> object:
    if isinstance(value, datetime.datetime):
        return records.iso(value)
    return value


def table(rows: Sequence[Row], columns: Columns) -> str:
    """Aligned columns with a heading line, as the OpenStack CLIs print."""
    grid = [[heading for _key, heading in columns]]
    grid += [[cell(row.get(key)) for key, _h in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid)
              for i in range(len(columns))]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    lines = [rule]
    for number, line in enumerate(grid):
        padded = (text.ljust(width)
                  for text, width in zip(line, widths, strict=True))
        lines.append('| ' + ' | '.join(padded) + ' |')
        if number == 0:
            lines.append(rule)
    lines.append(rule)
    return '\n'.join(lines)


def to_json(rows: Sequence[Row]) -> str:
    return json.dumps([{k: jsonable(v) for k, v in row.items()}
                       for row in rows], indent=2, sort_keys=True)


def to_csv(rows: Sequence[Row], columns: Columns) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow([key for key, _h in columns])
    for row in rows:
        writer.writerow([cell(row.get(key), '') for key, _h in columns])
    return out.getvalue().rstrip('\n')


def render(rows: Sequence[Row], columns: Columns, fmt: str) -> str:
    if fmt == 'json':
        return to_json(rows)
    if fmt == 'csv':
        return to_csv(rows, columns)
    return table(rows, columns)
