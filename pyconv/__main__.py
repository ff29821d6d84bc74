"""``python -m pyconv``: the same as the ``pyconv`` command (see :mod:`pyconv.cli`)."""
import sys

from .cli import main

sys.exit(main())
