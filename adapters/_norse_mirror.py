"""The importable home of the Norse mirrors (``_norse_clone``): importing
``sg_stability.adapters._norse_mirror.<norse module, dots as "__">`` builds the mirror of that Norse module. A patched
Norse model holds cloned step functions whose ``__module__`` is such a name, so ``torch.save(model)`` pickles them
by reference and ``torch.load`` finds them again, in this process or a fresh one."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

__path__: list[str] = []  # a package: the mirrors are its submodules


class _MirrorFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(__name__ + ".") or not fullname[len(__name__) + 1:].startswith("norse"):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        from ._norse_clone import mirror

        original = spec.name[len(__name__) + 1:].replace("__", ".")
        return mirror(vars(importlib.import_module(original)))

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # filled by create_module


if not any(isinstance(f, _MirrorFinder) for f in sys.meta_path):
    sys.meta_path.append(_MirrorFinder())
