"""``file:`` start points: every layout Graft accepts loads exactly, every other one is refused with reasons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from core.backbones import build, check_weights_file
from core.cli import main
from core.errors import GraftError
from core.model import GraftModel, Task
from core.package import ModelSpec, save_package


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa if not k.endswith("num_batches_tracked"))


def _seeded(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(1)
    model = timm.create_model(name, **kw)
    with torch.no_grad():  # non-default statistics, so a test notices when they are not loaded
        for k, v in model.state_dict().items():
            if "running" in k:
                v.uniform_(0.5, 1.5)
    return model


def test_a_graft_model_package_is_a_start_point(tmp_path: Path) -> None:
    trunk = _seeded("test_resnet", num_classes=0)
    tasks = [Task("label", ("ok", "scratch"))]
    model = GraftModel(trunk, tasks)
    save_package(model, ModelSpec("test_resnet", tasks, ["ok", "scratch"], 32, [0.5] * 3, [0.5] * 3), tmp_path / "model")
    loaded = build("test_resnet", f"file:{tmp_path / 'model' / 'model.safetensors'}", image_size=32)
    assert _same(loaded, trunk)
    assert "format: Graft model" in check_weights_file(tmp_path / "model" / "model.safetensors", "test_resnet").summary()


def test_missing_trunk_weights_are_refused_and_listed(tmp_path: Path) -> None:
    state = _seeded("test_resnet", num_classes=0).state_dict()
    dropped = ["layer4.0.conv2.weight", "layer4.0.bn2.weight"]
    save_file({k: v for k, v in state.items() if k not in dropped}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(GraftError) as err:
        build("test_resnet", f"file:{tmp_path / 'partial.safetensors'}", image_size=32)
    message = str(err.value)
    assert all(k in message for k in dropped) and "2 of" in message and "format: timm" in message


def test_classifier_tensors_may_be_absent_or_extra(tmp_path: Path) -> None:
    full = _seeded("test_resnet", num_classes=7)
    save_file(full.state_dict(), str(tmp_path / "with_fc.safetensors"))
    fit = check_weights_file(tmp_path / "with_fc.safetensors", "test_resnet")
    assert fit.ok and fit.ignored_head == 2 and "fits" in fit.summary()
    trunk = build("test_resnet", f"file:{tmp_path / 'with_fc.safetensors'}", image_size=32)
    assert torch.equal(trunk.state_dict()["conv1.0.weight"], full.state_dict()["conv1.0.weight"])


def test_another_architecture_is_refused_naming_its_format(tmp_path: Path) -> None:
    save_file(build("test_efficientnet", "scratch").state_dict(), str(tmp_path / "effnet.safetensors"))
    with pytest.raises(GraftError, match=r"don't fit this backbone.*missing.*format: "):
        build("test_resnet", f"file:{tmp_path / 'effnet.safetensors'}")


def test_a_vit_file_at_another_size_gets_its_position_embeddings_resized(tmp_path: Path) -> None:
    source = _seeded("test_vit", num_classes=0)  # native 160 px: 10 x 10 patches + class token
    save_file(source.state_dict(), str(tmp_path / "vit.safetensors"))
    trunk = build("test_vit", f"file:{tmp_path / 'vit.safetensors'}", image_size=64)  # 4 x 4 patches
    expected = timm.layers.resample_abs_pos_embed(source.pos_embed.detach(), new_size=(4, 4), num_prefix_tokens=1)
    assert trunk.pos_embed.shape == (1, 17, source.pos_embed.shape[-1])
    assert torch.allclose(trunk.pos_embed, expected, atol=1e-5)
    assert torch.equal(trunk.pos_embed[:, 0], source.pos_embed[:, 0])  # the class token's embedding is kept
    assert torch.equal(trunk.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_a_torchvision_resnet_file_loads(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(2)
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18-tv.pth")
    trunk = build("resnet18", f"file:{tmp_path / 'resnet18-tv.pth'}", image_size=32)
    assert torch.equal(trunk.state_dict()["layer3.1.conv2.weight"], tv.state_dict()["layer3.1.conv2.weight"])
    trunk.eval()
    tv.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(trunk(x), tv.eval()(x), atol=1e-5)  # the same network, not just the same names
    assert "torchvision-style ResNet" in check_weights_file(tmp_path / "resnet18-tv.pth", "resnet18").summary()


def _to_facebook_convnext(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's ConvNeXt keys back into the original repository's (what timm's filter undoes)."""
    out = {}
    for k, v in state.items():
        k = k.replace("stem.", "downsample_layers.0.")
        k = re.sub(r"stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2", k)
        k = re.sub(r"stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2", k)
        k = k.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv").replace("head.norm", "norm")
        out[k] = v
    return out


def test_an_original_repository_checkpoint_is_converted(tmp_path: Path) -> None:
    source = _seeded("test_convnext", num_classes=0)
    torch.save({"model": _to_facebook_convnext(source.state_dict())}, tmp_path / "convnext_fb.pth")
    trunk = build("test_convnext", f"file:{tmp_path / 'convnext_fb.pth'}", image_size=32)
    assert _same(trunk, source)
    fit = check_weights_file(tmp_path / "convnext_fb.pth", "test_convnext")
    assert fit.ok and "original repository" in fit.summary()


def test_weights_check_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save_file(build("test_resnet", "scratch").state_dict(), str(tmp_path / "good.safetensors"))
    assert main(["weights", "check", str(tmp_path / "good.safetensors"), "--backbone", "test_resnet"]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "fits: all" in out
    assert main(["weights", "check", str(tmp_path / "good.safetensors"), "--backbone", "test_efficientnet"]) == 1
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "does not fit" in out and "format:" in out


def test_weights_download_fails_fast_and_plainly_offline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["weights", "download", "resnet18.a1_in1k", "--out", str(tmp_path / "r18.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "can't be reached" in err and "Traceback" not in err
    assert not (tmp_path / "r18.safetensors").exists()
