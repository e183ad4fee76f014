"""The plugin contract of sg_stability: every hook a plugin (adapter) may implement.

A plugin is registered under the entry-point group ``sg_stability``::

    [project.entry-points.sg_stability]
    myframework = "my_package.sg_adapter"

and implements some of the hooks below with ``@sg_stability.hookimpl``. The built-in adapters
(snnTorch, ...) are registered in exactly the same way. Arguments may be added to these hooks in
later releases but never removed or renamed; an implementation may accept a subset of them.

Rules for adapters:

- never import the framework at import time (a model that holds the framework's modules implies it
  is already imported: read ``sys.modules``);
- never construct framework neurons and never mutate anything in ``sg_find_neuron``: return
  ``YourDriver(module).site(path)`` (see :class:`~sg_stability.adapter_api.NeuronDriver`) or ``None``;
- declare what the core needs on the driver (``call_pattern()``, ``reset_state()``, ``dynamics()``, ...)
  instead of letting it guess; README "Writing an adapter" has a complete, tested example;
- do every mutation through the :class:`~sg_stability.adapter_api.Transaction` passed to the driver, and
  return :class:`~sg_stability.adapter_api.Installed` from ``install``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from torch import nn

    from .adapter_api import AdapterInfo, NativeReading, NeuronSite, NIRExchange

hookspec = pluggy.HookspecMarker("sg_stability")


@hookspec
def sg_adapter_info() -> AdapterInfo:
    """Describe this adapter: its name, the import name of its framework, tested versions."""


@hookspec(firstresult=True)
def sg_find_neuron(module: nn.Module, path: str) -> NeuronSite | None:
    """Claim ``module`` (found at dotted ``path``) if it is a spiking neuron this adapter drives.

    Return a :class:`~sg_stability.adapter_api.NeuronSite`, or ``None``. The first non-``None`` result
    wins; built-in adapters are ``trylast`` so that a third-party adapter can override them.
    """


@hookspec(firstresult=True)
def sg_read_native(obj: Any) -> NativeReading | None:
    """Read ``obj``, a framework-native surrogate, into the canonical form.

    Return a :class:`~sg_stability.adapter_api.NativeReading` (with the canonical surrogate, or the
    reason there is none) if ``obj`` belongs to this adapter's framework, else ``None``.
    """


@hookspec(firstresult=True)
def sg_save_state(module: nn.Module) -> Callable[[], None] | None:
    """Snapshot the framework's own state that ``module`` keeps outside torch's registries and its tensor
    attributes (e.g. SpikingJelly's ``_memories`` dict), before a recorded run or a training race steps the model.

    Return a function that puts that state back, or ``None`` if this adapter keeps no such state in ``module``.
    Buffers, tensor attributes and the train/eval flag are saved by the core for every module.
    """


@hookspec(firstresult=True)
def sg_nir_exchange(adapter: str) -> NIRExchange | None:
    """The framework's own NIR exporter and importer, when ``adapter`` is this adapter's name (else ``None``):
    what :func:`sg_stability.to_nir` and :func:`sg_stability.from_nir` call."""


@hookspec(historic=True)
def sg_register_surrogates(register: Callable[..., None]) -> None:
    """Add surrogate families: call ``register(cls, aliases=())`` for each
    :class:`~sg_stability.surrogates.Surrogate` subclass (with a unique ``family`` name)."""
