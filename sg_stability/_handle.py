"""PatchHandle: what ``sg.patch`` returns -- the record of one patch and the way back."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

from torch import nn

from ._errors import NotCopyableError, PatchConflictError, Problem, raw
from ._names import short_names, shortened_note
from ._spec import spec_of
from ._transaction import Change, Transaction, current_value
from ._validate import flag
from .adapter_api import NativeReading, NeuronSite
from .surrogates import Surrogate

# model -> live handles (newest last); surrogates installed by live handles
_LIVE: weakref.WeakKeyDictionary[nn.Module, list[PatchHandle]] = weakref.WeakKeyDictionary()
_INSTALLED: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that patching, removing and recorded runs of ``model`` hold: one thread at a time changes a
    model's surrogates (a second thread then sees the first one's patch as live)."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@dataclass(frozen=True)
class SlotRecord:
    """One surrogate slot of one site: what was there and what sg.patch put there."""

    site: NeuronSite
    slot: str
    before: NativeReading
    after: object
    requested: Surrogate | None = None  # what the patch asked for (``after`` may be the framework's own class)

    @property
    def path(self) -> str:
        return display_path(self.site.path) if len(self.site.driver.slots) == 1 else \
            f"{display_path(self.site.path)}.{self.slot}"


def display_path(path: str) -> str:
    """A site path as users see it: the root module is "(model)"."""
    return path or "(model)"


_SYMBOL = {"dampening": "γ", "sharpness": "β", "tail": "q"}


def _short(obj: object) -> str:
    if isinstance(obj, Surrogate):
        d = obj.params()
        parts = [f"{_SYMBOL[k]}={_num(v)}" for k, v in d.items()]
        return f"{obj.family}({', '.join(parts)})"
    return repr(obj)


def _num(v: Any) -> str:
    if isinstance(v, nn.Parameter):
        return "learnable" if v.numel() > 1 else f"{v.item():.4g}(learnable)"
    if hasattr(v, "numel"):
        return f"per-neuron{tuple(v.shape)}" if v.numel() > 1 else f"{v.item():.4g}"
    return f"{v:.4g}"


class PatchHandle:
    """The record of one :func:`sg_stability.patch` call.

    ``remove()`` restores the identical original objects (idempotent); the handle is also a context
    manager that removes the patch on exit. Weights are never touched by a surrogate patch.
    """

    def __init__(
        self,
        model: nn.Module,
        tx: Transaction,
        records: list[SlotRecord],
        skipped: list[Problem],
        notes: list[str],
        builtin: bool = True,
    ) -> None:
        self._model_ref = weakref.ref(model)
        self.builtin = builtin
        self._tx = tx
        self.records: tuple[SlotRecord, ...] = tuple(records)
        self.skipped: tuple[Problem, ...] = tuple(skipped)
        self.notes: tuple[str, ...] = tuple(notes)
        self._removed = False
        self._path_of = {id(r.site.module): r.site.path for r in records}
        _LIVE.setdefault(model, []).append(self)
        for r in records:
            if isinstance(r.after, nn.Module):
                _INSTALLED.add(r.after)

    @classmethod
    def taking_over(cls, handle: PatchHandle, **fields: Any) -> Self:
        """A handle of this class (a subclass that adds what chose the patch: ``fields``) that takes over
        ``handle``'s live patch; ``handle`` is spent (its ``remove()`` does nothing)."""
        new = cls.__new__(cls)
        new.__dict__.update(handle.__dict__)
        new.__dict__.update(fields)
        model = handle._model_ref()
        handles = _LIVE.get(model, []) if model is not None else []
        handles[:] = [new if h is handle else h for h in handles]
        handle._removed = True
        return new

    # -- inspection -------------------------------------------------------------------------------------
    @property
    def sites(self) -> tuple[NeuronSite, ...]:
        """The patched neuron sites, in model order."""
        seen: dict[int, NeuronSite] = {}
        for r in self.records:
            seen.setdefault(id(r.site), r.site)
        return tuple(seen.values())

    @property
    def surrogates(self) -> dict[str, object]:
        """Installed surrogate objects by site path (``path.slot`` for neurons with several slots)."""
        return {r.path: r.after for r in self.records}

    def to_dict(self) -> dict[str, Any]:
        """What this patch installed at every site, as JSON-serialisable data (a *spec*): family, parameters
        (per-neuron tensors and learnable flags included), the Heaviside convention, how it was installed (ours
        or the framework's own class) and the site's path. ``sg.patch(fresh_model, spec)`` reproduces the same
        surrogates bit for bit on a model of the same architecture. Save it next to the ``state_dict``."""
        seen: dict[int, tuple[str, str, str, object, Surrogate]] = {}
        for r in self.records:
            requested = r.requested if r.requested is not None else r.after
            if id(r.site) not in seen and isinstance(requested, Surrogate):
                seen[id(r.site)] = (r.site.path, r.site.adapter, r.site.kind, r.after, requested)
        return spec_of(list(seen.values()), self.builtin)

    @property
    def removed(self) -> bool:
        return self._removed

    def summary(self) -> str:
        by_adapter: dict[str, int] = {}
        for site in self.sites:
            by_adapter[site.adapter] = by_adapter.get(site.adapter, 0) + 1
        counts = ", ".join(f"{k} {v}" for k, v in by_adapter.items())
        state = "removed" if self._removed else "active"
        skipped = len({p.path for p in self.skipped})
        lines = [f"sg_stability patch ({state}): {len(self.sites)} neuron sites patched ({counts}), {skipped} skipped"]
        rows = [("site", "kind", "before", "after")]
        sources: dict[str, int] = {}  # how each "before" was read: long, and shared by many rows -> footnotes
        shown = short_names([r.path for r in self.records], 40)
        for r in self.records:
            before = _short(r.before.surrogate) if r.before.surrogate is not None else "(no canonical form)"
            mark = sources.setdefault(r.before.source, len(sources) + 1)
            rows.append((shown[r.path], r.site.kind, f"{before} [{mark}]", _short(r.after)))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
                         + "  " + row[3])
        lines.extend(f"  [{k}] before: {source}" for source, k in sources.items())
        note = shortened_note(shown)
        if note:
            lines.append(f"  {note}: handle.sites holds the full paths")
        for p in self.skipped:
            lines.append(f"  skipped {p.render()}")
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.append("Weights were not changed. remove() puts the original surrogate objects back.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "removed" if self._removed else "active"
        return f"<PatchHandle {state}: {len(self.sites)} sites>"

    # -- undo -------------------------------------------------------------------------------------------
    def remove(self, *, force: bool = False) -> bool:
        """Restore every original object. Returns False (and does nothing) if already removed.

        Raises :class:`PatchConflictError` if something else replaced a patched attribute since, unless
        ``force=True`` (then the original is restored anyway and the other change is lost).
        """
        flag(force, "force", where="remove")
        model = self._model_ref()
        with model_lock(model) if model is not None else contextlib.nullcontext():
            return self._remove(force)

    def _remove(self, force: bool) -> bool:
        if self._removed:
            return False
        conflicts = [c for c in self._tx.recorded() if not c.is_current()]
        if conflicts and not force:
            raise PatchConflictError(
                f"cannot remove the patch: {len(conflicts)} patched attribute(s) changed after sg.patch()",
                got=raw("; ".join(self._conflict_text(c) for c in conflicts)),
                allowed="attributes that still hold the surrogate sg.patch installed",
                fix="undo the later change first (put the sg_stability surrogate back), or call "
                "remove(force=True) to restore the originals anyway (the later change is lost)",
            )
        self._tx.rollback()
        self._removed = True
        model = self._model_ref()
        if model is not None and model in _LIVE:
            handles = _LIVE[model]
            if self in handles:
                handles.remove(self)
            if not handles:
                del _LIVE[model]
        for r in self.records:
            if isinstance(r.after, nn.Module):
                _INSTALLED.discard(r.after)
        return True

    def _conflict_text(self, change: Change) -> str:
        path = display_path(self._path_of.get(id(change.owner), type(change.owner).__name__))
        found = current_value(change.owner, change.name)
        return f"{path}.{change.name} holds {_short(found)} instead of {_short(change.new)}"

    def __copy__(self) -> Self:
        raise _not_copyable("copied", "copy.copy(handle)")

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        raise _not_copyable("copied", "copy.deepcopy(handle)")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise _not_copyable("pickled", "pickle.dumps(handle) / torch.save(handle)")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def live_handles(model: nn.Module) -> list[PatchHandle]:
    return list(_LIVE.get(model, ()))


def live_spec(model: nn.Module) -> dict[str, Any] | None:
    """The spec (:meth:`PatchHandle.to_dict`) of every live patch of ``model`` together, or None unpatched."""
    specs = [h.to_dict() for h in live_handles(model)]
    if not specs:
        return None
    return {**specs[0], "builtin": all(s["builtin"] for s in specs), "sites": [e for s in specs for e in s["sites"]]}


def installed_by_live_handle(obj: object) -> bool:
    return isinstance(obj, nn.Module) and obj in _INSTALLED


def iter_live() -> Iterator[PatchHandle]:  # for tests and diagnostics
    for handles in list(_LIVE.values()):
        yield from handles


def _not_copyable(done: str, call: str) -> NotCopyableError:
    return NotCopyableError(f"a patch handle cannot be {done}: it stands for the live patch on one model object, "
                            "and a copy would remove nothing (or remove that patch twice)", got=raw(call),
                            allowed="the handle itself: keep a reference to it, remove() it once",
                            fix="to patch a copy of the model, copy the model and call sg.patch on the copy; to save "
                            "a patched model, save model.state_dict() (the surrogates add no keys) and patch again "
                            "after loading")
