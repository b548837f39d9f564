"""The recipe's expensive parts, loaded on first use: a resumed run whose files hold a step's
output never loads its model."""

from __future__ import annotations


class LazyTeacher:
    """A teacher loaded on first use (a resumed run whose teacher's run is on disk never loads it)."""

    def __init__(self, load):
        self._load, self._teacher = load, None

    def __getattr__(self, name):
        if self._teacher is None:
            self._teacher = self._load()
        return getattr(self._teacher, name)


class LazyBackend:
    """The generator's hf backend, loaded on first use (a resumed run that has its queries never loads it)."""

    def __init__(self, model: str, batch_size: int):
        self.model, self.batch_size, self._be = model, batch_size, None

    def __call__(self):
        if self._be is None:
            from rankstack.rerankers.backends import load_backend

            self._be = load_backend("hf", model=self.model, dtype="auto", batch_size=self.batch_size)
        return self._be
