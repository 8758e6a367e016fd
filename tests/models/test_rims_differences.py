"""The RIMs/BRIMs differences table (docs/rims_differences.md): behaviour-changing rows name existing tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_behaviour_changing_row_names_an_existing_test():
    table = (ROOT / "docs" / "rims_differences.md").read_text()
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    changing = [row for row in rows if "changes behaviour**" in row]
    assert len(changing) >= 5
    for row in rows:
        named = re.findall(r"`(test_\w+?)(?:\[[^\]]*\])?`", row)
        assert all(name in defined for name in named), row
        if row in changing:
            assert named, f"no test named in a behaviour-changing row: {row}"
