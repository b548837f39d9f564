"""The HTTP rerank service (``rankstack serve``) and its client.

- :mod:`rankstack.serve.app`: ``create_app(reranker, ServeConfig(...))``, the FastAPI app (Jina
  ``/v1/rerank``, Cohere ``/v2/rerank``, TEI ``/rerank``, ``/health``, ``/v1/models``, ``/metrics``);
- :mod:`rankstack.serve.schemas`: each API's request and response bodies;
- :mod:`rankstack.serve.batcher`: dynamic batching, one worker thread owning the model;
- :mod:`rankstack.serve.server`: uvicorn with a drain phase on SIGTERM;
- :mod:`rankstack.serve.commands`: the ``rankstack serve`` command;
- :mod:`rankstack.serve.client`: ``RemoteReranker`` (standard library only).

The server needs the ``serve`` extra (fastapi, uvicorn, prometheus-client); the client does not.
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
