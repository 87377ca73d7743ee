"""Writing a file so that it is either whole or absent: the one way this package replaces a state file.

Owns `write_atomic`: the text goes to a temporary file beside the target,
is flushed to disk, and is renamed over the target (atomic on one
filesystem). A process killed mid-write leaves the old file, never half of
the new one. Keras Tuner's own saves go through it too
(`tuning.search.kt_patches`, patch 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union


def write_atomic(path: Union[str, Path], text: str) -> None:
    """Replaces `path` with `text`, whole or not at all.

    Args:
        path: The file to write; its folder must exist.
        text: The new contents.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
