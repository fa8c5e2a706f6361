"""The study: profiles, the runner and its executors, the artifact cache, chapter computations, claims, plots.

Run it with ``python -m snnlib.study run --profile smoke|laptop|gpu|paper``.  Depends on the core and on
:mod:`snnlib.robustness`; nothing in the core imports it.
"""
