"""``python -m snnlib.bench``: throughput and peak memory on this machine (see :mod:`snnlib.bench.throughput`)."""
import sys

from .throughput import main

sys.exit(main())
