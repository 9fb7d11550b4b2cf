"""``python -m mmcore`` and ``accelerate launch -m mmcore``: the ``mm`` CLI."""

import sys

from mmcore.cli import main

sys.exit(main())
