"""Experiment for section 7: do test-time views lift Graft on NEU? One fit, every way of scoring it.

Each fit is the section's exact plan (``bench.realphotos``: NEU, 20 photos per class, the fixed 600
test photos, 224 px, the shared MobileNet-V2 weights, the strategy's default recipe, no validation
split). After it, the trunk's features of the test photos are taken in each of the 8 mirrored /
quarter-turned views (:data:`core.augment.VIEWS`), and every head is scored on them:

- ``final``: the head the recipe ends with (for fine-tune and progressive: refitted by logistic
  regression on the adapted trunk);
- ``trained``: fine-tune / progressive only, the head as gradient descent left it, before the refit;
- ``mean``: the average of those two heads (their logits averaged).

Each head is scored plainly (view ``""`` only), on the 4 mirrored views and on all 8 views (softmax
averaged). The logits are kept in ``--work`` so FE + FT ensembles can be scored afterwards
(:func:`ensembles`). ``python -m bench.realviews --methods feature-extraction --seeds 0,1,2``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["measure", "view_logits", "accuracies", "ensembles", "VIEW_SETS"]

VIEW_SETS = {"plain": ("",), "flips": ("", "h", "v", "hv"),
             "views": ("", "h", "v", "hv", "t", "th", "tv", "thv")}
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "bench" / "real_views.jsonl"


@torch.inference_mode()
def view_logits(model: Any, images: np.ndarray, index: np.ndarray, mean: list[float], std: list[float],
                runtime: Any, heads: dict[str, dict[str, torch.Tensor]], batch: int = 50) -> dict[str, np.ndarray]:
    """Logits (views x photos x classes) of every head in ``heads`` on the trunk's features of each view."""
    from core.augment import VIEWS, dihedral, to_model_input

    model.eval()
    m, s = torch.tensor(mean), torch.tensor(std)
    feats = []
    for view in VIEWS:
        rows = []
        for a in range(0, len(index), batch):
            u8 = dihedral(np.asarray(images[index[a:a + batch]]), view)
            with runtime.autocast():
                rows.append(model.trunk(to_model_input(torch.from_numpy(u8), m, s)).float())
        feats.append(torch.cat(rows))
    out = {}
    head = copy.deepcopy(next(iter(model.heads.values()))).float().eval()
    for name, state in heads.items():
        head.load_state_dict(state)
        out[name] = torch.stack([head(f) for f in feats]).numpy()
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def view_probs(logits: np.ndarray, view_set: str) -> np.ndarray:
    """Softmax averaged over the views of ``view_set`` (logits: views x photos x classes, in VIEWS order)."""
    from core.augment import VIEWS

    keep = [VIEWS.index(v) for v in VIEW_SETS[view_set]]
    return _softmax(logits[keep]).mean(0)


def accuracies(logits: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Test accuracy of every head under every view set, keyed ``head/view_set``."""
    return {f"{head}/{vs}": float((view_probs(lg, vs).argmax(1) == y).mean())
            for head, lg in logits.items() for vs in VIEW_SETS}


def _heads_of(fitter: Any) -> list[dict[str, torch.Tensor]]:
    """Make ``fitter`` keep a copy of the heads each time before a probe (re)sets them."""
    seen: list[dict[str, torch.Tensor]] = []
    probe = fitter._probe

    def keep(model, *args, **kw):
        seen.append({k: v.detach().clone() for k, v in next(iter(model.heads.values())).state_dict().items()})
        return probe(model, *args, **kw)
    fitter._probe = keep
    return seen


def measure(method: str, seed: int, work: Path, shots: int = 20) -> dict[str, Any]:
    """One fit of section 7's plan at ``shots`` per class; its accuracies under every head and view set."""
    from core.callbacks import StopWatcher
    from core.config import RunConfig
    from core.fitting import Fitter
    from core.runs import RunFolder

    from .profiles import RealCfg
    from .realdata import neu_split, shared_root
    from .realfit import _prepared
    from .realphotos import photo_size

    cfg, root = RealCfg(), shared_root()
    photos = neu_split(root, shots, seed, cfg.test_per_class)
    size = photo_size(neu_split(root, 1, 0, cfg.test_per_class), cfg.backbone)
    run_dir = work / f"neu-{method}-{shots}-{seed}"
    config = RunConfig(data=str(run_dir), out=str(run_dir / "run"), backbone=cfg.backbone,
                       start=f"file:{root / cfg.weights}", strategy=method, image_size=size, seed=seed,
                       epochs=cfg.epochs, batch_size=32)
    prep = _prepared(photos, "label", config)
    run = RunFolder(config.out)
    run.path.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fitter = Fitter(config, prep, run, StopWatcher(run))
    seen = _heads_of(fitter)
    fitted = fitter.fit(prep.splits, callbacks=[], checkpoint=False)
    seconds = time.perf_counter() - t0
    model, test = fitted.model, np.asarray(prep.splits["test"])
    final = {k: v.detach().clone() for k, v in next(iter(model.heads.values())).state_dict().items()}
    heads = {"final": final}
    if len(seen) > 1:  # the recipe refitted the head: also score the trained one and their mean
        heads["trained"] = seen[-1]
        heads["mean"] = {k: (final[k] + seen[-1][k]) / 2 for k in final}
    t1 = time.perf_counter()
    logits = view_logits(model, fitter.images, test, fitter.dcfg["mean"], fitter.dcfg["std"], fitter.runtime, heads)
    view_seconds = time.perf_counter() - t1
    y = prep.targets["label"][test]
    pipeline = next(iter(fitted.predict("test").values())).argmax(1)
    np.savez_compressed(run_dir / "logits.npz", y=y, **logits)
    return {"method": method, "seed": seed, "shots": shots, "image_size": size, "seconds": round(seconds, 1),
            "views_seconds": round(view_seconds, 1), "threads": torch.get_num_threads(),
            "pipeline": float((pipeline == y).mean()), "accuracy": accuracies(logits, y),
            "load": round(os.getloadavg()[0], 2)}


def ensembles(work: Path, shots: int = 20) -> dict[str, dict[int, float]]:
    """FE + FT probabilities averaged, per seed with both fits in ``work``, under each view set."""
    out: dict[str, dict[int, float]] = {}
    for fe_file in sorted(work.glob(f"neu-feature-extraction-{shots}-*/logits.npz")):
        seed = int(fe_file.parent.name.rsplit("-", 1)[1])
        ft_file = work / f"neu-fine-tune-{shots}-{seed}" / "logits.npz"
        if not ft_file.is_file():
            continue
        fe, ft = np.load(fe_file), np.load(ft_file)
        for vs in VIEW_SETS:
            p = (view_probs(fe["final"], vs) + view_probs(ft["final"], vs)) / 2
            out.setdefault(f"fe+ft/{vs}", {})[seed] = float((p.argmax(1) == ft["y"]).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realviews", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="feature-extraction")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: Graft's default)")
    parser.add_argument("--work", default="/tmp/graft-realviews")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--ensembles", action="store_true", help="only score FE + FT ensembles of earlier fits")
    args = parser.parse_args(argv)
    work = Path(args.work)
    os.environ.setdefault("GRAFT_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.ensembles:
        print(json.dumps(ensembles(work), indent=1))
        return 0
    if args.threads:
        import core.device

        core.device.physical_cores = lambda: args.threads
        torch.set_num_threads(args.threads)
    for method in args.methods.split(","):
        for seed in map(int, args.seeds.split(",")):
            rec = measure(method, seed, work)
            print(json.dumps(rec), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    sys.exit(main())
