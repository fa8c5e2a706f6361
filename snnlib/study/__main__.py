"""``python -m snnlib.study``: the study runner's command line (see :mod:`snnlib.study.cli`)."""
import sys

from .cli import main

sys.exit(main())
