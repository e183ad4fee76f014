"""The one-call entry points: find_neurons, patch, unpatch, is_patched.

``patch`` = discover sites through the adapters -> filter by ``targets`` -> preflight every site and
collect all problems -> apply inside a transaction (complete rollback on any failure) -> handle.
"""

from __future__ import annotations

import fnmatch
import glob
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from torch import nn

from . import plugins
from ._errors import (
    AlreadyPatchedError,
    ConfigError,
    NoNeuronsFoundError,
    PartialMatchWarning,
    raw,
)
from ._handle import PatchHandle, display_path, installed_by_live_handle, live_handles, model_lock
from ._install import install
from ._spec import is_spec, surrogates_of
from ._validate import flag, glob_patterns
from .adapter_api import AdapterInfo, NeuronSite, PatchOptions
from .surrogates import Surrogate, get

Targets = (str | Sequence[str] | Sequence[NeuronSite] | Callable[[str, nn.Module], bool]
           | Mapping[str, "str | Surrogate"] | None)


def require_module(model: Any, func: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{func}() needs a torch.nn.Module",
            got=raw(f"{type(model).__module__}.{type(model).__qualname__} object"),
            allowed="an nn.Module holding snnTorch, SpikingJelly or Norse neurons (or neurons of a plugin adapter)",
            fix=f"pass the model itself, e.g. sg.{func}(net, ...)",
        )
    return model


def find_neurons(model: nn.Module) -> list[NeuronSite]:
    """The spiking neuron sites the adapters claim in ``model``, in module order. Changes nothing.

    Shared modules (one module object at several paths) appear once, at their first path.
    """
    require_module(model, "find_neurons")
    sites: list[NeuronSite] = []
    seen: set[int] = set()
    with model_lock(model):  # not while another thread patches it
        modules = list(model.named_modules(remove_duplicate=False))
    for path, module in modules:
        if id(module) in seen or isinstance(module, Surrogate):
            continue
        seen.add(id(module))
        site = plugins.find_neuron(module, path)
        if site is not None:
            sites.append(site)
    return sites


def neuron_sites(model: Any, func: str) -> list[NeuronSite]:
    """``find_neurons`` for a caller that needs at least one site: a four-part error otherwise."""
    require_module(model, func)
    sites = find_neurons(model)
    if not sites:
        raise _no_neurons(model)
    return sites


def _no_neurons(model: nn.Module) -> NoNeuronsFoundError:
    def describe(info: AdapterInfo) -> str:
        version = info.framework_version()
        state = "imported" if info.framework in sys.modules else "not imported"
        return f"{info.name} ({info.framework}{' ' + version if version else ''} {state})"

    adapters = ", ".join(describe(i) for i in plugins.adapter_infos()) or "none"
    seen = Counter(type(m).__name__ for m in model.modules())
    types = ", ".join(f"{name} x{n}" for name, n in seen.most_common(12))
    return NoNeuronsFoundError(
        f"found no spiking neurons in {type(model).__name__} ({sum(seen.values())} modules). "
        f"Adapters loaded: {adapters}. Module types seen: {types}",
        got=raw(type(model).__name__),
        allowed="a model holding neurons an adapter claims (snnTorch modules with spike_grad, ...)",
        fix="if one of these module types is a neuron, install or write an adapter (README 'Writing an "
        "adapter') and register it with sg_stability.plugins.register; check sg_stability.plugins.failures()",
    )


def _as_patterns(targets: Any) -> list[str]:
    return glob_patterns(targets, "targets", allowed="a glob string ('encoder.*'), a list of globs, a callable "
                         "(path, module) -> bool, or a mapping {glob: surrogate}",
                         fix="use the paths shown by sg.find_neurons(model)")


def _select(
    sites: list[NeuronSite], targets: Targets, default: Surrogate | None, strict: bool
) -> list[tuple[NeuronSite, Surrogate]]:
    """Pair each selected site with its surrogate; report patterns that matched nothing."""
    if targets is None:
        assert default is not None
        return [(s, default) for s in sites]
    if callable(targets) and not isinstance(targets, Mapping):
        assert default is not None
        chosen_sites = [s for s in sites if targets(s.path, s.module)]
        if not chosen_sites:
            raise NoNeuronsFoundError(
                f"the targets callable returned False for all {len(sites)} neuron sites",
                got=targets,
                allowed=f"a callable (path, module) -> bool that selects some of: "
                f"{', '.join(display_path(s.path) for s in sites)}",
                fix="check the callable against the paths of sg.find_neurons(model), or leave targets=None for all",
            )
        return [(s, default) for s in chosen_sites]
    if isinstance(targets, Sequence) and targets and all(isinstance(t, NeuronSite) for t in targets):
        assert default is not None
        return [(s, default) for s in _given_sites(sites, cast(Sequence[NeuronSite], targets))]
    if isinstance(targets, Mapping):
        patterns = _as_patterns(list(targets))
        chosen: dict[str, Surrogate | None] = {p: get(v) for p, v in targets.items()}
    else:
        patterns = _as_patterns(cast(str | Sequence[str], targets))  # anything else is rejected there
        chosen = dict.fromkeys(patterns, default)
    selected, used = [], set()
    for site in sites:
        for pattern in patterns:
            if fnmatch.fnmatchcase(site.path, pattern):
                used.add(pattern)
                surrogate = chosen[pattern]
                assert surrogate is not None
                selected.append((site, surrogate))
                break
    unused = [p for p in patterns if p not in used]
    available = ", ".join(display_path(s.path) for s in sites)
    if not selected:
        raise NoNeuronsFoundError(
            f"targets matched none of the {len(sites)} neuron sites",
            got=targets,
            allowed=f"glob patterns over these paths: {available}",
            fix="fix the patterns (fnmatch syntax; '*' also matches dots), or leave targets=None for all",
        )
    if unused:
        what = f"targets pattern(s) {unused} matched no neuron site"
        if strict:
            raise NoNeuronsFoundError(
                what,
                got=unused,
                allowed=f"patterns over these paths: {available}",
                fix="fix or drop those patterns, or pass strict=False to continue with the others",
            )
        warnings.warn(f"sg_stability: {what}; patching the other matches", PartialMatchWarning, stacklevel=3)
    return selected


def _given_sites(sites: list[NeuronSite], given: Sequence[NeuronSite]) -> list[NeuronSite]:
    """The model's sites for sites found earlier (by ``find_neurons``): no glob, so no escaping of paths."""
    known = {id(s.module) for s in sites}
    missing = [g for g in given if id(g.module) not in known]
    if missing:
        raise NoNeuronsFoundError(
            f"{len(missing)} of the given neuron sites are not in this model",
            got=raw(", ".join(display_path(g.path) for g in missing)),
            allowed="sites returned by sg.find_neurons(model) for this same model",
            fix="call sg.find_neurons(model) on the model being patched and pass (some of) its sites",
        )
    wanted = {id(g.module) for g in given}
    return [s for s in sites if id(s.module) in wanted]


def patch(
    model: nn.Module,
    surrogate: str | Surrogate | Mapping[str, Any] | None = None,
    *,
    targets: Targets = None,
    strict: bool = True,
    builtin: bool = True,
    **params: Any,
) -> PatchHandle:
    """Replace the surrogate gradient of every spiking neuron in ``model``, in place, in one call.

    ``surrogate`` is a family name (then ``params`` are its canonical parameters: ``dampening``,
    ``sharpness`` and, for ``q_pseudospike``, ``tail``) or a :class:`~sg_stability.surrogates.Surrogate`.
    ``targets`` restricts the sites: a glob on module paths, a list of globs, a callable
    ``(path, module) -> bool``, or a mapping ``{glob: surrogate}`` that gives different surrogates to
    different sites (first matching glob wins; ``params`` then apply to names in the mapping), or
    sites returned by :func:`find_neurons` (no glob, so paths need no escaping).

    Every site is checked before anything changes; with ``strict=True`` (default) any problem raises
    :class:`PreflightError` and the model is untouched; with ``strict=False`` those sites are skipped
    with a warning. Spikes stay bit-identical (the framework's own Heaviside convention is kept).
    ``builtin=True`` lets an adapter install the framework's own surrogate class when it is exactly the
    requested one (SpikingJelly 2.0 then keeps its fused kernels); ``False`` always installs ours.
    ``surrogate`` may also be a *spec*, the dict :meth:`PatchHandle.to_dict` returns: every site it names gets its
    surrogate back, bit for bit (a spec that does not fit the model is a four-part error naming the first site).
    Returns a :class:`PatchHandle`; ``handle.remove()`` restores the identical original objects.
    """
    require_module(model, "patch")
    strict, builtin = flag(strict, "strict", where="patch"), flag(builtin, "builtin", where="patch")
    spec = surrogate if is_spec(surrogate) else None
    if spec is not None:
        if targets is not None or params:
            raise ConfigError("a patch spec says every site's surrogate itself", got=raw(
                f"targets={targets!r}, {', '.join(params) or 'no parameters'}"), allowed="sg.patch(model, spec)",
                fix="leave out targets= and the parameters (edit the spec to change a site)")
        default = None  # the spec's targets are built from the model's sites, found once below
    elif isinstance(targets, Mapping):
        if surrogate is not None:
            raise ConfigError(
                "both surrogate= and a targets mapping were given",
                got=raw(f"surrogate={surrogate!r}, targets={dict(targets)!r}"),
                allowed="either surrogate= (with optional glob targets) or targets={glob: surrogate}",
                fix="move the surrogate into the mapping, e.g. targets={'*': 'fast_sigmoid', ...}",
            )
        default = None
        targets = {p: get(v, **params) if isinstance(v, str) else get(v) for p, v in targets.items()}
    else:
        if surrogate is None:
            raise ConfigError(
                "patch() needs a surrogate",
                got=None,
                allowed="a family name (e.g. 'fast_sigmoid'), a Surrogate instance, or targets={glob: surrogate}",
                fix='sg.patch(model, surrogate="fast_sigmoid", dampening=0.3, sharpness=2.0)',
            )
        if isinstance(surrogate, Mapping):
            raise ConfigError("a dict passed as the surrogate is read as a patch spec, and this one is not",
                              got=raw(f"dict with keys {sorted(map(str, surrogate))[:6]}"),
                              allowed="a family name, a Surrogate, or the dict handle.to_dict() returned "
                              "(format 'sg_stability.patch')",
                              fix="pass the spec handle.to_dict() wrote, unchanged; for per-layer surrogates "
                              "use targets={glob: surrogate}")
        default = get(surrogate, **params)

    with model_lock(model):  # a second thread sees this patch as live, or waits until it is complete
        sites = neuron_sites(model, "patch")
        if spec is not None:
            targets, builtin = _spec_targets(model, spec, sites)
        selected = _select(sites, targets, default, strict)

        live = [(s, slot) for s, _ in selected for slot, obj in s.driver.current().items()
                if installed_by_live_handle(obj)]
        if live:
            names = ", ".join(display_path(s.path) for s, _ in live)
            raise AlreadyPatchedError(
                f"the model is already patched by sg_stability at {len(live)} site(s): {names}",
                got=raw(f"{type(model).__name__} with a live PatchHandle"),
                allowed="a model (or sites) not patched by a live handle",
                fix="remove the existing patch first: handle.remove() or sg.unpatch(model)",
            )

        tx, records, problems, notes = install(selected, PatchOptions(builtin=builtin), strict)
        try:
            return PatchHandle(model, tx, records, problems, notes, builtin)
        except BaseException:
            tx.rollback()
            raise


def _spec_targets(model: nn.Module, spec: Any, sites: list[NeuronSite]) -> tuple[dict[str, Surrogate], bool]:
    """A spec's surrogates as a ``{escaped path: surrogate}`` mapping (tensors on each neuron's device), and its
    ``builtin``; a four-part error for a spec that does not fit ``sites``."""
    by_site = {s.path: s for s in sites}
    by_path, builtin = surrogates_of(spec, {p: (s.adapter, s.kind) for p, s in by_site.items()})
    for path, s in by_path.items():  # per-neuron and learnable tensors onto the neuron's device
        s.to(_device_of(by_site[path].module) or _device_of(model) or "cpu")
    return {glob.escape(path): s for path, s in by_path.items()}, builtin


def _device_of(module: nn.Module) -> Any:
    """The device of a module's first parameter or buffer, or None when it holds none."""
    return next((t.device for t in (*module.parameters(), *module.buffers())), None)


def unpatch(model: nn.Module, *, force: bool = False) -> int:
    """Remove every live patch of ``model``, newest first. Returns how many handles were removed."""
    require_module(model, "unpatch")
    force = flag(force, "force", where="unpatch")
    with model_lock(model):
        handles = live_handles(model)
        for handle in reversed(handles):
            handle.remove(force=force)
        return len(handles)


def is_patched(model: nn.Module) -> bool:
    """True while ``model`` has a live sg_stability patch (a deepcopy of a patched model has none)."""
    require_module(model, "is_patched")
    return bool(live_handles(model))
