"""The HTTP rerank service (``rankstack serve``) and its client.

- :mod:`rankstack.serve.app`: ``create_app(reranker, ServeConfig(...))``, the FastAPI app (Jina
  ``/v1/rerank``, Cohere ``/v2/rerank``, TEI and infinity ``/rerank``, ``/info``, ``/health``,
  ``/v1/models``, ``/metrics``);
- :mod:`rankstack.serve.schemas`: each API's request and response bodies;
- :mod:`rankstack.serve.errors`: the error body every client family reads;
- :mod:`rankstack.serve.limits`: the checks of every input (JSON depth, numbers, Unicode, sizes);
- :mod:`rankstack.serve.guard`: draining, Host/Origin checks, the API key, request metrics;
- :mod:`rankstack.serve.batcher`: dynamic batching, one worker thread owning the model; passes
  cut when a request is abandoned; the query limits;
- :mod:`rankstack.serve.telemetry`: OpenTelemetry spans (when installed);
- :mod:`rankstack.serve.server`: uvicorn with a drain phase on SIGTERM, header/read timeouts and
  a connection cap;
- :mod:`rankstack.serve.commands`: the ``rankstack serve`` command;
- :mod:`rankstack.serve.client`: ``RemoteReranker``, sync and async (httpx).

The server needs the ``serve`` extra (fastapi, uvicorn, prometheus-client); the client does not.
docs/serving.md is the user's page.
"""

__all__ = ["RemoteReranker", "ServeConfig", "create_app"]


def __getattr__(name):  # the server's dependencies load only when the server is used
    if name == "RemoteReranker":
        from rankstack.serve.client import RemoteReranker

        return RemoteReranker
    if name in ("ServeConfig", "create_app"):
        from rankstack.serve import app

        return getattr(app, name)
    raise AttributeError(name)
