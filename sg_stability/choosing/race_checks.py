"""What the training race checks where it calls your code: the batches, ``loss_fn``, ``score`` and
``optimizer`` each get a four-part error naming the callable and what it returned, and an exception raised
inside them comes out unchanged, with a note saying where the race was. It also keeps the race traceless: the
global random state and every ``.grad`` are as they were afterwards."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, RaceError, raw


def describe(batch: Any) -> str:
    """A batch in a few words: its structure and every tensor's shape and dtype."""
    if isinstance(batch, Tensor):
        return f"tensor {list(batch.shape)} {str(batch.dtype).removeprefix('torch.')}"
    if isinstance(batch, list | tuple):
        inner = ", ".join(describe(b) for b in batch[:4]) + (", ..." if len(batch) > 4 else "")
        return f"{type(batch).__name__}({inner})"
    if isinstance(batch, dict):
        return "dict(" + ", ".join(f"{k}: {describe(v)}" for k, v in list(batch.items())[:4]) + ")"
    return type(batch).__name__


@contextlib.contextmanager
def calling(what: str) -> Iterator[None]:
    """Your exception comes out as it was raised, with a note saying where in the race it happened."""
    try:
        yield
    except Exception as error:
        error.add_note(f"sg_stability: raised inside {what}")
        raise


def _lone_batch(value: Any, name: str) -> None:
    if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
        raise ConfigError(f"{name} looks like one batch, not a list of batches: each of its {len(value)} tensors "
                          "would be taken as a batch of its own", got=raw(describe(value)),
                          allowed=f"a list of batches, e.g. {name}=[(x, y)] or [(x1, y1), (x2, y2)]",
                          fix=f"wrap it in a list: {name}=[{name}_batch] (a list of tensors is taken as batches)")


def batches_given(value: Any, name: str, *, allow_callable: bool) -> Sequence[Any] | Callable[[int], Any]:
    """The training or validation batches, read once when they are a one-shot iterable (a generator or a
    DataLoader: every candidate then sees the same batches)."""
    if allow_callable and callable(value):
        return value
    if not isinstance(value, Iterable) or isinstance(value, str | bytes | Tensor | dict):
        raise ConfigError(f"{name} must be an iterable of batches", got=raw(type(value).__name__),
                          allowed="a list of batches (or a DataLoader)" + (", or epoch -> batches"
                                                                           if allow_callable else ""),
                          fix=f"pass {name}=[batch, ...]")
    _lone_batch(value, name)
    return value if isinstance(value, Sequence) else list(value)


def epoch_of(batches: Sequence[Any] | Callable[[int], Any], epoch: int) -> list[Any]:
    """One epoch's batches; a ``batches(epoch)`` that returns something else than batches gets an error."""
    if not callable(batches):
        return list(batches)
    with calling(f"batches(epoch={epoch})"):
        got = batches(epoch)
    if not isinstance(got, Iterable) or isinstance(got, str | bytes | Tensor | dict):
        raise ConfigError(f"batches(epoch={epoch}) did not return the epoch's batches", got=raw(describe(got)),
                          allowed="an iterable of batches (a list, a DataLoader, a generator)",
                          fix="return the epoch's batches, e.g. batches=lambda epoch: loader")
    _lone_batch(got, f"batches(epoch={epoch})")
    return list(got)


def validation(value: Any) -> list[Any]:
    got = list(batches_given(value, "val_batches", allow_callable=False))  # type: ignore[arg-type]
    if not got:
        raise ConfigError("val_batches is empty: no candidate could be scored", got=value,
                          allowed="at least one validation batch (an exhausted iterator or DataLoader holds none)",
                          fix="pass val_batches=[batch, ...] as a list, or leave it out to hold out the last "
                          "fifth of the training batches")
    return got


def checked_loss(loss: Any, where: str, *, training: bool) -> Tensor:
    """``loss_fn``'s result: a one-element tensor, with a gradient when it is trained on."""
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else ""
        raise ConfigError(f"loss_fn must return the loss as a scalar tensor ({where})",
                          got=raw(type(loss).__name__ + shape),
                          allowed="a tensor with one element that depends on the model's output",
                          fix="return e.g. F.cross_entropy(model(x), y) (reduce it with .mean() or .sum())")
    if training and not loss.requires_grad and bool(torch.isfinite(loss.detach())):
        raise ConfigError(f"loss_fn returned a loss without a gradient ({where}): training cannot change it",
                          got=raw(f"tensor({float(loss):.4g}, requires_grad=False)"),
                          allowed="a loss computed from model(...)'s output, with the model's parameters "
                          "requiring grad",
                          fix="compute the loss from the model's output inside loss_fn, without torch.no_grad(), "
                          ".detach() or .item()")
    return loss


def validation_losses(model: nn.Module, loss_fn: Callable[[nn.Module, Any], Any], batches: Sequence[Any]
                      ) -> list[float]:
    """``loss_fn`` on every validation batch, checked, in batch order."""
    losses = []
    for b, batch in enumerate(batches):
        with calling(f"loss_fn(model, batch) on validation batch {b} ({describe(batch)})"):
            loss = loss_fn(model, batch)
        losses.append(float(checked_loss(loss, f"validation batch {b}", training=False)))
    return losses


def checked_score(value: Any, where: str) -> float:
    """``score``'s result as a float: a real number, finite."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"score must return a number ({where})", got=raw(f"{value!r} ({type(value).__name__})"),
                          allowed="a real number, higher is better (a float or a one-element tensor)",
                          fix="return e.g. the validation accuracy as a float")
    value = float(value)
    if not math.isfinite(value):
        raise RaceError(f"score returned {value} ({where}), although the model's weights and validation loss are "
                        "finite: candidates cannot be ranked on it", got=value,
                        allowed="a finite number, higher is better",
                        fix="check the score function (a division by zero, or an empty validation set?)")
    return value


def checked_optimizer(opt: Any, model: nn.Module) -> torch.optim.Optimizer:
    """``optimizer(model)``'s result: an optimizer over this model's parameters and no others."""
    if not isinstance(opt, torch.optim.Optimizer):
        raise ConfigError("optimizer(model) must return a torch optimizer", got=raw(describe(opt)),
                          allowed="a torch.optim.Optimizer built over model.parameters()",
                          fix="pass optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)")
    own = {id(p) for p in model.parameters()}
    held = [p for group in opt.param_groups for p in group["params"]]
    foreign = sum(id(p) not in own for p in held)
    if foreign or not held:
        raise ConfigError("optimizer(model) must train the model it is given: "
                          + (f"{foreign} of its {len(held)} tensors are not this model's parameters" if foreign
                             else "it holds no parameters"),
                          got=raw(f"{type(opt).__name__} over {len(held)} tensors"),
                          allowed="an optimizer over the model's own parameters (it is rebuilt for every candidate)",
                          fix="build it from the argument: optimizer=lambda m: torch.optim.Adam(m.parameters())")
    return opt


def finite_norm(tensors: Iterable[Tensor]) -> Tensor:
    """One boolean tensor: every value of every tensor is finite (one device sync when it is read)."""
    tensors = [t.detach() for t in tensors]
    if not tensors:
        return torch.tensor(True)
    return torch.isfinite(torch.nn.utils.get_total_norm(tensors, norm_type=float("inf")))


@contextlib.contextmanager
def leaves_no_trace(model: nn.Module) -> Iterator[None]:
    """The global random state (CPU and the model's CUDA devices) and every parameter's ``.grad`` are put back
    when the race ends, however it ends."""
    grads = [(p, p.grad) for p in model.parameters()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for p, g in grads:
            p.grad = g
