"""The bridge: the public port answers embeddings and search while Ray and Serve start.

``serve-app run`` starts it first (``python -m serve_app.startup.bridge [--host H] [--port P]``,
before its own settings are read, so the missing ones from the bridge's), before ``ray
start``. It binds the public port at once, loads the embedding model as a plain process
would, and answers ``/v1/embeddings``, ``/v1/documents`` and ``/v1/search`` with the same
code as the ingress (:class:`EmbeddingService`, :class:`StoreService`, the same middleware and
error shapes), the model running in this process. Every other request is held until Serve
answers and then forwarded to it, so none is refused or lost. When Serve's ``/health`` is 200
(serve-app asks Serve's fallback proxy, which the bridge does not stand in front of),
serve-app writes ``handover URL`` (that proxy) to the bridge's stdin: the bridge checks that
Serve's HAProxy listens in the port's socket group, steers new connections to it, finishes
what it holds (forwarded to URL), and exits, and its memory (the model) goes with it. If no
HAProxy shares the port (:func:`haproxy_missing`), steering would send connections nowhere:
the bridge keeps the port instead, passes every request on to URL, and says so (``KEPT``).

Both listen on the same address with ``SO_REUSEPORT`` (HAProxy with
``SERVE_SOCKET_REUSE_PORT_ENABLED=1``). A socket group that shares a port would spread
connections over its sockets by a hash; a classic BPF program on the group
(``SO_ATTACH_REUSEPORT_CBPF``) picks the socket instead: the bridge's own (index 0: it binds
first) until the handover, HAProxy's (index 1) after it. Linux only; classic BPF needs no
privileges.

Answers from the bridge carry ``X-Served-By: bridge``. Its ``/health`` is API.md's: 200 when
the model is loaded and the store answers; every other model of the config has no replica yet
and reports ``scaled_to_zero`` (a request to it is held until Serve answers, as a request to
a deployment at zero replicas waits for its cold start), so that Fly's proxy, which routes to
a machine once its check passes, sends embeddings and search here at once.

Commands on stdin, one JSON object or line each: ``{"components": [...], "store": bool}``
(the config's other models; until then ``/health`` is 503), ``handover URL``. At the end of
stdin (serve-app is gone) the bridge exits.

The package: :mod:`.sockets` (the port's socket group, steering, who listens), :mod:`.server`
(the bridge process: its app, the model, the handover; ``python -m serve_app.startup.bridge``) and
:mod:`.process` (``serve-app run``'s side: start, configure, hand over, stop). Here: the lines
the two sides exchange.
"""

from __future__ import annotations

SERVED_BY = "bridge"
# the lines serve-app waits for (BridgeProcess.wait_loaded)
LOADED, FAILED = "bridge: embedding model loaded", "bridge: embedding model failed"
# Printed once the requests that waited for the model are answered (at most CATCH_UP_S after
# the load): serve-app starts Ray then, so that those answers do not share the cores with it.
CAUGHT_UP, CATCH_UP_S = "bridge: answered what waited for the model", 1.0
# Printed at a handover when no HAProxy shares the port: the bridge stays the front door.
KEPT = "bridge: kept the port"
