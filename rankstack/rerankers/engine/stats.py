"""What an engine pass cost and what its parsers met: :class:`EngineStats`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: the typed fields, in the order a run's metadata lists them
FIELDS = ("requests", "cache_hits", "model_requests", "generated_tokens")


@dataclass
class EngineStats:
    """Counts of one engine pass, or of several merged (blocks of a run, Ray batches).

    Attributes:
        requests: requests the programs yielded (each answered once, from the cache or the model).
        cache_hits: requests answered from the SQLite cache.
        model_requests: requests the backend ran (identical requests of a pass run once).
        generated_tokens: tokens the backend generated for ``GenerateRequest``s.
        wall_seconds: seconds the pass took (merged: the sum; a caller that times a whole job
            sets its own).
        counts: the paradigm's own counts, written by its programs: ``parse_*`` repairs and
            fallbacks, ``windows``, ``comparisons``, ``prompt_shrunk``, ...
    """

    requests: int = 0
    cache_hits: int = 0
    model_requests: int = 0
    generated_tokens: int = 0
    wall_seconds: float = 0.0
    counts: Counter = field(default_factory=Counter)

    @property
    def parse_counts(self) -> dict[str, int]:
        """The ``parse_*`` counts: every output a parser repaired or fell back on.

        Returns:
            ``{name: count}`` for the counts whose name starts with ``parse_``.
        """
        return {k: v for k, v in self.counts.items() if k.startswith("parse_")}

    def merge(self, other: EngineStats) -> EngineStats:
        """Add ``other``'s counts and seconds to these (in place).

        Args:
            other: the stats of another pass.

        Returns:
            ``self``, so merges chain.
        """
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.wall_seconds += other.wall_seconds
        self.counts.update(other.counts)
        return self

    def __add__(self, other: EngineStats) -> EngineStats:
        return EngineStats().merge(self).merge(other)

    @classmethod
    def total(cls, parts: Iterable[EngineStats]) -> EngineStats:
        """All of ``parts`` merged into a new object.

        Args:
            parts: stats of several passes.

        Returns:
            Their sum.
        """
        out = cls()
        for p in parts:
            out.merge(p)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The flat form a run's metadata, the CLI summary and a Ray batch carry.

        Returns:
            ``requests``, ``cache_hits``, ``model_requests`` (always), ``generated_tokens`` (when
            any), the paradigm's counts, and ``wall_seconds`` (when timed), rounded to ms.
        """
        out: dict[str, Any] = {"requests": self.requests, "cache_hits": self.cache_hits,
                               "model_requests": self.model_requests}
        if self.generated_tokens:
            out["generated_tokens"] = self.generated_tokens
        out.update(self.counts)
        if self.wall_seconds:
            out["wall_seconds"] = round(self.wall_seconds, 3)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EngineStats:
        """The inverse of :meth:`as_dict`.

        Args:
            values: a flat mapping (as :meth:`as_dict` writes it).

        Returns:
            The stats, typed fields filled and every other key in ``counts``.
        """
        typed = {k: int(values.get(k, 0)) for k in FIELDS}
        rest = Counter({k: v for k, v in values.items() if k not in FIELDS and k != "wall_seconds"})
        return cls(**typed, wall_seconds=float(values.get("wall_seconds", 0.0)), counts=rest)
