"""The whole run's clock (core/eta.py): its arithmetic on made-up step times, a real tiny run's events,
and the progress line the Train page shows. No timing is asserted (that is bench/eta.py's job)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from core.eta import FOLDED_SHARE, RunClock, RunShape, Smoother, estimate_seconds, plan_run, priors
from core.jsonio import read_jsonl

PRIOR = {"check": 0.01, "decode": 0.01, "forward": 0.01, "train": 0.5, "probe": 0.001, "build": 1.0, "save": 1.0,
         "gap": 0.0, "ratio": 5.0}


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _fit_clock(epochs: int = 4, batches: int = 10) -> tuple[RunClock, FakeTime]:
    now = FakeTime()
    clock = RunClock.for_fit(epochs, batches, n_val=0, batch_size=8, prior=PRIOR, now=now)
    clock.begin("fit")
    return clock, now


def _steps(clock: RunClock, now: FakeTime, n: int, seconds: float, start: int = 0, batches: int = 10) -> None:
    for k in range(start, start + n):
        now.t += seconds
        clock.step(seconds, 8)
        clock.fit_at(k // batches + (k % batches + 1) / batches * (1 - 1e-9) if (k + 1) % batches else (k + 1) // batches)


def test_steady_steps_give_the_steps_left_times_the_step_time() -> None:
    clock, now = _fit_clock()
    assert clock.remaining() == pytest.approx(40 * 0.5)  # before any step: the prior
    _steps(clock, now, 20, 0.1)
    assert clock.remaining() == pytest.approx(20 * 0.1, rel=1e-6)  # measured, the warm-up steps aside
    assert clock.train_speed() == pytest.approx(80.0)
    assert clock.eta() == pytest.approx(2.0, rel=1e-6)


def test_one_slow_step_does_not_make_the_time_left_jump_up() -> None:
    clock, now = _fit_clock(epochs=40)
    _steps(clock, now, 60, 0.1)
    shown = [clock.eta()]
    _steps(clock, now, 1, 1.0, start=60)  # ten times slower, once
    shown.append(clock.eta())
    _steps(clock, now, 5, 0.1, start=61)
    shown.append(clock.eta())
    assert shown[1] <= shown[0] and shown[2] <= shown[1]
    assert clock.remaining() > 0 and shown[2] > 0.5 * clock.remaining()


def test_the_smoother_counts_down_and_never_shows_nothing_while_work_remains() -> None:
    smooth = Smoother()
    assert smooth.update(100.0, 0.0) == 100.0
    assert smooth.update(100.0, 10.0) < 100.0  # the raw estimate stayed: time passed, so less is shown
    assert smooth.update(50.0, 10.5) >= 25.0  # within half of the estimate at least
    assert smooth.update(5.0, 11.0) >= 2.5


def test_the_plan_holds_every_phase_of_the_run_in_order() -> None:
    shape = RunShape(photos=100, strategy="fine-tune", epochs=3, batch_size=10, splits=(70, 15, 15))
    names = [t.name for t in plan_run(shape)]
    assert names == ["check", "build", "decode", "features", "probe", "fit", "reprobe", "score", "finish"]
    tasks = {t.name: t for t in plan_run(shape)}
    assert tasks["features"].parts["forward"] == 100  # every photo, through the trunk as it predicts
    assert tasks["features"].parts["frozen"] == 7 * 70  # then 7 extra views of the training ones, folded
    assert tasks["fit"].reps == 3 and tasks["fit"].parts["train"] == 7 and tasks["fit"].parts["val"] == 15
    short = {t.name: t for t in plan_run(RunShape(photos=100, epochs=3, batch_size=32, splits=(70, 15, 15)))}
    assert short["fit"].parts["train"] == pytest.approx(70 / 32)  # a short last batch costs its share of a step
    assert tasks["reprobe"].parts["refit"] == 8 * 70
    assert tasks["score"].parts["view"] == 30  # photo-views scored by the finished model
    scratch = [t.name for t in plan_run(RunShape(photos=100, strategy="scratch"))]
    assert "probe" not in scratch and "reprobe" not in scratch
    frozen = {t.name: t for t in plan_run(RunShape(photos=100, strategy="feature-extraction"))}
    assert "fit" not in frozen and frozen["score"].parts["view"] == 0
    cv = [t.name for t in plan_run(RunShape(photos=90, folds=3))]
    assert [n for n in cv if n.endswith(":fit")] == ["fold-1:fit", "fold-2:fit", "fold-3:fit", "final:fit"]


def test_each_fold_reads_the_extra_views_of_only_the_photos_new_to_training() -> None:
    from core.crossval import _Clock

    clock = RunClock(RunShape(photos=9, folds=3, batch_size=4), PRIOR, FakeTime())
    splits = [{"train": [i for i in range(9) if i // 3 != k], "val": [], "test": [i for i in range(9) if i // 3 == k]}
              for k in range(3)]
    _Clock(clock).plan_folds(splits, 9)
    read = {t.name: t.parts["forward"] + t.parts["frozen"] for t in clock.tasks if t.name.endswith("features")}
    # fold 1: every photo, then 7 views of its 6 training photos; fold 2 adds fold 1's test photos; then none
    assert read == {"fold-1:features": 9 + 7 * 6, "fold-2:features": 7 * 3, "fold-3:features": 0,
                    "final:features": 0}


def _feature_clock() -> tuple[RunClock, FakeTime]:
    now = FakeTime()
    clock = RunClock(RunShape(photos=100, epochs=3, batch_size=10, splits=(70, 15, 15)), PRIOR, now)
    clock.begin("features")
    return clock, now


def test_the_probe_views_folded_pass_is_timed_apart_from_the_first_pass() -> None:
    clock, now = _feature_clock()
    assert clock.cost("frozen") == pytest.approx(FOLDED_SHARE * clock.cost("forward"))  # nothing timed yet
    for done, seconds in ((20, 1.0), (60, 0.8), (100, 0.8)):  # the first pass: 20 ms a photo after a warm-up
        now.t += seconds
        clock.progress("features", done, 100)
    assert clock.cost("forward") == pytest.approx(0.02)
    for done, seconds in ((140, 2.0), (350, 1.68), (490, 1.12)):  # then 7 views of the 70 training photos,
        now.t += seconds  # folded: 8 ms a photo-view after a warm-up
        units, planned = clock.progress("features", done, 490, key="frozen")
        if done == 140:  # its warm-up alone says little: still a share of the first pass's pace
            assert clock.cost("frozen") == pytest.approx(FOLDED_SHARE * 0.02)
        if done == 350:
            assert (units, planned) == (450, 590)  # shown as one pass: 100 photos and 350 of 490 views
    assert clock.cost("frozen") == pytest.approx(0.008) and clock.cost("forward") == pytest.approx(0.02)
    assert (units, planned) == (590, 590)
    read = 100 * 0.02 + 490 * 0.008  # every photo-view read: only the model's building is left of the task
    assert clock.tasks[clock.current].done == pytest.approx(read / (read + clock.cost("build")))
    assert clock.cost("train") == pytest.approx(PRIOR["ratio"] * 10 * 0.02)  # steps still priced from the first


def test_views_reported_after_a_cached_first_pass_count_that_pass_done() -> None:
    clock, now = _feature_clock()
    now.t += 1.0
    units, planned = clock.progress("features", 245, 490, key="frozen")  # the photos' own features were cached
    assert (units, planned) == (345, 590)
    task, cost = clock.tasks[clock.current], clock.cost
    whole = 100 * cost("forward") + 490 * cost("frozen") + cost("build")
    assert task.done == pytest.approx((100 * cost("forward") + 245 * cost("frozen")) / whole)


def test_validation_is_timed_on_its_own_and_paces_the_head_refit() -> None:
    clock = RunClock.for_fit(2, 10, n_val=20, batch_size=8, prior=PRIOR, now=FakeTime())
    clock.observe("forward", 0.5, 50)
    clock.observe("forward", 2.0, 100)  # the start trunk's first feature pass: 20 ms a photo
    assert clock.cost("val") == clock.cost("refit") == pytest.approx(0.02)  # nothing else timed yet
    clock.observe("val", 0.2, 20)
    clock.observe("val", 0.2, 20)  # the adapted trunk's validation: 10 ms a photo
    assert clock.cost("val") == clock.cost("refit") == pytest.approx(0.01)  # the refit reads photos at that pace
    assert clock.cost("forward") == pytest.approx(0.02)  # and the first pass's own cost is kept


def test_phases_not_yet_run_are_in_the_time_left() -> None:
    now = FakeTime()
    shape = RunShape(photos=100, strategy="fine-tune", epochs=3, batch_size=10, splits=(70, 15, 15))
    clock = RunClock(shape, PRIOR, now)
    whole = clock.remaining()
    assert whole == pytest.approx(estimate_seconds(shape, {**PRIOR, "start": 0.0}))
    for done in (25, 50, 75, 100):  # checking 100 photos at 0.02 s each (the prior said 0.01)
        now.t += 0.5
        clock.progress("check", done, 100)
    left = clock.remaining()
    fit = next(t for t in clock.tasks if t.name == "fit").left(clock.cost)
    assert 0 < fit < left < whole  # training and everything after it are still counted
    assert clock.cost("check") == pytest.approx(0.02)
    now.t += 5.0
    clock.progress("features", 100, 100)  # one photo's forward pass measured: training steps follow from it
    assert clock.cost("forward") == pytest.approx(0.05)
    assert clock.cost("train") == pytest.approx(PRIOR["ratio"] * 10 * 0.05)


def test_a_count_that_restarts_adds_to_the_task() -> None:
    now = FakeTime()
    clock = RunClock(RunShape(photos=100, splits=(70, 15, 15)), PRIOR, now)
    now.t += 1
    assert clock.progress("features", 100, 100) == (100, 590)  # the start trunk's features of every photo
    now.t += 1
    assert clock.progress("features", 70, 490) == (170, 590)  # then the first extra view, one count over all views
    now.t += 1
    clock.progress("decode", 10, 100)  # an earlier task: never backwards
    assert clock.tasks[clock.current].name == "features"


def test_priors_follow_the_backbone_and_the_image_size() -> None:
    small, large = priors("mobilenetv2_100", 112, 32), priors("mobilenetv2_100", 224, 32)
    assert large["train"] == pytest.approx(4 * small["train"]) and large["forward"] > small["forward"]
    measured = priors("resnet18.a1_in1k", 224, 32, {"images_per_s": 64.0, "image_size": 224})
    assert measured["train"] == pytest.approx(0.5)


def test_a_real_run_reports_the_whole_runs_time_left(easy_data: Path, tmp_path: Path, tiny_args: list[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(easy_data), "--out", str(out), *tiny_args, "--strategy", "fine-tune",
                 "--epochs", "3"]) == 0
    events = read_jsonl(out / "events.jsonl")
    timed = [e for e in events if e["event"] in ("progress", "epoch")]
    assert timed[0]["phase"] == "start" and timed[0]["eta_s"] > 0  # written before torch loads
    preparing = [e for e in timed if e.get("phase") in ("check", "decode", "features")]
    assert preparing and all(e["eta_s"] > 0 for e in preparing)
    epochs = [e for e in events if e["event"] == "epoch"]
    assert all(e["fit_eta_s"] <= e["eta_s"] + 1e-9 for e in epochs)
    assert epochs[-1]["eta_s"] < max(e["eta_s"] for e in preparing)  # less left at the end than while preparing
    assert all(e["images_per_s"] > 0 for e in epochs)  # a smoothed training speed
    assert events[-1]["event"] == "run_end" and events[-1]["eta_s"] == 0
    assert json.loads((out / "status.json").read_text())["eta_s"] == 0


def test_progress_text_tells_the_whole_runs_time_left_while_preparing() -> None:
    from ui.common import progress_summary

    running = {"state": "running"}
    start = progress_summary([{"event": "progress", "phase": "start", "done": 0, "total": 60, "eta_s": 95}], running)
    assert start.text == "Starting the training process… · about 1 min 35 s left"
    check = progress_summary([{"event": "progress", "phase": "features", "done": 300, "total": 300, "eta_s": 0.4,
                               "phase_eta_s": 0.0}], running)
    assert check.fraction == 1.0 and "0 s left" not in check.text and "a few seconds left" in check.text
    refit = progress_summary([{"event": "progress", "phase": "refit", "done": 10, "total": 40, "eta_s": 12}], running)
    assert refit.text.endswith("10 of 40 · about 12 s left")
    mixed = [{"event": "epoch", "epoch": 1, "epochs": 2, "images_per_s": 40.0},
             {"event": "progress", "phase": "features", "done": 5, "total": 10, "images_per_s": 9605.0, "eta_s": 30}]
    assert progress_summary(mixed, running).images_per_s is None or "9,605" not in progress_summary(mixed, running).text
    train = progress_summary(mixed[:1] + [{"event": "progress", "phase": "train", "epoch": 2, "epochs": 2, "batch": 1,
                                           "batches": 4, "images_per_s": 41.0, "eta_s": 20}], running)
    assert train.text == "Epoch 2 of 2 · 41 photos/s · about 20 s left"


def test_steps_that_train_a_third_of_the_trunk_cost_less_than_whole_trunk_steps() -> None:
    now = FakeTime()
    shape = RunShape(photos=100, strategy="progressive", epochs=3, batch_size=10, splits=(70, 15, 15),
                     shares=(1 / 3, 2 / 3, 1.0))
    clock = RunClock(shape, PRIOR, now)
    clock.begin("fit")
    for k in range(7):  # epoch 1: only the top third trains, 0.1 s a step
        now.t += 0.1
        clock.step(0.1, 10, epoch=0)
    whole = 0.1 / ((1 + 2 / 3) / 3)  # the same step over the whole trunk
    assert clock.cost("train") == pytest.approx(whole)
    assert clock.train_speed(0) == pytest.approx(100.0) and clock.train_speed(2) == pytest.approx(10 / whole)
    clock.fit_at(1)
    fit = next(t for t in clock.tasks if t.name == "fit")
    weights = [(1 + 2 * f) / 3 for f in (2 / 3, 1.0)]
    forward = clock.cost("forward")  # no forward pass measured: derived from the measured step
    assert forward == pytest.approx(whole / (PRIOR["ratio"] * 10))
    assert fit.left(clock.cost) == pytest.approx(sum(7 * whole * w + 15 * forward for w in weights))


def test_steps_of_a_share_not_yet_trained_are_priced_from_the_whole_trunk_when_its_cost_is_known() -> None:
    """How much a top-third step costs against a whole-trunk one varies by architecture (MobileNet's top is
    cheap, ResNet's dear): once the feature pass has timed a forward pass, a whole-trunk step is
    derived from it, and a share not yet trained costs that times its step weight."""
    now = FakeTime()
    shape = RunShape(photos=100, strategy="progressive", epochs=3, batch_size=10, splits=(70, 15, 15),
                     shares=(1 / 3, 2 / 3, 1.0))
    clock = RunClock(shape, PRIOR, now)
    clock.begin("features")
    clock.observe("forward", 0.02 * 50, 50)  # 20 ms a photo
    clock.begin("fit")
    for _ in range(7):
        now.t += 0.1
        clock.step(0.1, 10, epoch=0)
    whole = PRIOR["ratio"] * 10 * 0.02
    assert clock.cost("train", (1 + 2 / 3) / 3) == pytest.approx(0.1)  # the share measured: its own time
    assert clock.cost("train", (1 + 4 / 3) / 3) == pytest.approx(whole * (1 + 4 / 3) / 3)
    assert clock.cost("train") == pytest.approx(whole)


def test_the_plan_scores_every_held_out_photo_as_many_ways_as_the_model_checks_it() -> None:
    from core.config import RunConfig
    from core.eta import plan_run, shape_for

    def scored(strategy: str, views: int) -> float:
        config = RunConfig(data="", out="", strategy=strategy, views=views, folds=1)
        return next(t.parts["view"] for t in plan_run(shape_for(config, 100)) if t.name == "score")

    assert scored("fine-tune", 8) == 8 * scored("fine-tune", 1) > 0
    assert scored("feature-extraction", 1) == 0  # cached features: free
    assert scored("feature-extraction", 8) == scored("fine-tune", 8)  # with views it reads the photos


def test_a_training_speed_measured_here_before_beats_one_derived_from_the_feature_pass(tmp_path: Path) -> None:
    from core.config import RunConfig
    from core.eta import run_priors
    from core.workspace import Workspace

    shape = RunShape(photos=100, strategy="fine-tune", epochs=2, batch_size=8, splits=(70, 15, 15))
    ws = Workspace(tmp_path / "ws")
    config = RunConfig(data="", out="", backbone="test_resnet", image_size=32, batch_size=8, workspace=str(ws.root))
    assert "measured_here" not in run_priors(config)  # nothing measured here yet: the known speeds
    ws.record_speed("test_resnet", 80.0, 32)
    here = run_priors(config)
    assert here["train"] == pytest.approx(8 / 80.0)
    for prior, derived in ((PRIOR, True), (here, False)):
        now = FakeTime()
        clock = RunClock(shape, prior, now=now)
        clock.begin("features")
        now.t += 1.0
        clock.progress("features", 100, 100)  # a forward pass measured at 10 ms a photo
        expected = prior.get("ratio", 5.0) * 8 * 0.01 if derived else 8 / 80.0
        assert clock.cost("train") == pytest.approx(expected)


def test_every_estimate_of_a_run_can_be_traced_task_by_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = tmp_path / "eta.jsonl"
    monkeypatch.setenv("GRAFT_ETA_TRACE", str(trace))
    now = FakeTime()
    clock = RunClock(RunShape(photos=100, strategy="fine-tune", epochs=2, batch_size=8, splits=(70, 15, 15)), PRIOR,
                     now=now)
    clock.begin("features")
    shown = clock.eta()
    line = read_jsonl(trace)[-1]
    assert line["shown"] == pytest.approx(shown) and line["current"] == "features"
    assert sum(line["left"].values()) == pytest.approx(line["raw"]) and "fit" in line["left"]
