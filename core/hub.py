"""Whether the model hub can be reached, answered in seconds (the hub's own retries take ~45 s offline).

Free of torch and timm, so the app can ask it in the background while the first page is drawn.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

__all__ = ["pretrained_available", "cached_in_hub"]


def pretrained_available(timeout: float = 3.0) -> bool:
    """Quickly tell whether the model hub can be reached (``HF_HUB_OFFLINE=1`` answers no at once)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    result: list[bool] = []

    def probe() -> None:  # DNS can block longer than any socket timeout, hence the thread
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def cached_in_hub(repo: str | None) -> bool:
    """Whether the hub cache on this computer holds the weights of ``repo`` (e.g. ``timm/resnet18.a1_in1k``)."""
    if not repo:
        return False
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, f), str)
               for f in ("model.safetensors", "open_clip_model.safetensors"))
