"""Pixel-format conversion of decoded PyAV frames with converters of pas's own, safe across fork.

PyAV converts a frame (``frame.to_ndarray(format=...)``, ``frame.reformat``) with an FFmpeg SwsContext.
From PyAV 17 that context scales with a pool of threads of its own (automatic count), and PyAV 18.1.1
shares one context per Python thread across every frame. The pool's threads exist only in the process
that created them: a DataLoader worker forked after its parent converted a frame inherits the shared
context without its threads, and its first conversion waits for them forever (FFmpeg's
``avpriv_slicethread_execute``; freeing such a context waits the same way, in ``pthread_join``).

pas converts with a ``Converter`` per reader (or per re-encoded file), created in the process that
uses it and single-threaded (``threads=1`` creates no pool), so no conversion state crosses a fork,
whichever PyAV is installed. DataLoader workers already decode in parallel; a pool per conversion
would only oversubscribe the cores.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


@functools.cache
def _pool_option() -> dict[str, Any]:
    import av

    major = int(str(av.__version__).split(".")[0])
    return {"threads": 1} if major >= 17 else {}  # before 17: sws_scale, no pool and no such option


class Converter:
    """Converts frames of one reader: ``rgb(frame)`` (uint8 H x W x 3) and ``reformat(frame, ...)``."""

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._sws = VideoReformatter()
        self._options = _pool_option()  # once per process, not per reader

    def reformat(self, frame: Any, **kwargs: Any) -> Any:
        """``frame.reformat(**kwargs)`` through this converter's own context."""
        return self._sws.reformat(frame, **kwargs, **self._options)

    def rgb(self, frame: Any) -> np.ndarray:
        # to_ndarray() without arguments converts nothing: the frame is rgb24 already
        return self.reformat(frame, format="rgb24").to_ndarray()  # type: ignore[no-any-return]
