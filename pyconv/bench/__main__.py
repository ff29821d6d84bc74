"""``python -m pyconv.bench ...`` = ``pyconv bench ...``."""
import sys

from . import main

sys.exit(main())
