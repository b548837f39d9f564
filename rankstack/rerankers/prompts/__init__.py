"""Prompts as versioned templates, kept apart from model code.

Each paradigm's templates live in a module of this package (``prompts.pointwise``,
``prompts.listwise``, ...). Rerankers and the training example builders render the same
templates, so training and inference never drift apart. Changing a template's text means
bumping its ``version`` (the version is part of every cache fingerprint).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from rankstack.rerankers.backends.base import Prompt


@dataclass(frozen=True)
class PromptTemplate:
    """``system`` and ``user`` are ``str.format`` templates over named slots."""

    name: str
    version: str
    user: str
    system: str | None = None
    assistant_prefix: str = ""
    defaults: dict = field(default_factory=dict)

    @property
    def slots(self) -> set[str]:
        names = set()
        for t in (self.system or "", self.user, self.assistant_prefix):
            names |= {f for _, f, _, _ in string.Formatter().parse(t) if f}
        return names

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, **slots) -> Prompt:
        values = {**self.defaults, **slots}
        missing = self.slots - set(values)
        if missing:
            raise KeyError(f"prompt {self.id}: missing slots {sorted(missing)}")
        system = self.system.format(**values) if self.system else None
        return Prompt.chat(self.user.format(**values), system=system,
                           assistant_prefix=self.assistant_prefix.format(**values))

    def with_(self, **changes) -> PromptTemplate:
        """A variant (another system prompt, instruction default, ...); give it a new version."""
        from dataclasses import replace

        return replace(self, **changes)
