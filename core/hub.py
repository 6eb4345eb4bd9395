"""Whether the model hub can be reached, answered in seconds (the hub's own retries take ~45 s offline).

Free of torch and timm, so the app can ask it in the background while the first page is drawn.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

__all__ = ["pretrained_available"]


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
