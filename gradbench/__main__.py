"""``python -m gradbench``: the ``gradbench`` command, for a checkout on ``PYTHONPATH`` or an
environment whose scripts folder is not on ``PATH``."""

import sys

from .cli import main

sys.exit(main())
