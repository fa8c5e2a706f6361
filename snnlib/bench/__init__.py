"""Benchmarks over the core: ``python -m snnlib.bench`` (throughput, peak memory, the peer comparison).

Depends on the core only.  :mod:`~snnlib.bench.throughput` measures snnlib; :mod:`~snnlib.bench.compare` builds
the same network in snnTorch and SpikingJelly and checks they agree before timing.
"""
