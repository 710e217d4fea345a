"""How every benchmark hands over its rows: a Markdown table on stdout, the rows as JSON."""

import json
from pathlib import Path


def report(table: str, rows: list[dict], json_path: Path | None) -> None:
    """Prints `table`; writes `rows` to `json_path` (folders created) when one is given."""
    print(table)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows, indent=2) + "\n")
