"""The bad-input battery: every public function and constructor, fed wrong values, raises a four-part error (what,
got -- naming the value received --, allowed, fix) and leaves the model exactly as it was: the same objects at every
attribute, an equal ``state_dict``, no live patch. ``BaseException`` raised from inside an adapter, a ``run`` and an
initialiser leaves it the same way.

Model-level cases run on the same small recurrent SHD network in each of the three frameworks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import sg_stability as sg
from sg_stability import schedules as sch
from sg_stability import sparsity
from sg_stability.testing import module_fingerprint, verify_patch
from tests.zoo import shd_networks

FRAMEWORKS = ["snntorch", "spikingjelly", "norse"]
DIMS = shd_networks.TINY
NAN, INF = math.nan, math.inf
make = shd_networks.tiny


def snapshot(model: nn.Module) -> tuple[Any, dict[str, torch.Tensor], int]:
    return (module_fingerprint(model), {k: v.detach().clone() for k, v in model.state_dict().items()},
            len(list(sg._handle.live_handles(model))))


def assert_unchanged(model: nn.Module, before: tuple[Any, dict[str, torch.Tensor], int]) -> None:
    fingerprint, state, live = before
    assert module_fingerprint(model) == fingerprint, "an attribute no longer holds the identical object"
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(now[k].nan_to_num(), v.nan_to_num()) and bool(
            (now[k].isnan() == v.isnan()).all()), f"state_dict[{k!r}] changed"
    assert len(sg._handle.live_handles(model)) == live, "a patch was left behind"


def four_part(err: BaseException, needle: str | None) -> None:
    msg = str(err)
    lines = [line.strip() for line in msg.splitlines()]
    for part in ("got:", "allowed:", "fix:"):
        assert any(line.startswith(part) for line in lines), f"no {part!r} part in:\n{msg}"
    if needle is not None:
        got = next(line for line in lines if line.startswith("got:"))
        assert needle in got or needle in msg, f"{needle!r} not named in:\n{msg}"


def run_as_trained(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _patched(m: nn.Module, x: torch.Tensor) -> None:
    sg.patch(m, "fast_sigmoid", builtin=False)


def _schedule() -> sch.Schedule:
    return sch.LinearRamp(4)


# (id, call(model, x), error class, a text that names the value received). The call may patch first: the state
# checked is the one right before the failing call, recorded by `arrange`.
Case = tuple[str, Callable[[nn.Module, torch.Tensor], Any], type[BaseException], str | None]

MODEL_CASES: list[Case] = [
    # -- patch
    ("patch-no-surrogate", lambda m, x: sg.patch(m), sg.ConfigError, "None"),
    ("patch-surrogate-int", lambda m, x: sg.patch(m, 42), sg.ConfigError, "42"),
    ("patch-unknown-family", lambda m, x: sg.patch(m, "atn"), sg.UnknownSurrogateError, "atn"),
    ("patch-dampening-0", lambda m, x: sg.patch(m, "atan", dampening=0.0), sg.ConfigError, "0.0"),
    ("patch-dampening-neg", lambda m, x: sg.patch(m, "atan", dampening=-1), sg.ConfigError, "-1"),
    ("patch-dampening-nan", lambda m, x: sg.patch(m, "atan", dampening=NAN), sg.ConfigError, "nan"),
    ("patch-dampening-inf", lambda m, x: sg.patch(m, "atan", dampening=INF), sg.ConfigError, "inf"),
    ("patch-dampening-huge-int", lambda m, x: sg.patch(m, "atan", dampening=10**400), sg.ConfigError, "1000000"),
    ("patch-dampening-str", lambda m, x: sg.patch(m, "atan", dampening="0.3"), sg.ConfigError, "'0.3'"),
    ("patch-dampening-range", lambda m, x: sg.patch(m, "atan", dampening=1e5), sg.ConfigError, "100000"),
    ("patch-sharpness-range", lambda m, x: sg.patch(m, "atan", sharpness=1e9), sg.ConfigError, "1000000000"),
    ("patch-sharpness-int-tensor", lambda m, x: sg.patch(m, "atan", sharpness=torch.tensor([1, 2])),
     sg.ConfigError, "int64"),
    ("patch-sharpness-neg-tensor", lambda m, x: sg.patch(m, "atan", sharpness=torch.tensor([1.0, -2.0])),
     sg.ConfigError, "-2.0"),
    ("patch-sharpness-nan-tensor", lambda m, x: sg.patch(m, "atan", sharpness=torch.tensor([NAN])),
     sg.ConfigError, "nan"),
    ("patch-dampening-meta", lambda m, x: sg.patch(m, "atan", dampening=torch.ones(8, device="meta")),
     sg.ConfigError, "meta"),
    ("patch-tail-low", lambda m, x: sg.patch(m, "q_pseudospike", tail=0.5), sg.ConfigError, "0.5"),
    ("patch-tail-on-atan", lambda m, x: sg.patch(m, "atan", tail=1.5), sg.ConfigError, "tail"),
    ("patch-bogus-param", lambda m, x: sg.patch(m, "atan", slope=25), sg.ConfigError, "slope"),
    ("patch-targets-int", lambda m, x: sg.patch(m, "atan", targets=42), sg.ConfigError, "42"),
    ("patch-targets-nomatch", lambda m, x: sg.patch(m, "atan", targets="nomatch*"), sg.NoNeuronsFoundError,
     "nomatch"),
    ("patch-targets-mixed", lambda m, x: sg.patch(m, "atan", targets=["*", 3]), sg.ConfigError, "3"),
    ("patch-targets-empty", lambda m, x: sg.patch(m, "atan", targets=[]), sg.ConfigError, "[]"),
    ("patch-targets-callable-none", lambda m, x: sg.patch(m, "atan", targets=lambda p, mod: False),
     sg.NoNeuronsFoundError, "lambda"),
    ("patch-targets-partial", lambda m, x: sg.patch(m, "atan", targets=["lif_rec", "nope"]),
     sg.NoNeuronsFoundError, "nope"),
    ("patch-builtin-str", lambda m, x: sg.patch(m, "atan", builtin="no"), sg.ConfigError, "'no'"),
    ("patch-strict-str", lambda m, x: sg.patch(m, "atan", strict="yes"), sg.ConfigError, "'yes'"),
    ("patch-both-surrogate-and-mapping", lambda m, x: sg.patch(m, "atan", targets={"*": "gaussian"}),
     sg.ConfigError, "atan"),
    ("patch-mapping-bad-family", lambda m, x: sg.patch(m, targets={"*": "gaus"}), sg.UnknownSurrogateError, "gaus"),
    ("patch-twice", lambda m, x: (_patched(m, x), sg.patch(m, "atan")), sg.AlreadyPatchedError, None),
    # -- analyze / candidates
    ("analyze-probes-str", lambda m, x: sg.analyze(m, x, probes="4"), sg.ConfigError, "'4'"),
    ("analyze-probes-0", lambda m, x: sg.analyze(m, x, probes=0), sg.ConfigError, "0"),
    ("analyze-seed-str", lambda m, x: sg.analyze(m, x, seed="a"), sg.ConfigError, "'a'"),
    ("analyze-seed-float", lambda m, x: sg.analyze(m, x, seed=1.5), sg.ConfigError, "1.5"),
    ("analyze-target-neg", lambda m, x: sg.analyze(m, x, target=-1), sg.ConfigError, "-1"),
    ("analyze-target-inf", lambda m, x: sg.analyze(m, x, target=INF), sg.ConfigError, "inf"),
    ("analyze-target-nan", lambda m, x: sg.analyze(m, x, target=NAN), sg.ConfigError, "nan"),
    ("analyze-target-zero-layer", lambda m, x: sg.analyze(m, x, target={"lif_rec": 0.0}), sg.ConfigError, "0.0"),
    ("analyze-target-unknown-layer", lambda m, x: sg.analyze(m, x, target={"lif_recc": 1.0}), sg.ConfigError,
     "lif_recc"),
    ("analyze-target-key-int", lambda m, x: sg.analyze(m, x, target={3: 1.0}), sg.ConfigError, "3"),
    ("analyze-sample-nan", lambda m, x: sg.analyze(m, x * NAN), sg.ConfigError, "NaN"),
    ("analyze-sample-inf", lambda m, x: sg.analyze(m, x.clone().index_fill_(0, torch.tensor([0]), INF)),
     sg.ConfigError, "inf"),
    ("analyze-sample-empty", lambda m, x: sg.analyze(m, x[:, :0]), sg.ConfigError, "(6, 0, 12)"),
    ("analyze-sample-meta", lambda m, x: sg.analyze(m, x.to("meta")), sg.ConfigError, "meta"),
    ("analyze-sample-wrong-shape", lambda m, x: sg.analyze(m, x[..., :5]), sg.ConfigError, "(6, 2, 5)"),
    ("analyze-surrogate-unknown", lambda m, x: sg.analyze(m, x, surrogate="nope"), sg.UnknownSurrogateError,
     "nope"),
    ("analyze-time-dim-big", lambda m, x: sg.analyze(m, x, time_dim=5), sg.ConfigError, "5"),
    ("analyze-time-dim-str", lambda m, x: sg.analyze(m, x, time_dim="1"), sg.ConfigError, "'1'"),
    ("analyze-time-dim-neg", lambda m, x: sg.analyze(m, x, time_dim=-1), sg.ConfigError, "-1"),
    ("analyze-time-dim-unrunnable", lambda m, x: sg.analyze(m, x, time_dim=2), sg.ConfigError, "(6, 2, 12)"),
    ("analyze-time-dim-mismatch", lambda m, x: sg.analyze(m, x, time_dim=1, run=lambda mm, xx: mm(torch.cat([xx, xx]))),
     sg.ConfigError, "time_dim=1"),
    ("analyze-run-int", lambda m, x: sg.analyze(m, x, run=42), sg.ConfigError, "42"),
    ("analyze-run-raises", lambda m, x: sg.analyze(m, x, run=lambda mm, xx: 1 / 0), sg.ConfigError, "shape"),
    ("candidates-seed-str", lambda m, x: sg.candidates(m, x, seed="x"), sg.ConfigError, "'x'"),
    ("candidates-family", lambda m, x: sg.candidates(m, x, family="nope"), sg.UnknownSurrogateError, "nope"),
    # -- stabilize
    ("stabilize-init-unknown", lambda m, x: sg.stabilize(m, x, init="glorot"), sg.ConfigError, "glorot"),
    ("stabilize-init-options-bogus", lambda m, x: sg.stabilize(m, x, init="at_threshold",
                                                                 init_options={"bogus": 1}), sg.ConfigError, "bogus"),
    ("stabilize-init-options-alone", lambda m, x: sg.stabilize(m, x, init_options={"backup": True}),
     sg.ConfigError, "backup"),
    ("stabilize-init-options-str", lambda m, x: sg.stabilize(m, x, init="rate", init_options="fast"),
     sg.ConfigError, "fast"),
    ("stabilize-target-0", lambda m, x: sg.stabilize(m, x, target=0), sg.ConfigError, "0"),
    ("stabilize-probes", lambda m, x: sg.stabilize(m, x, probes=-1), sg.ConfigError, "-1"),
    ("stabilize-batches-alone", lambda m, x: sg.stabilize(m, x, batches=[x]), sg.ConfigError, "batches"),
    ("stabilize-epochs-0", lambda m, x: sg.stabilize(m, x, batches=[x], loss_fn=lambda mm, b: mm(b).sum(),
                                                       epochs=0), sg.ConfigError, "0"),
    ("stabilize-lr-neg", lambda m, x: sg.stabilize(m, x, batches=[x], loss_fn=lambda mm, b: mm(b).sum(), lr=-1),
     sg.ConfigError, "-1"),
    ("stabilize-progress-str", lambda m, x: sg.stabilize(m, x, progress="yes"), sg.ConfigError, "'yes'"),
    ("stabilize-family", lambda m, x: sg.stabilize(m, x, family="nope"), sg.UnknownSurrogateError, "nope"),
    ("stabilize-rate-tolerance", lambda m, x: sg.stabilize(m, x, init="rate", init_options={"tolerance": "a"}),
     sg.ConfigError, "'a'"),
    ("stabilize-rate-max-steps", lambda m, x: sg.stabilize(m, x, init="rate", init_options={"max_steps": "10"}),
     sg.ConfigError, "'10'"),
    ("stabilize-fluctuation-xi", lambda m, x: sg.stabilize(m, x, init="fluctuation", init_options={"xi": 0}),
     sg.ConfigError, "0"),
    ("stabilize-time-dim", lambda m, x: sg.stabilize(m, x, time_dim="x"), sg.ConfigError, "'x'"),
    ("stabilize-sample-nan", lambda m, x: sg.stabilize(m, x * NAN, init="at_threshold"), sg.ConfigError, "NaN"),
    # -- initialisers
    ("rate-target-high", lambda m, x: sg.init.calibrate_rate(m, x, target_rate=1.5), sg.ConfigError, "1.5"),
    ("rate-target-nan", lambda m, x: sg.init.calibrate_rate(m, x, target_rate=NAN), sg.ConfigError, "nan"),
    ("rate-tolerance-0", lambda m, x: sg.init.calibrate_rate(m, x, tolerance=0), sg.ConfigError, "0"),
    ("rate-max-steps-0", lambda m, x: sg.init.calibrate_rate(m, x, max_steps=0), sg.ConfigError, "0"),
    ("rate-max-steps-str", lambda m, x: sg.init.calibrate_rate(m, x, max_steps="10"), sg.ConfigError, "'10'"),
    ("rate-backup-str", lambda m, x: sg.init.calibrate_rate(m, x, backup="yes"), sg.ConfigError, "'yes'"),
    ("rate-progress-int", lambda m, x: sg.init.calibrate_rate(m, x, progress=1), sg.ConfigError, "1"),
    ("fluct-mu-nan", lambda m, x: sg.init.fluctuation(m, x, mu_u=NAN), sg.ConfigError, "nan"),
    ("fluct-mu-str", lambda m, x: sg.init.fluctuation(m, x, mu_u="thresh"), sg.ConfigError, "thresh"),
    ("fluct-sigma-nan", lambda m, x: sg.init.fluctuation(m, x, sigma_u=NAN), sg.ConfigError, "nan"),
    ("fluct-sigma-neg", lambda m, x: sg.init.fluctuation(m, x, sigma_u=-1.0), sg.ConfigError, "-1.0"),
    ("fluct-xi-0", lambda m, x: sg.init.fluctuation(m, x, xi=0), sg.ConfigError, "0"),
    ("fluct-xi-inf", lambda m, x: sg.init.fluctuation(m, x, xi=INF), sg.ConfigError, "inf"),
    ("fluct-share-0", lambda m, x: sg.init.fluctuation(m, x, feedforward_share=0), sg.ConfigError, "0"),
    ("fluct-share-big", lambda m, x: sg.init.fluctuation(m, x, feedforward_share=1.5), sg.ConfigError, "1.5"),
    ("fluct-sample-nan", lambda m, x: sg.init.fluctuation(m, x * NAN), sg.ConfigError, "NaN"),
    ("at-threshold-backup", lambda m, x: sg.init.at_threshold(m, x, backup="no"), sg.ConfigError, "'no'"),
    ("variance-flow-backup", lambda m, x: sg.init.variance_flow(m, x, backup=1), sg.ConfigError, "1"),
    ("initialize-unknown", lambda m, x: sg.init.initialize(m, x, "glorot"), sg.ConfigError, "glorot"),
    ("initialize-bogus-option", lambda m, x: sg.init.initialize(m, x, "rate", bogus=1), sg.ConfigError, "bogus"),
    # -- tune
    ("tune-epochs-0", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), epochs=0),
     sg.ConfigError, "0"),
    ("tune-loss-int", lambda m, x: sg.tune(m, x, [x, x], loss_fn=42), sg.ConfigError, "42"),
    ("tune-batches-empty", lambda m, x: sg.tune(m, x, [], loss_fn=lambda mm, b: mm(b).sum()), sg.ConfigError,
     "[]"),
    ("tune-score", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), score="acc"),
     sg.ConfigError, "acc"),
    ("tune-lr-0", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), lr=0), sg.ConfigError,
     "0"),
    ("tune-seed-str", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), seed="a"),
     sg.ConfigError, "'a'"),
    ("tune-optimizer-int", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), optimizer=42),
     sg.ConfigError, "42"),
    ("tune-keep-weights-str", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(),
                                                    keep_weights="yes"), sg.ConfigError, "'yes'"),
    ("tune-candidates-str", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), candidates="atan"),
     sg.ConfigError, "atan"),
    ("tune-candidates-int", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), candidates=[42]),
     sg.ConfigError, "42"),
    ("tune-batches-int", lambda m, x: sg.tune(m, x, 42, loss_fn=lambda mm, b: mm(b).sum()), sg.ConfigError, "int"),
    ("tune-val-batches-int", lambda m, x: sg.tune(m, x, [x, x], loss_fn=lambda mm, b: mm(b).sum(), val_batches=42),
     sg.ConfigError, "int"),
    ("tune-loss-not-a-tensor", lambda m, x: sg.tune(m, x, [x, x, x], loss_fn=lambda mm, b: "low", epochs=1,
                                                     candidates=["atan", "gaussian"], progress=False),
     sg.ConfigError, "str"),
    ("tune-loss-not-scalar", lambda m, x: sg.tune(m, x, [x, x, x], loss_fn=lambda mm, b: mm(b), epochs=1,
                                                   candidates=["atan", "gaussian"], progress=False),
     sg.ConfigError, "Tensor of shape"),
    ("remove-force-str", lambda m, x: sg.patch(m, "atan").remove(force="yes"), sg.ConfigError, "'yes'"),
    ("unpatch-force-str", lambda m, x: sg.unpatch(m, force="yes"), sg.ConfigError, "'yes'"),
    ("report-plot-path", lambda m, x: sg.analyze(m, x).plot(42), sg.ConfigError, "42"),
    ("diag-plot-path", lambda m, x: sg.diagnostics.Diagnostics(m).plot(42), sg.ConfigError, "42"),
    # -- sparsity, annealing, diagnostics on a model
    ("monitor-layers-int", lambda m, x: sparsity.RateMonitor(m, layers=[1]), sg.ConfigError, "1"),
    ("monitor-layers-nomatch", lambda m, x: sparsity.RateMonitor(m, layers="nope*"), sg.ConfigError, "nope"),
    ("monitor-sync-str", lambda m, x: sparsity.RateMonitor(m, sync="yes"), sg.ConfigError, "'yes'"),
    ("anneal-sharpness-unpatched", lambda m, x: sg.anneal.SharpnessAnnealing(m, 1.0, 4.0, _schedule()),
     sg.ConfigError, "framework surrogates"),
    ("anneal-sharpness-start-0", lambda m, x: (_patched(m, x), sg.anneal.SharpnessAnnealing(m, 0, 4.0, _schedule())),
     sg.ConfigError, "0"),
    ("anneal-sharpness-tiny", lambda m, x: (_patched(m, x), sg.anneal.SharpnessAnnealing(m, 1e-300, 4.0,
                                                                                       _schedule())),
     sg.ConfigError, "1e-300"),
    ("anneal-sharpness-huge", lambda m, x: (_patched(m, x), sg.anneal.SharpnessAnnealing(m, 1.0, 1e300,
                                                                                       _schedule())),
     sg.ConfigError, "1e+300"),
    ("anneal-sharpness-schedule-str", lambda m, x: (_patched(m, x), sg.anneal.SharpnessAnnealing(m, 1.0, 4.0,
                                                                                                "linear")),
     sg.ConfigError, "'linear'"),
    ("anneal-threshold-nan", lambda m, x: sg.anneal.ThresholdAnnealing(m, NAN, _schedule()), sg.ConfigError, "nan"),
    ("anneal-threshold-neg", lambda m, x: sg.anneal.ThresholdAnnealing(m, -1.0, _schedule()), sg.ConfigError,
     "-1.0"),
    ("noise-std-nan", lambda m, x: sg.anneal.NoiseInjection(m, NAN, _schedule()), sg.ConfigError, "nan"),
    ("noise-std-0", lambda m, x: sg.anneal.NoiseInjection(m, 0.0, _schedule()), sg.ConfigError, "0.0"),
    ("noise-std-inf", lambda m, x: sg.anneal.NoiseInjection(m, INF, _schedule()), sg.ConfigError, "inf"),
    ("diag-active-every-0", lambda m, x: sg.diagnostics.Diagnostics(m, active_every=0), sg.ConfigError, "0"),
    ("diag-active-every-str", lambda m, x: sg.diagnostics.Diagnostics(m, active_every="4"), sg.ConfigError, "'4'"),
    ("diag-gradients-str", lambda m, x: sg.diagnostics.Diagnostics(m, gradients="yes"), sg.ConfigError, "'yes'"),
    # -- verify_patch
    ("verify-run-tuple", lambda m, x: verify_patch(m, lambda mm: (mm(x), 1)), sg.ConfigError, "tuple"),
    ("verify-run-int", lambda m, x: verify_patch(m, 42), sg.ConfigError, "42"),
    ("verify-family", lambda m, x: verify_patch(m, lambda mm: mm(x), "nope"), sg.UnknownSurrogateError, "nope"),
    ("verify-raise-flag", lambda m, x: verify_patch(m, lambda mm: mm(x), raise_on_failure="yes"), sg.ConfigError,
     "'yes'"),
    ("verify-wrong-shape-dampening", lambda m, x: verify_patch(m, lambda mm: mm(x), dampening=torch.ones(5)),
     sg.SGStabilityError, "(5,)"),  # a PreflightError where the adapter knows the layer's shape
]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("call", "error", "needle"), [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_bad_input_on_a_model(framework, call, error, needle):
    model, x = make(framework)
    recorded: list[Any] = []

    def arrange(m: nn.Module, xx: torch.Tensor) -> Any:
        # cases that patch first ("(setup, failing call)") are checked against the model after the setup
        original = sg.patch

        def recording_patch(*args: Any, **kwargs: Any) -> Any:
            handle = original(*args, **kwargs)
            recorded.append(snapshot(m))
            return handle

        sg.patch = recording_patch
        try:
            return call(m, xx)
        finally:
            sg.patch = original

    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as info:
            arrange(model, x)
    four_part(info.value, needle)
    assert_unchanged(model, recorded[0] if recorded else before)
    sg.unpatch(model, force=True)


# -- cases without a model ------------------------------------------------------------------------------------------

PLAIN_CASES: list[Case] = [
    ("find-neurons-str", lambda m, x: sg.find_neurons("model"), sg.ConfigError, "str"),
    ("unpatch-int", lambda m, x: sg.unpatch(42), sg.ConfigError, "int"),
    ("is-patched-none", lambda m, x: sg.is_patched(None), sg.ConfigError, "NoneType"),
    ("patch-not-a-module", lambda m, x: sg.patch([1, 2], "atan"), sg.ConfigError, "list"),
    ("from-native-int", lambda m, x: sg.from_native(42), sg.NotConvertibleError, "int"),
    ("surrogates-from-native-int", lambda m, x: sg.surrogates.from_native(42), sg.NotConvertibleError, "int"),
    ("get-int", lambda m, x: sg.surrogates.get(42), sg.ConfigError, "42"),
    ("get-unknown", lambda m, x: sg.surrogates.get("sigmod"), sg.UnknownSurrogateError, "sigmod"),
    ("get-tail-on-atan", lambda m, x: sg.surrogates.get("atan", tail=2), sg.ConfigError, "tail"),
    ("get-instance-and-params", lambda m, x: sg.surrogates.get(sg.surrogates.ATan(), dampening=2), sg.ConfigError,
     "dampening"),
    ("fast-sigmoid-tail", lambda m, x: sg.surrogates.FastSigmoid(tail=2), sg.ConfigError, "tail"),
    ("atan-slope", lambda m, x: sg.surrogates.ATan(slope=2), sg.ConfigError, "slope"),
    ("atan-heaviside", lambda m, x: sg.surrogates.ATan(heaviside=5), sg.ConfigError, "5"),
    ("atan-spiking-str", lambda m, x: sg.surrogates.ATan(spiking="no"), sg.ConfigError, "'no'"),
    ("qps-tail-big", lambda m, x: sg.surrogates.QPseudoSpike(tail=1e7), sg.ConfigError, "10000000"),
    ("qps-tail-str", lambda m, x: sg.surrogates.QPseudoSpike(tail="2"), sg.ConfigError, "'2'"),
    ("gaussian-dampening-list", lambda m, x: sg.surrogates.Gaussian(dampening=[1.0]), sg.ConfigError, "[1.0]"),
    ("surrogate-base", lambda m, x: sg.surrogates.Surrogate(), sg.ConfigError, "Surrogate"),
    ("moment-order-0", lambda m, x: sg.surrogates.ATan().moment(1.0, m=0), sg.ConfigError, "0"),
    ("set-sharpness-nan", lambda m, x: setattr(sg.surrogates.ATan(), "sharpness", NAN), sg.ConfigError, "nan"),
    ("loss-kind", lambda m, x: sparsity.SparsityLoss("l2"), sg.ConfigError, "l2"),
    ("loss-target-high", lambda m, x: sparsity.SparsityLoss(target=1.5), sg.ConfigError, "1.5"),
    ("loss-target-nan", lambda m, x: sparsity.SparsityLoss(target=NAN), sg.ConfigError, "nan"),
    ("loss-target-map", lambda m, x: sparsity.SparsityLoss(target={"*": 2}), sg.ConfigError, "2"),
    ("loss-weight-str", lambda m, x: sparsity.SparsityLoss(weight="heavy"), sg.ConfigError, "heavy"),
    ("loss-weight-nan", lambda m, x: sparsity.SparsityLoss(weight=NAN), sg.ConfigError, "nan"),
    ("loss-weight-neg", lambda m, x: sparsity.SparsityLoss(weight=-1), sg.ConfigError, "-1"),
    ("loss-schedule-str", lambda m, x: sparsity.SparsityLoss(schedule="linear"), sg.ConfigError, "linear"),
    ("loss-band-order", lambda m, x: sparsity.SparsityLoss("band", target=0.1, lower=0.5), sg.ConfigError, "0.5"),
    ("loss-per-neuron-str", lambda m, x: sparsity.SparsityLoss(per_neuron="yes"), sg.ConfigError, "'yes'"),
    ("control-rate", lambda m, x: sparsity.FiringRateControl(2.0), sg.ConfigError, "2.0"),
    ("control-strength", lambda m, x: sparsity.FiringRateControl(0.1, strength=NAN), sg.ConfigError, "nan"),
    ("control-switch", lambda m, x: sparsity.FiringRateControl(0.1, switch_epoch=-1), sg.ConfigError, "-1"),
    ("monitor-not-a-model", lambda m, x: sparsity.RateMonitor("model"), sg.ConfigError, "str"),
    ("constant-str", lambda m, x: sch.Constant("a"), sg.ConfigError, "'a'"),
    ("constant-inf", lambda m, x: sch.Constant(INF), sg.ConfigError, "inf"),
    ("constant-nan", lambda m, x: sch.Constant(NAN), sg.ConfigError, "nan"),
    ("ramp-epochs-0", lambda m, x: sch.LinearRamp(0), sg.ConfigError, "0"),
    ("ramp-epochs-float", lambda m, x: sch.LinearRamp(10.5), sg.ConfigError, "10.5"),
    ("ramp-order", lambda m, x: sch.LinearRamp(10, start=0.7, end=0.2), sg.ConfigError, "0.7"),
    ("ramp-start-nan", lambda m, x: sch.LinearRamp(10, start=NAN), sg.ConfigError, "nan"),
    ("ramp-low-nan", lambda m, x: sch.LinearRamp(10, low=NAN), sg.ConfigError, "nan"),
    ("ramp-high-inf", lambda m, x: sch.LinearRamp(10, high=INF), sg.ConfigError, "inf"),
    ("approach-ratio", lambda m, x: sch.ExponentialApproach(10, ratio=1.5), sg.ConfigError, "1.5"),
    ("approach-ratio-nan", lambda m, x: sch.ExponentialApproach(10, ratio=NAN), sg.ConfigError, "nan"),
    ("switch-epoch", lambda m, x: sch.HardSwitch(-1), sg.ConfigError, "-1"),
    ("switch-before-nan", lambda m, x: sch.HardSwitch(3, before=NAN), sg.ConfigError, "nan"),
    ("get-schedule-typo", lambda m, x: sch.get_schedule("lin"), sg.ConfigError, "lin"),
    ("get-schedule-missing", lambda m, x: sch.get_schedule("linear"), sg.ConfigError, "total_epochs"),
    ("get-schedule-bogus", lambda m, x: sch.get_schedule("linear", total_epochs=10, bogus=1), sg.ConfigError,
     "bogus"),
    ("register-no-hooks", lambda m, x: sg.plugins.register(object()), sg.ConfigError, "object"),
    ("datasets-randman-classes", lambda m, x: sg.datasets.randman(classes=1), sg.ConfigError, "1"),
    ("datasets-randman-steps", lambda m, x: sg.datasets.randman(steps="a"), sg.ConfigError, "'a'"),
    ("datasets-digits-coding", lambda m, x: sg.datasets.digits(coding="phase"), sg.ConfigError, "phase"),
    ("datasets-digits-rate", lambda m, x: sg.datasets.digits(max_rate=NAN), sg.ConfigError, "nan"),
    ("datasets-spirals-noise", lambda m, x: sg.datasets.spirals(noise=NAN), sg.ConfigError, "nan"),
    ("datasets-spirals-turns", lambda m, x: sg.datasets.spirals(turns=-1), sg.ConfigError, "-1"),
    ("datasets-cue-seed", lambda m, x: sg.datasets.delayed_cue(seed="a"), sg.ConfigError, "'a'"),
    ("dynamics-leak-nan", lambda m, x: sg.stability.Dynamics(leak=NAN, threshold=1.0), sg.ConfigError, "nan"),
    ("dynamics-threshold-inf", lambda m, x: sg.stability.Dynamics(leak=0.9, threshold=INF), sg.ConfigError, "inf"),
    ("dynamics-reset", lambda m, x: sg.stability.Dynamics(leak=0.9, threshold=1.0, reset="soft"), sg.ConfigError,
     "soft"),
    ("condition-i-threshold-nan", lambda m, x: sg.stability.condition_i(10, 0.9, NAN, "subtract"), sg.ConfigError,
     "nan"),
]


@pytest.mark.parametrize(("call", "error", "needle"), [c[1:] for c in PLAIN_CASES], ids=[c[0] for c in PLAIN_CASES])
def test_bad_input_without_a_model(call, error, needle):
    with pytest.raises(error) as info:
        call(None, None)
    four_part(info.value, needle)


SCHEDULE_STATE_CASES = [({"last_epoch": "3"}, "'3'"), ({"last_epoch": -1}, "-1"), ({"last_epoch": 99}, "99"),
                        ({"bogus": 1}, "bogus"), ({"low": NAN}, "nan"), ({"total_epochs": 2.5}, "2.5"), ("x", "x")]


@pytest.mark.parametrize(("state", "needle"), SCHEDULE_STATE_CASES)
def test_a_bad_schedule_checkpoint_changes_nothing(state, needle):
    ramp = sch.LinearRamp(10)
    ramp.step()
    before = ramp.state_dict()
    with pytest.raises(sg.ConfigError) as info:
        ramp.load_state_dict(state)
    four_part(info.value, needle)
    assert ramp.state_dict() == before


def test_stepping_a_schedule_past_its_end_is_an_error_that_changes_nothing():
    ramp = sch.LinearRamp(2)
    ramp.step()
    ramp.step()
    with pytest.raises(sg.ConfigError) as info:
        ramp.step()
    four_part(info.value, "step 3 of 2")
    assert ramp.last_epoch == 2


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_diagnostics_history_of_an_unknown_layer(framework):
    model, _ = make(framework)
    with sg.diagnostics.Diagnostics(model) as diag, pytest.raises(sg.ConfigError) as info:
        diag.history("lif_recc")
    four_part(info.value, "lif_recc")
    assert "Did you mean 'lif_rec'?" in str(info.value)


# -- BaseException from inside: an adapter, a run, an initialiser ----------------------------------------------------

class Interrupt(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("exc", [Interrupt, SystemExit, RuntimeError])
def test_an_exception_inside_an_adapter_install_rolls_everything_back(framework, exc, monkeypatch):
    model, _ = make(framework)
    sites = sg.find_neurons(model)
    driver_type = type(sites[-1].driver)
    real_install = driver_type.install
    calls = []

    def install(self: Any, surrogate: Any, tx: Any, path: str, options: Any) -> Any:
        calls.append(path)
        if len(calls) == len(sites):  # the last site: after some changes were written through the transaction
            real_install(self, surrogate, tx, path, options)
            raise exc("interrupted")
        return real_install(self, surrogate, tx, path, options)

    monkeypatch.setattr(driver_type, "install", install)
    before = snapshot(model)
    with pytest.raises(sg.AdapterError if exc is RuntimeError else exc):
        sg.patch(model, "gaussian", builtin=False)
    assert_unchanged(model, before)
    assert not sg.is_patched(model) and sg.unpatch(model) == 0
    monkeypatch.undo()
    with sg.patch(model, "gaussian"):  # and the model patches normally afterwards
        assert sg.is_patched(model)


class _InterruptInBackward(torch.autograd.Function):
    """The output unchanged; its backward raises once ``budget[0]`` backward passes have gone through it."""

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, budget: list[int]) -> torch.Tensor:
        ctx.budget = budget
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.budget[0] -= 1
        if ctx.budget[0] < 0:
            raise Interrupt("Ctrl-C")
        return grad, None


def _interrupting_run(after: int | tuple[str, int]) -> Callable[[nn.Module, torch.Tensor], Any]:
    """A run that raises at its ``after + 1``-th call, or (``("backward", n)``) in the ``n + 1``-th backward pass
    through its output: one recorded run serves many measurements, so an interrupt can come during them."""
    calls = [0]
    budget = [after[1] if isinstance(after, tuple) else -1]

    def run(model: nn.Module, x: torch.Tensor) -> Any:
        calls[0] += 1
        if isinstance(after, int) and calls[0] > after:
            raise Interrupt("Ctrl-C")
        out = model(x)
        return _InterruptInBackward.apply(out, budget) if budget[0] >= 0 and out.requires_grad else out

    return run


INTERRUPTED = [
    ("analyze", lambda m, x, run: sg.analyze(m, x, run=run), 0),
    ("analyze-later", lambda m, x, run: sg.analyze(m, x, run=run), ("backward", 1)),
    ("candidates", lambda m, x, run: sg.candidates(m, x, run=run), ("backward", 6)),
    ("stabilize", lambda m, x, run: sg.stabilize(m, x, run=run), 1),  # the report's run, after patching
    ("stabilize-measuring", lambda m, x, run: sg.stabilize(m, x, run=run), ("backward", 1)),
    ("stabilize-init", lambda m, x, run: sg.stabilize(m, x, run=run, init="at_threshold"), 2),
    ("at-threshold", lambda m, x, run: sg.init.at_threshold(m, x, run=run), 1),
    ("fluctuation", lambda m, x, run: sg.init.fluctuation(m, x, run=run), 1),
    ("variance-flow", lambda m, x, run: sg.init.variance_flow(m, x, run=run), 1),
    ("calibrate-rate", lambda m, x, run: sg.init.calibrate_rate(m, x, run=run, progress=False), 5),
    ("verify-patch", lambda m, x, run: verify_patch(m, lambda mm: run(mm, x)), 1),
    ("tune", lambda m, x, run: sg.tune(m, x, [x, x, x], loss_fn=lambda mm, b: run(mm, b).sum(), epochs=2,
                                       candidates=["atan", "gaussian"], progress=False), 3),
    ("stabilize-race", lambda m, x, run: sg.stabilize(m, x, batches=[x, x, x], loss_fn=lambda mm, b: run(mm, b).sum(),
                                                      epochs=2, progress=False), 12),
]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("call", "after"), [c[1:] for c in INTERRUPTED], ids=[c[0] for c in INTERRUPTED])
def test_an_interrupt_inside_a_run_leaves_the_model_as_it_was(framework, call, after):
    model, x = make(framework)
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Interrupt):
            call(model, x, _interrupting_run(after))
    assert_unchanged(model, before)


# -- devices: a per-neuron parameter on another device than its neuron (meta stands in for a second device) --------

@pytest.mark.parametrize("framework", ["snntorch", "norse"])  # neurons that hold tensors of their own
def test_a_per_neuron_parameter_on_another_device_is_a_preflight_problem(framework):
    model, _ = make(framework)
    model.to("meta")
    fingerprint = module_fingerprint(model)
    with pytest.raises(sg.PreflightError) as info:
        sg.patch(model, "atan", dampening=torch.ones(DIMS["n_rec"]), targets="lif_rec")
    four_part(info.value, "is on cpu but the neuron's tensors are on meta")
    assert module_fingerprint(model) == fingerprint and not sg.is_patched(model)  # meta tensors hold no values


def test_a_per_neuron_parameter_on_another_device_than_the_membrane_fails_at_forward_not_backward():
    surrogate = sg.surrogates.Gaussian(dampening=torch.ones(3))
    with pytest.raises(sg.ConfigError) as info:
        surrogate(torch.zeros(2, 3, device="meta"))
    four_part(info.value, "dampening on cpu, input on meta")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("call", [lambda m, x: sg.analyze(m, x), lambda m, x: sg.stabilize(m, x, init="at_threshold"),
                                  lambda m, x: sg.init.calibrate_rate(m, x, progress=False)],
                         ids=["analyze", "stabilize", "calibrate_rate"])
def test_nan_in_the_weights_is_named_before_anything_runs(framework, call):
    model, x = make(framework)
    with torch.no_grad():
        model.fc_out.weight[0, 0] = NAN  # what a diverged training step leaves behind
    before = snapshot(model)
    with pytest.raises(sg.ConfigError) as info:
        call(model, x)
    four_part(info.value, "fc_out.weight")
    assert_unchanged(model, before)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_interrupted_remove_can_be_finished_by_calling_it_again(framework, monkeypatch):
    model, _ = make(framework)
    fingerprint = module_fingerprint(model)
    handle = sg.patch(model, "sigmoid", builtin=False)
    real_restore = sg._transaction.Change.restore
    calls = [0]

    def restore(self: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise Interrupt("Ctrl-C during remove()")
        real_restore(self)

    monkeypatch.setattr(sg._transaction.Change, "restore", restore)
    with pytest.raises(Interrupt):
        handle.remove()
    assert sg.is_patched(model) and not handle.removed  # half-way: the handle still knows what is left to undo
    assert handle.remove() is True
    assert module_fingerprint(model) == fingerprint and not sg.is_patched(model)


# -- the maths layer: every public function of sg.stability, every argument, a value of the wrong type --------------

def _stability_cases() -> list[tuple[str, str]]:
    import inspect

    out = []
    for name in sg.stability.__all__:
        func = getattr(sg.stability, name)
        if callable(func) and not isinstance(func, type):
            out += [(name, p.name) for p in inspect.signature(func).parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return out


def _valid(annotation: str, name: str) -> Any:
    """A value of the annotated type (what the function does with it does not matter: the call must fail on the
    one argument of the wrong type before it runs)."""
    by_annotation = [("Dynamics", lambda: sg.stability.Dynamics(leak=0.9, threshold=1.0)),
                     ("Surrogate", lambda: sg.surrogates.get("atan")),
                     ("RecurrentLIF", lambda: sg.testing.RecurrentLIF(4, 4)),
                     ("Callable", lambda: (lambda *a: 1.0)), ("Generator", torch.Generator),
                     ("torch.Generator", torch.Generator), ("bool", lambda: False),
                     ("Sequence[Tensor]", lambda: [torch.rand(4)]), ("list[Tensor]", lambda: [torch.rand(4, 4)]),
                     ("Sequence[tuple", lambda: [(torch.rand(4), torch.rand(4))]),
                     ("Sequence[float]", lambda: [1.0, 2.0]), ("Sequence[int]", lambda: [0]),
                     ("tuple[float, float]", lambda: (0.1, 1.0)), ("Tensor", lambda: torch.rand(4, 4)),
                     ("str", lambda: {"knob": "sharpness"}.get(name, "subtract")), ("int", lambda: 4)]
    if annotation.endswith("| None"):
        return None
    return next((make() for key, make in by_annotation if annotation.startswith(key) or f"[{key}" in annotation
                 or (key in ("Dynamics", "Surrogate", "RecurrentLIF") and key in annotation)), 0.5)


@pytest.mark.parametrize(("func", "param"), _stability_cases(), ids=[f"{f}-{p}" for f, p in _stability_cases()])
def test_every_stability_function_names_an_argument_of_the_wrong_type(func, param):
    import inspect

    f = getattr(sg.stability, func)
    args = {p.name: _valid(str(p.annotation), p.name) for p in inspect.signature(f).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    args[param] = object()
    with pytest.raises(sg.ConfigError) as info:
        f(**args)
    four_part(info.value, "object")
    assert param in str(info.value)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_threshold_annealing_that_fails_at_one_site_changes_no_threshold(framework, monkeypatch):
    model, _ = make(framework)
    sites = sg.find_neurons(model)
    driver_type = type(sites[-1].driver)
    real_set = driver_type.set_threshold
    calls = [0]

    def set_threshold(self: Any, value: Any, tx: Any) -> None:
        calls[0] += 1
        real_set(self, value, tx)
        if calls[0] == len(sites):
            raise Interrupt("Ctrl-C")

    monkeypatch.setattr(driver_type, "set_threshold", set_threshold)
    before = snapshot(model)
    with pytest.raises(Interrupt):
        sg.anneal.ThresholdAnnealing(model, 0.5, _schedule())
    assert_unchanged(model, before)
