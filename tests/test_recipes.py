"""Recipes as small functions: parameter groups, rates, weight decay, stages and schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.backbones import build
from core.config import Strategy
from core.model import GraftModel, Task, freeze_trunk, recalibrate_batchnorm, set_train_mode, trunk_groups, unfreeze_top
from core.probe import fit_logistic, probe_heads
from core.recipes import (ALL, WARMUP_STEPS, Stage, feature_extraction, fine_tune, make_optimizer, param_groups,
                          progressive, recipe_for, scratch)


def _model(name: str = "test_resnet") -> GraftModel:
    return GraftModel(build(name, "scratch", image_size=32), [Task("label", ("a", "b"))])


def test_groups_come_from_timm_group_matcher() -> None:
    model = _model()
    groups = trunk_groups(model.trunk)
    assert len(groups) == 5  # stem + 4 stages of a ResNet
    assert sum(len(g) for g in groups) == len(list(model.trunk.parameters()))
    assert len(trunk_groups(_model("test_vit").trunk)) >= 3


def test_rates_fall_by_the_group_decay_from_the_top_group_down() -> None:
    recipe = fine_tune(10, 2e-4)
    groups = {g["name"]: g for g in param_groups(_model(), recipe)}
    assert groups["head"]["lr"] == pytest.approx(2e-4 * recipe.head_rate)
    assert groups["trunk-4"]["lr"] == pytest.approx(2e-4)  # the top group at lr: at most 2e-4 by default
    for k in range(4):
        assert groups[f"trunk-{k}"]["lr"] == pytest.approx(groups[f"trunk-{k + 1}"]["lr"] * 0.7)


def test_the_default_rates_stay_gentle() -> None:
    from core.config import STRATEGY_DEFAULTS

    for strategy in (Strategy.FINE_TUNE, Strategy.PROGRESSIVE, Strategy.MULTI_TASK):
        assert STRATEGY_DEFAULTS[strategy]["lr"] <= 2e-4  # the top trunk group's peak rate


def test_optimizer_is_adamw_with_the_groups_rates() -> None:
    model = _model()
    optimizer = make_optimizer(model, fine_tune(10, 5e-5))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert max(g["lr"] for g in optimizer.param_groups) == pytest.approx(5e-5 * 5)


def test_weight_decay_skips_norms_and_biases() -> None:
    model = _model()
    groups = param_groups(model, fine_tune(10, 2e-4))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # every parameter, once
    for g in groups:
        dims = {p.ndim for p in g["params"]}
        if g["name"].endswith("no-decay"):
            assert dims == {1} and g["weight_decay"] == 0.0
        else:
            assert min(dims) >= 2 and g["weight_decay"] == pytest.approx(0.05)


def test_strategy_recipes() -> None:
    assert feature_extraction().stages == () and feature_extraction().probe
    ft = fine_tune(12, 5e-5)
    assert ft.stages == (Stage(12, ALL),) and ft.probe and ft.freeze_bn and ft.reprobe  # LP, FT, then LP again
    assert progressive(12, 5e-5, 8).reprobe and not feature_extraction().reprobe
    s = scratch(30, 2e-3)
    assert not s.probe and not s.freeze_bn and s.recalibrate_bn and s.group_decay == 1.0 and s.head_rate == 1.0
    assert not s.reprobe
    assert recipe_for(Strategy.MULTI_TASK, 12, 2e-4, 5) == fine_tune(12, 2e-4)


def test_progressive_unfreezes_a_third_at_a_time_from_the_top() -> None:
    recipe = progressive(12, 2e-4, n_groups=8)
    assert [s.epochs for s in recipe.stages] == [4, 4, 4] and recipe.probe
    assert [s.groups for s in recipe.stages] == [3, 6, ALL]
    assert [recipe.groups_at(e) for e in (0, 3, 4, 11)] == [3, 3, 6, ALL]
    assert sum(s.epochs for s in progressive(7, 2e-4, n_groups=2).stages) == 7
    model = _model()
    freeze_trunk(model)
    unfreeze_top(model, 1)
    groups = trunk_groups(model.trunk)
    assert all(p.requires_grad for p in groups[-1]) and not any(p.requires_grad for g in groups[:-1] for p in g)


def test_every_stage_warms_up_in_steps_then_decays_to_zero() -> None:
    recipe = progressive(6, 2e-4, n_groups=3)  # 3 stages of 2 epochs
    steps_per_epoch = 50
    factors = [recipe.lr_factor(step, steps_per_epoch) for step in range(6 * steps_per_epoch)]
    for stage in range(3):
        part = factors[stage * 100:(stage + 1) * 100]
        assert part[0] == pytest.approx(1 / WARMUP_STEPS)  # re-warm-up: a newly unfrozen group starts gently
        assert max(part) == pytest.approx(1.0) and part.index(max(part)) == WARMUP_STEPS - 1
        assert part[-1] < 0.01
    short = fine_tune(1, 2e-4)  # 4 steps in all: the warm-up shrinks to a quarter of them
    assert short.lr_factor(0, 4) == 1.0 and short.lr_factor(3, 4) < 0.3


def test_frozen_batchnorm_keeps_its_statistics() -> None:
    model = _model()
    freeze_trunk(model)
    set_train_mode(model)
    bn = model.trunk.bn1
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert not bn.training and torch.equal(before, bn.running_mean)
    assert model.heads.training


def test_freeze_bn_keeps_statistics_while_its_weights_train() -> None:
    model = _model()
    unfreeze_top(model, ALL)
    set_train_mode(model, freeze_bn=True)
    bn = model.trunk.bn1
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 5 + 3)["label"].sum().backward()
    assert not bn.training and torch.equal(before, bn.running_mean) and bn.weight.grad is not None


def test_recalibrated_batchnorm_holds_the_plain_average_of_the_batches() -> None:
    from core.device import select_runtime

    model = _model()
    batches = [torch.randn(8, 3, 32, 32) * 3 + 2 for _ in range(3)]
    recalibrate_batchnorm(model, batches, select_runtime("cpu", "fp32"))
    conv = model.trunk.conv1[0] if isinstance(model.trunk.conv1, torch.nn.Sequential) else model.trunk.conv1
    expected = torch.cat([conv(x) for x in batches]).mean((0, 2, 3))
    first_bn = next(m for m in model.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.allclose(first_bn.running_mean, expected, atol=1e-4)
    assert first_bn.momentum == 0.1 and not model.training


def test_logistic_probe_folds_standardisation_into_the_linear_head() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 6)), rng.normal(1.5, 1, (20, 6))]) * 50 + 7  # unscaled features
    y = np.repeat([0, 1], 20)
    weight, bias, c = fit_logistic(x, y, np.arange(40), n_classes=3)  # class 2 has no photo
    logits = x @ weight.T + bias
    assert (logits.argmax(1) == y).mean() > 0.9 and c > 0
    assert (logits[:, 2] < logits[:, :2].min(1)).all()  # an absent class is never predicted
    tasks = [Task("label", ("a", "b", "c"))]
    model = GraftModel(build("test_resnet", "scratch", image_size=32), tasks)
    model.heads["label"][-1] = torch.nn.Linear(6, 3)  # the head on 6-d toy features
    probe_heads(model, tasks, x, {"label": y}, np.arange(40))
    model.eval()
    out = model.forward_heads(torch.as_tensor(x, dtype=torch.float32))["label"].detach().numpy()
    assert np.allclose(out, logits, atol=1e-3)


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
    last = {k: v.clone() for k, v in fitted.model.state_dict().items()}
    assert all(torch.equal(last[k], v) for k, v in fitted.trainer.best_state.items())


def test_the_folds_of_a_cross_validation_share_the_probe_views(easy_data, tmp_path, monkeypatch) -> None:
    from core.callbacks import StopWatcher
    from core.config import RunConfig
    from core.fitting import PROBE_VIEWS, Fitter
    from core.pipeline import prepare
    from core.runs import RunFolder

    config = RunConfig(data=str(easy_data), out=str(tmp_path / "run"), backbone="test_resnet", start="scratch",
                       strategy="feature-extraction", image_size=32, batch_size=8)
    run = RunFolder(config.out)
    run.path.mkdir()
    prep = prepare(config, run)
    fitter = Fitter(config, prep, run, StopWatcher(run))
    computed: list[int] = []
    extract = fitter._extract
    monkeypatch.setattr(fitter, "_extract", lambda trunk=None, **kw: computed.append(
        len(kw["index"]) if kw.get("index") is not None else len(fitter.images)) or extract(trunk, **kw))
    n = len(fitter.images)
    folds = [list(range(0, n // 2)), list(range(n // 3, n))]  # overlapping training sets, as folds have
    x = [fitter.probe_data(train) for train in folds]
    assert sum(computed) == n + len(PROBE_VIEWS) * n  # every view of every photo once, however many folds
    for (feats, photos), train in zip(x, folds):
        assert feats.shape[0] == len(photos) == (1 + len(PROBE_VIEWS)) * len(train)
    index = np.asarray(folds[1])
    alone = np.concatenate([extract(index=index).numpy()] + [extract(index=index, view=v).numpy() for v in PROBE_VIEWS])
    assert np.allclose(x[1][0], alone, atol=1e-2)  # shared rows are the features computed for this fold alone


def test_the_eight_views_of_a_photo_are_distinct_and_lossless() -> None:
    from core.augment import VIEWS, dihedral

    photo = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
    views = [dihedral(photo, v) for v in VIEWS]
    assert len({v.tobytes() for v in views}) == 8  # every mirror and quarter turn once
    assert all(sorted(v.ravel()) == sorted(photo.ravel()) for v in views)
    assert np.array_equal(dihedral(photo, "h"), photo[:, :, ::-1])


def test_scratch_learns_a_balanced_task_without_collapsing(easy_data, tmp_path) -> None:
    from core.callbacks import StopWatcher
    from core.config import RunConfig
    from core.fitting import Fitter
    from core.pipeline import prepare
    from core.runs import RunFolder

    config = RunConfig(data=str(easy_data), out=str(tmp_path / "run"), backbone="test_resnet", start="scratch",
                       strategy="scratch", image_size=32, batch_size=8, epochs=15, val_fraction=0.0001,
                       test_fraction=0.3)
    run = RunFolder(config.out)
    run.path.mkdir()
    prep = prepare(config, run)
    fitter = Fitter(config, prep, run, StopWatcher(run))
    fitted = fitter.fit({**prep.splits, "val": []}, callbacks=[], checkpoint=False)
    probs = fitted.predict("test")["label"]
    y = prep.targets["label"][prep.splits["test"]]
    assert len(set(probs.argmax(1).tolist())) == 3  # every class is predicted for some photo
    assert (probs.argmax(1) == y).mean() >= 0.6  # chance is 1/3


def test_probe_of_constant_features_predicts_every_present_class_alike() -> None:
    weight, bias, _ = fit_logistic(np.zeros((12, 5)), np.repeat([0, 2], 6), np.arange(12), n_classes=3)
    assert not weight.any() and bias[0] == bias[2] and bias[1] < bias[0]
