"""The distribution ships every subpackage (the package list in pyproject.toml is explicit)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(("sg_stability", *p.parent.relative_to(ROOT / "sg_stability").parts))
               for p in (ROOT / "sg_stability").rglob("__init__.py")}
    on_disk |= {"sg_stability.adapters"} if (ROOT / "adapters" / "__init__.py").exists() else set()
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages"
