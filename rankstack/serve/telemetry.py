"""OpenTelemetry spans of a rerank request, when the ``opentelemetry`` packages are installed.

Each rerank request is a span ``rankstack.rerank`` (route, documents, status) with children
``rankstack.parse`` (reading and checking the body), ``rankstack.queue`` (waiting for the model:
from submission until the worker takes it) and ``rankstack.model_pass`` (the engine pass it ran
in: how many requests were merged into it, their documents, the model requests it made). Spans
go wherever the process's tracer provider sends them: configure one (``opentelemetry-sdk`` plus
an exporter, or run the server under ``opentelemetry-instrument``); without one the API's
no-op tracer costs nothing, and without the packages every call here is a no-op.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

try:  # optional: the serve extra does not need it
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where opentelemetry is absent
    _trace = _context = None


class Telemetry:
    """Spans through the global tracer provider (``enabled=False`` or no opentelemetry: none)."""

    def __init__(self, enabled: bool = True):
        self.tracer = _trace.get_tracer("rankstack.serve") if (_trace is not None and enabled) else None

    def span(self, name: str, **attributes):
        """A span around a block, a child of the current one."""
        if self.tracer is None:
            return nullcontext()
        return self._span(name, attributes)

    @contextmanager
    def _span(self, name, attributes):
        with self.tracer.start_as_current_span(name, attributes=_clean(attributes)) as span:
            yield span

    def current(self):
        """The current context (to parent spans started on another thread), or None."""
        return _context.get_current() if self.tracer is not None else None

    def start(self, name: str, parent, **attributes):
        """A span started now under ``parent`` (a :meth:`current` context); end it with :func:`end`."""
        if self.tracer is None or parent is None:
            return None
        return self.tracer.start_span(name, context=parent, attributes=_clean(attributes))


def end(span, error: BaseException | None = None, **attributes) -> None:
    if span is None:
        return
    for k, v in _clean(attributes).items():
        span.set_attribute(k, v)
    if error is not None:
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__))
    span.end()


def set_attributes(span, **attributes) -> None:
    if span is not None and hasattr(span, "set_attribute"):
        for k, v in _clean(attributes).items():
            span.set_attribute(k, v)


def _clean(attributes: dict) -> dict:
    return {f"rankstack.{k}": v for k, v in attributes.items() if v is not None}
