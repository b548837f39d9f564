"""How much of a run's model output fell back: the check that a reranker did its job.

Parsers never raise on model output (DESIGN: repair, fall back as the method says, count it);
the counts land in ``run.metadata`` (``parse_*`` keys). A small model that cannot follow a
prompt (SmolLM2-135M with ERank's, GroupRank's or Retro*'s formats) then falls back on most
outputs, and its "ranking" is mostly the fallback's (the first stage's order, or zeros): a
number that looks like a result and is not one. :func:`fallback_share` reads the share from a
run's metadata and :func:`fallback_warning` says it in one line when it is over
:data:`WARN_SHARE`; ``rankstack rerank``, the demo and the report's cost table show it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: warn when more than this share of a run's model outputs fell back
WARN_SHARE = 0.2

#: counter of outputs that fell back (unusable, replaced by the method's fallback) -> the
#: counters of the outputs they are a share of (the first one present is used)
FALLBACKS: dict[str, tuple[str, ...]] = {
    "parse_fallback": ("requests",),           # pointwise erank: no <answer>n</answer> -> 0
    "parse_no_candidates": ("requests",),      # pointwise: neither answer token among the log-probs
    "parse_failed_groups": ("groups",),        # groupwise: no usable JSON -> the group's documents 0
    "parse_failed": ("trajectories", "comparisons"),  # rubric: no score -> 0; setwise: the parent wins
    "parse_no_ids": ("outputs_parsed", "windows"),    # listwise: no ids -> the window unchanged
}


@dataclass
class FallbackShare:
    """``fell_back`` of ``outputs`` model outputs fell back (``counts``: each fallback counter)."""

    method: str
    fell_back: int
    outputs: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.fell_back / self.outputs if self.outputs else 0.0

    def text(self) -> str:
        """``"12 of 20 (60%)"`` with the counters: the cell the report's cost table shows."""
        detail = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"{self.fell_back} of {self.outputs} ({self.share:.0%})" + (f": {detail}" if detail else "")


def method_name(metadata: Mapping[str, Any]) -> str:
    """The method a run's metadata names: its prompt template (``pointwise.erank@1``), else the
    reranker's class (the start of its repr)."""
    if metadata.get("template"):
        return str(metadata["template"])
    text = str(metadata.get("reranker") or "the reranker")
    return re.split(r"[(\s]", text, maxsplit=1)[0] or text


def fallback_share(metadata: Mapping[str, Any] | None, method: str | None = None) -> FallbackShare | None:
    """The fallback share a run's metadata records (None: it counts no output a fallback can hit)."""
    if not metadata:
        return None
    counts: dict[str, int] = {}
    outputs = 0
    for key, over in FALLBACKS.items():
        n = metadata.get(key)
        if not isinstance(n, (int, float)) or n <= 0:
            continue
        counts[key] = int(n)
        total = next((metadata[k] for k in over if isinstance(metadata.get(k), (int, float))), 0)
        outputs = max(outputs, int(total))
    if not counts:
        n = metadata.get("requests")
        return FallbackShare(method or method_name(metadata), 0, int(n)) if isinstance(n, (int, float)) else None
    fell = sum(counts.values())
    return FallbackShare(method or method_name(metadata), fell, max(outputs, fell), counts)


def fallback_warning(metadata: Mapping[str, Any] | None, method: str | None = None,
                     threshold: float = WARN_SHARE) -> str | None:
    """One line when more than ``threshold`` of the run's model outputs fell back, else None."""
    fs = fallback_share(metadata, method)
    if fs is None or fs.share <= threshold:
        return None
    detail = ", ".join(f"{k} {v}" for k, v in fs.counts.items())
    return (f"{fs.method}: {fs.fell_back} of {fs.outputs} model outputs ({fs.share:.0%}) fell back ({detail}): "
            "unparsable output scored by the method's fallback, so this ranking is mostly the fallback's, not the "
            "model's; try a larger model or another method")
