"""Model and weights files never run code, and bad ones get a clear message."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.backbones import build
from core.cli import main
from core.errors import GraftError
from core.weights import load_state_dict_file


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a malicious checkpoint does: run code while unpickling
        return (open, (str(self.marker), "w"))


def _evil_pth(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": _Payload(marker)}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    return path, marker


@pytest.mark.parametrize("force_unsafe", [False, True])
def test_pickle_payload_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force_unsafe: bool) -> None:
    path, marker = _evil_pth(tmp_path)
    if force_unsafe:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(GraftError, match="can't be loaded safely"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_pickle_payload_refused_as_a_start_point(tmp_path: Path, easy_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, marker = _evil_pth(tmp_path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    code = main(["train", str(easy_data), "--out", str(tmp_path / "run"), "--backbone", "test_resnet",
                 "--start", f"file:{path}", "--image-size", "32", "--epochs", "1"])
    assert code == 2 and not marker.exists()


def test_plain_pth_state_dict_loads(tmp_path: Path) -> None:
    trunk = build("test_resnet", "scratch")
    torch.save({"state_dict": {f"module.{k}": v for k, v in trunk.state_dict().items()}}, tmp_path / "ok.pth")
    state = load_state_dict_file(tmp_path / "ok.pth")
    assert set(state) == set(trunk.state_dict())


def _raw_safetensors(path: Path, header: bytes, declared_len: int | None = None, body: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if declared_len is None else declared_len) + header + body)
    return path


def test_huge_header_is_refused_without_allocating(tmp_path: Path) -> None:
    path = _raw_safetensors(tmp_path / "huge.safetensors", b"{}", declared_len=2**62)
    with pytest.raises(GraftError, match="header is damaged"):
        load_state_dict_file(path)


def test_bad_offsets_are_refused(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    path = _raw_safetensors(tmp_path / "bad.safetensors", header, body=b"\0" * 16)
    with pytest.raises(GraftError, match="bad offsets"):
        load_state_dict_file(path)


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(GraftError, match="too short"):
        load_state_dict_file(tmp_path / "short.safetensors")
    (tmp_path / "junk.bin").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(GraftError):
        load_state_dict_file(tmp_path / "junk.bin")


def test_weights_for_another_architecture(tmp_path: Path, easy_data: Path, capsys: pytest.CaptureFixture) -> None:
    save_file(build("test_efficientnet", "scratch").state_dict(), str(tmp_path / "effnet.safetensors"))
    code = main(["train", str(easy_data), "--out", str(tmp_path / "run"), "--backbone", "test_resnet",
                 "--start", f"file:{tmp_path / 'effnet.safetensors'}", "--image-size", "32", "--epochs", "1"])
    assert code == 2 and "don't fit this backbone" in capsys.readouterr().err


def test_matching_weights_file_is_a_start_point(tmp_path: Path, easy_data: Path) -> None:
    trunk = build("test_resnet", "scratch")
    save_file(trunk.state_dict(), str(tmp_path / "trunk.safetensors"))
    code = main(["train", str(easy_data), "--out", str(tmp_path / "run"), "--backbone", "test_resnet",
                 "--start", f"file:{tmp_path / 'trunk.safetensors'}", "--image-size", "32", "--epochs", "1"])
    assert code == 0
