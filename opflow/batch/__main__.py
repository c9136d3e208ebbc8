"""``python -m opflow.batch solve ...``: ``opflow solve`` without the rest of the CLI."""

import sys

from .commands import main

sys.exit(main())
