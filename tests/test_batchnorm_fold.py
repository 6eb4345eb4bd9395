"""The folded copy of a frozen trunk (core/batchnorm_fold.py): the same features, the trunk untouched,
and a fold refused when it would change what the trunk computes."""

from __future__ import annotations

import timm
import torch
from torch import nn

from core.batchnorm_fold import fold_pairs, folded_copy


def _with_learned_statistics(model: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine terms, as trained weights have (fresh ones are ~identity)."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_a_folded_trunk_gives_the_same_features_and_leaves_the_trunk_alone() -> None:
    trunk = _with_learned_statistics(timm.create_model("resnet10t", pretrained=False, num_classes=0))
    x = torch.randn(3, 3, 48, 48)
    before = trunk(x).detach()
    folded = folded_copy(trunk, x[:2])
    assert folded is not trunk and fold_pairs(trunk) and not fold_pairs(folded)  # every conv -> norm pair folded
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), before, rtol=1e-4, atol=1e-4)
        assert torch.equal(trunk(x), before)  # the trunk that trains and is saved keeps its own layers


def test_timm_norm_layers_that_also_activate_keep_their_activation() -> None:
    trunk = _with_learned_statistics(timm.create_model("mobilenetv2_050", pretrained=False, num_classes=0))
    x = torch.randn(2, 3, 32, 32)
    folded = folded_copy(trunk, x)
    with torch.no_grad():
        assert folded is not trunk and torch.allclose(folded(x), trunk(x), rtol=1e-4, atol=1e-4)


class _NormFirst(nn.Module):
    """A conv listed before its norm, but the norm runs first: folding them would change the output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


def test_a_fold_that_would_change_the_features_is_refused() -> None:
    model = _with_learned_statistics(_NormFirst())
    assert fold_pairs(model)  # the children's order suggests a fold ...
    assert folded_copy(model, torch.randn(2, 4, 8, 8)) is model  # ... the check on a real batch refuses it


def test_a_trunk_without_batchnorm_is_used_as_it_is() -> None:
    trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.ReLU()).eval()
    assert folded_copy(trunk, torch.randn(2, 3, 8, 8)) is trunk
