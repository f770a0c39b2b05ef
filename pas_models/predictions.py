"""What an evaluation saw, video by video: kept beside its result so that its accuracy has an interval and two
networks can be compared on the same videos (pas_models.intervals).

Two forms:

- ``PerVideo``, inside the result (``result.json``'s ``per_video``, a rung's ``rung-K.json`` too): which videos
  of the validation list were evaluated and which of them each network got right at top-1 and top-5, as bit
  sets (base64): what the controller needs for a paired comparison, without numpy. 19,881 Kinetics-400
  videos are 3 x 3.3 kB; the demo's 640, 3 x 108 bytes.
- ``predictions.npz`` beside it (``rung-K.predictions.npz`` for a rung; written atomically, before the result):
  per evaluated video its index in the validation list, its label, the ``k`` most likely classes (k = min(5,
  classes)) with their view-averaged probabilities, and the label's probability; ``format`` and ``videos`` (the
  list's length). 4 + 4 + 6k + 2 bytes a video: 0.8 MB per evaluation on Kinetics-400 (19,881 videos), 27 kB
  on the demo's 640 (the file as written, headers included).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pas_models.errors import PasError

if TYPE_CHECKING:
    import numpy as np

FORMAT = 1


class PredictionsInvalid(PasError):
    """A per-video record that is not whole or not of the videos it claims."""


def pack(bits: Sequence[bool]) -> str:
    """A bit set as base64 (bit i of byte i // 8, least significant first)."""
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i // 8] |= 1 << (i % 8)
    return base64.b64encode(bytes(out)).decode()


def unpack(text: str, n: int) -> list[bool]:
    raw = base64.b64decode(text.encode(), validate=True)
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"{len(raw)} bytes for {n} bits")
    return [bool(raw[i // 8] >> (i % 8) & 1) for i in range(n)]


@dataclass(frozen=True)
class PerVideo:
    """Over the ``videos`` of the validation list: which were evaluated, and which were right at top-1 / top-5."""

    videos: int
    evaluated: tuple[bool, ...]
    top1: tuple[bool, ...]
    top5: tuple[bool, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "videos": self.videos, "evaluated": pack(self.evaluated), "top1": pack(self.top1),
                "top5": pack(self.top5)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "per_video") -> PerVideo:
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("videos"), int):
            raise PredictionsInvalid(f"{source}: not a per-video record of format {FORMAT}")
        n = data["videos"]
        try:
            ev, t1, t5 = (tuple(unpack(data[k], n)) for k in ("evaluated", "top1", "top5"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictionsInvalid(f"{source}: {exc.__class__.__name__}: {exc}") from None
        if any((a or b) and not e for a, b, e in zip(t1, t5, ev, strict=True)):
            raise PredictionsInvalid(f"{source}: a video is right that was not evaluated")
        return cls(n, ev, t1, t5)

    def shared(self, other: PerVideo, top: int = 1) -> tuple[list[bool], list[bool]]:
        """This one's and ``other``'s correctness on the videos both evaluated, in list order."""
        if other.videos != self.videos:
            raise PredictionsInvalid(f"per-video records of {self.videos} and {other.videos} videos: not the same "
                                     "validation list")
        mine, theirs = (self.top1, other.top1) if top == 1 else (self.top5, other.top5)
        both = [i for i in range(self.videos) if self.evaluated[i] and other.evaluated[i]]
        return [mine[i] for i in both], [theirs[i] for i in both]


@dataclass(frozen=True)
class Predictions:
    """The per-video scores of one evaluation (numpy arrays; see the module docstring)."""

    videos: int  # the validation list's length
    video: np.ndarray  # int32 [V]: index in the list
    label: np.ndarray  # int32 [V]
    top: np.ndarray  # int32 [V, k]
    prob: np.ndarray  # float16 [V, k]
    true_prob: np.ndarray  # float16 [V]

    def per_video(self) -> PerVideo:
        evaluated = [False] * self.videos
        top1 = [False] * self.videos
        top5 = [False] * self.videos
        for v, y, t in zip(self.video.tolist(), self.label.tolist(), self.top.tolist(), strict=True):
            evaluated[v] = True
            top1[v] = t[0] == y
            top5[v] = y in t[:5]
        return PerVideo(self.videos, tuple(evaluated), tuple(top1), tuple(top5))

    def write(self, path: Path) -> None:
        import numpy as np

        from pas_models.train.checkpoint import atomic_write

        atomic_write(path, lambda fh: np.savez(fh, format=np.array(FORMAT), videos=np.array(self.videos),
                                               video=self.video, label=self.label, top=self.top, prob=self.prob,
                                               true_prob=self.true_prob))

    @classmethod
    def read(cls, path: Path) -> Predictions:
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != FORMAT:
                    raise PredictionsInvalid(f"{path}: format {int(z['format'])}, this pas reads {FORMAT}")
                return cls(int(z["videos"]), z["video"], z["label"], z["top"], z["prob"], z["true_prob"])
        except PredictionsInvalid:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise PredictionsInvalid(f"{path}: not a readable predictions file ({exc.__class__.__name__}: {exc})"
                                     ) from None
