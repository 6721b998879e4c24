"""``python -m serve_app.bridge``: the bridge process (:mod:`serve_app.bridge.server`)."""

import sys

from serve_app.bridge.server import main

sys.exit(main())
