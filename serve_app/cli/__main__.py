"""``python -m serve_app.cli``: the same as ``serve-app``."""

import sys

from serve_app.cli.main import main

sys.exit(main())
