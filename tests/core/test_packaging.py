"""The distribution ships every subpackage (the package list in pyproject.toml is explicit), and the test
environments really have what the suite would otherwise skip on."""

from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(("sg_stability", *p.parent.relative_to(ROOT / "sg_stability").parts))
               for p in (ROOT / "sg_stability").rglob("__init__.py")}
    on_disk |= {"sg_stability.adapters"} if (ROOT / "adapters" / "__init__.py").exists() else set()
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages"


REQUIRED = [name for name in os.environ.get("SG_STABILITY_REQUIRE", "").split(",") if name]


def test_required_frameworks_import():
    """``./dev test`` names the optional imports each environment must have (SG_STABILITY_REQUIRE), so the
    suite's importorskip calls cannot hide a broken install there. Outside ./dev nothing is required."""
    missing = []
    for name in REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, f"required by SG_STABILITY_REQUIRE but not importable: {missing}"
