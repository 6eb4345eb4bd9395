"""Strategies as small functions over parameter groups: rates, freezing and schedules."""

from __future__ import annotations

import torch

from core.backbones import build
from core.config import Strategy
from core.model import GraftModel, Task, freeze_trunk, set_train_mode, trunk_groups, unfreeze_top
from core.recipes import ALL, make_schedule, param_groups


def _model(name: str = "test_resnet") -> GraftModel:
    return GraftModel(build(name, "scratch", image_size=32), [Task("label", ("a", "b"))])


def test_groups_come_from_timm_group_matcher() -> None:
    model = _model()
    groups = trunk_groups(model.trunk)
    assert len(groups) == 5  # stem + 4 stages of a ResNet
    assert sum(len(g) for g in groups) == len(list(model.trunk.parameters()))
    vit_groups = trunk_groups(_model("test_vit").trunk)
    assert len(vit_groups) >= 3


def test_discriminative_rates_fall_towards_the_stem() -> None:
    groups = param_groups(_model(), 1e-3, Strategy.FINE_TUNE)
    assert groups[0]["name"] == "head" and groups[0]["lr"] == 1e-3
    trunk_lrs = [g["lr"] for g in groups[1:]]
    assert trunk_lrs == sorted(trunk_lrs, reverse=True)  # nearest the head first
    assert abs(trunk_lrs[-1] - 1e-5) < 1e-12  # the stem gets lr/100, as in fastai's slice(lr/100, lr)


def test_progressive_unfreezes_from_the_top_one_stage_per_epoch() -> None:
    schedule = make_schedule(Strategy.PROGRESSIVE, epochs=8, n_groups=5)
    assert schedule.trunk_groups == (0, 1, 2, 3, 4, 5, 5, 5)
    model = _model()
    freeze_trunk(model)
    unfreeze_top(model, 1)
    groups = trunk_groups(model.trunk)
    assert all(p.requires_grad for p in groups[-1]) and not any(p.requires_grad for g in groups[:-1] for p in g)


def test_fine_tune_warms_the_head_first_and_scratch_trains_everything() -> None:
    assert make_schedule(Strategy.FINE_TUNE, 6, 5).trunk_groups == (0, ALL, ALL, ALL, ALL, ALL)
    assert make_schedule(Strategy.SCRATCH, 3, 5).trunk_groups == (ALL, ALL, ALL)
    assert make_schedule(Strategy.FEATURE_EXTRACTION, 3, 5).trunk_groups == (0, 0, 0)


def test_frozen_batchnorm_keeps_its_statistics() -> None:
    model = _model()
    freeze_trunk(model)
    set_train_mode(model)
    bn = model.trunk.bn1
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert not bn.training and torch.equal(before, bn.running_mean)
    assert model.heads.training


def test_lr_schedule_warms_up_then_decays() -> None:
    s = make_schedule(Strategy.FINE_TUNE, 10, 5)
    factors = [s.lr_factor(step, 10) for step in range(100)]
    peak = max(factors)
    assert factors[0] < peak and abs(peak - 1.0) < 1e-6
    assert factors[-1] < 0.05


def test_fit_without_validation_runs_the_fixed_epochs_and_keeps_the_last(easy_data, tmp_path) -> None:
    from core.callbacks import StopWatcher
    from core.config import RunConfig
    from core.fitting import Fitter
    from core.pipeline import prepare
    from core.runs import RunFolder

    config = RunConfig(data=str(easy_data), out=str(tmp_path / "run"), backbone="test_resnet", start="scratch",
                       strategy="scratch", image_size=32, batch_size=8, epochs=2)
    run = RunFolder(config.out)
    run.path.mkdir()
    prep = prepare(config, run)
    fitter = Fitter(config, prep, run, StopWatcher(run))
    everything = {"train": prep.splits["train"] + prep.splits["val"], "val": [], "test": prep.splits["test"]}
    fitted = fitter.fit(everything, epochs=3, callbacks=[], checkpoint=False)
    assert [r["epoch"] for r in fitted.result.history] == [1, 2, 3]
    assert fitted.result.best_epoch == 3 and not fitted.result.stopped
    assert fitted.predict("test")["label"].shape == (len(prep.splits["test"]), 3)
