"""The bridge: the public port answers embeddings and search while Ray and Serve start, then
goes to Serve's HAProxy (how, and why: docs/architecture.md). Answers carry ``X-Served-By``.

Commands on its stdin, one a line: ``{"components": [...], "store": bool}`` (the config's other
models; until then ``/health`` is 503) and ``handover URL``; at the end of stdin it exits.
Here: the lines the two sides exchange.
"""

from __future__ import annotations

SERVED_BY = "bridge"
# the lines serve-app waits for (BridgeProcess.wait_loaded)
LOADED, FAILED = "bridge: embedding model loaded", "bridge: embedding model failed"
# printed once what waited for the model is answered (at most CATCH_UP_S): then Ray starts
CAUGHT_UP, CATCH_UP_S = "bridge: answered what waited for the model", 1.0
# printed at a handover when no HAProxy shares the port: the bridge stays the front door
KEPT = "bridge: kept the port"
