"""Lightning integration: the :class:`SGStability` callback and the :class:`Restorable` LightningModule mixin.

``Trainer(callbacks=[SGStability(stabilize=True, sample=x)])`` runs ``sg.stabilize`` on the LightningModule when
fitting starts (unless it is patched already), attaches :class:`~sg_stability.diagnostics.Diagnostics` and logs
their per-layer metrics to every logger of the trainer at the end of each training epoch, and saves the patch's
spec in each checkpoint (``checkpoint["sg_stability_spec"]``). A LightningModule that also derives from
:class:`Restorable` is re-patched from that spec by ``load_from_checkpoint`` (and on ``Trainer.fit(ckpt_path=)``)
before its weights load, so learnable surrogate parameters load too. Needs ``pip install 'sg-stability[lightning]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:  # pragma: no cover - the test extras install Lightning
    raise ImportError("sg_stability.lightning needs Lightning: pip install 'sg-stability[lightning]' "
                      "(or pip install lightning)") from error
from torch import Tensor, nn

from .._errors import AlreadyPatchedError, ConfigError, SGStabilityWarning
from .._handle import PatchHandle, live_handles
from .._handle import live_spec as spec_of
from .._patching import patch
from .._validate import flag
from ..choosing import stabilize
from ..diagnostics import Diagnostics

__all__ = ["KEY", "Restorable", "SGStability", "restore", "spec_of"]

#: where the patch's spec goes in a Lightning checkpoint
KEY = "sg_stability_spec"


def restore(module: nn.Module, checkpoint: Mapping[str, Any]) -> PatchHandle | None:
    """Patch ``module`` from the spec a checkpoint carries (None when it carries none or ``module`` is patched)."""
    spec = checkpoint.get(KEY)
    if spec is None or live_handles(module):
        return None
    try:
        return patch(module, spec)
    except AlreadyPatchedError as error:  # e.g. the module patches its own network in __init__: that patch stays
        warnings.warn(f"sg_stability.lightning: the checkpoint's surrogates were not applied: {error.what}",
                      SGStabilityWarning, stacklevel=2)
        return None


class Restorable:
    """A LightningModule mixin (``class Net(Restorable, L.LightningModule)``): ``load_from_checkpoint`` and a
    resumed fit re-patch the surrogates the checkpoint's spec names before the weights load."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore(self, checkpoint)  # type: ignore[arg-type]
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]


class SGStability(pl.Callback):
    """Stabilize at fit start (optional), log diagnostics each epoch, save the surrogates' spec in checkpoints.

    ``stabilize=True`` needs ``sample`` (one input batch, as ``sg.stabilize`` takes it); ``stabilize_options``
    go to ``sg.stabilize`` (e.g. ``{"run": ..., "time_dim": 1}``). ``diagnostics=False`` skips the diagnostics;
    ``prefix`` starts their metric names (``sg/<layer>/rate``, ...). After fitting, ``callback.handle`` is the
    patch ``stabilize`` installed (None otherwise) and ``callback.diagnostics`` the diagnostics.
    """

    def __init__(self, *, stabilize: bool = False, sample: Any = None, stabilize_options: Mapping[str, Any] | None
                 = None, diagnostics: bool = True, prefix: str = "sg") -> None:
        self.stabilize = flag(stabilize, "stabilize", where="SGStability")
        if self.stabilize and sample is None:
            raise ConfigError("SGStability(stabilize=True) needs a sample to analyse", got=None,
                              allowed="one input batch, as sg.stabilize(model, sample) takes it",
                              fix="pass sample=next(iter(train_loader))[0]")
        self.sample = sample
        self.stabilize_options = dict(stabilize_options or {})
        self.use_diagnostics = flag(diagnostics, "diagnostics", where="SGStability")
        self.prefix = prefix
        self.handle: PatchHandle | None = None
        self.diagnostics: Diagnostics | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stabilize and not live_handles(pl_module):
            options = {"progress": False, **self.stabilize_options}
            sample = self.sample.to(pl_module.device) if isinstance(self.sample, Tensor) else self.sample
            self.handle = stabilize(pl_module, sample, **options)
        if self.use_diagnostics:  # a new fit starts new diagnostics
            if self.diagnostics is not None:
                self.diagnostics.remove()
            self.diagnostics = Diagnostics(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.diagnostics is None:
            return
        self.diagnostics.end_epoch()
        if self.diagnostics.metrics(self.prefix):
            for logger in trainer.loggers:
                self.diagnostics.log_to(logger, trainer.global_step, prefix=self.prefix)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.diagnostics is not None:
            self.diagnostics.remove()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        spec = spec_of(pl_module)
        if spec is not None:
            checkpoint[KEY] = spec

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        restore(pl_module, checkpoint)
