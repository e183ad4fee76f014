"""Preflight and installation of surrogates at selected sites, through one transaction.

The mechanism under :func:`sg_stability.patch` (which adds target selection, the live-handle check and the
handle); the analyzer uses it directly to swap recording surrogates in and roll them back.
"""

from __future__ import annotations

import warnings

import torch

from ._errors import AdapterError, PreflightError, Problem, SkippedSitesWarning, raw
from ._handle import SlotRecord, display_path
from ._transaction import Transaction
from .adapter_api import Installed, NeuronSite, PatchOptions
from .plugins import read_native
from .surrogates import Surrogate


def _device_problems(site: NeuronSite, surrogate: Surrogate) -> list[Problem]:
    """Per-neuron parameters on another device than the neuron's own tensors (caught here, not at backward)."""
    own = next(iter([*site.module.parameters(), *site.module.buffers()]), None)
    if own is None:  # e.g. Norse keeps its tensors in the parameter record
        threshold = site.driver.threshold()
        own = threshold if isinstance(threshold, torch.Tensor) else None
    if own is None:
        return []
    return [Problem(site.path, f"per-neuron {name} is on {value.device} but the neuron's tensors are on {own.device}",
                    f"move it first, e.g. {name}=t.to({str(own.device)!r}), or patch before model.to(...) (the "
                    "installed surrogate moves with the model)", site.kind)
            for name, value in surrogate.params().items()
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.device != own.device]


def _shape_problems(site: NeuronSite, surrogate: Surrogate) -> list[Problem]:
    problems = _device_problems(site, surrogate)
    shape = site.driver.neuron_shape()
    if shape is None:
        return problems
    state = (2, *shape)  # a dummy batch dimension in front of the per-neuron shape
    for name, value in surrogate.params().items():
        if not isinstance(value, torch.Tensor) or value.numel() <= 1:
            continue
        try:
            ok = torch.broadcast_shapes(value.shape, state) == torch.Size(state)
        except RuntimeError:
            ok = False
        if not ok:
            problems.append(Problem(
                site.path, f"per-neuron {name} of shape {tuple(value.shape)} does not broadcast to this "
                f"layer's {shape} neurons", f"pass a tensor of shape {shape} (or a scalar)", site.kind))
    return problems


def install(selected: list[tuple[NeuronSite, Surrogate]], options: PatchOptions, strict: bool
            ) -> tuple[Transaction, list[SlotRecord], list[Problem], list[str]]:
    """Preflight every site, then install through one transaction (rolled back if an adapter fails).

    The mechanism under :func:`patch`, which adds target selection, the live-handle check and the handle;
    the analyzer uses it directly to swap recording surrogates in and roll them back.
    Returns the transaction, the slot records, the problems of skipped sites and the adapters' notes.
    """
    problems: list[Problem] = []
    for site, surr in selected:
        problems += _shape_problems(site, surr) + site.driver.problems(surr, site.path, options)
    if problems:
        if strict or len({p.path for p in problems}) == len(selected):
            raise PreflightError(problems, total_sites=len(selected))
        bad = {p.path for p in problems}
        selected = [(s, surr) for s, surr in selected if s.path not in bad]
        warnings.warn(
            "sg_stability: skipped " + "; ".join(p.render() for p in problems), SkippedSitesWarning, stacklevel=3
        )

    tx = Transaction()
    records: list[SlotRecord] = []
    notes: list[str] = []
    for site, surr in selected:
        before = {slot: read_native(obj) for slot, obj in site.driver.current().items()}
        try:
            installed = site.driver.install(surr, tx, site.path, options)
            if not isinstance(installed, Installed):
                raise TypeError(f"{type(site.driver).__name__}.install returned {type(installed).__name__}, "
                                "not sg_stability.adapter_api.Installed")
        except Exception as exc:
            tx.rollback()
            raise AdapterError(
                f"adapter {site.adapter!r} failed while patching {display_path(site.path)} ({site.kind}); "
                "every change was rolled back",
                got=raw(f"{type(exc).__name__}: {exc}"),
                allowed="adapters that install surrogates without raising",
                fix=f"report this to the {site.adapter} adapter's authors; "
                "meanwhile leave the site out with targets=",
            ) from exc
        except BaseException:  # KeyboardInterrupt, SystemExit, ...: undo, then let it through unchanged
            tx.rollback()
            raise
        for slot, obj in installed.objects.items():
            records.append(SlotRecord(site, slot, before[slot], obj, surr))
        if installed.note:
            notes.append(f"{display_path(site.path)}: {installed.note}")
    return tx, records, problems, notes
