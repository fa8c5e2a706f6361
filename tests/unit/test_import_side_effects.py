"""Importing snnlib changes no logger level and no random state (checked in a fresh interpreter)."""
import json
import subprocess
import sys
import textwrap


def test_import_snnlib_leaves_loggers_and_rngs_alone():
    code = textwrap.dedent("""
        import json, logging, random
        import numpy as np
        import torch
        names = ["torch.utils.cpp_extension", "torch", "snnlib", ""]
        def snapshot():
            return dict(levels={n: logging.getLogger(n).level for n in names},
                        torch_rng=torch.get_rng_state().tolist(), torch_seed=torch.initial_seed(),
                        py_rng=repr(random.getstate()), np_rng=repr(np.random.get_state()))
        before = snapshot()
        import snnlib, snnlib.neurons, snnlib.models, snnlib.convert, snnlib.attacks  # noqa: E401,F401
        after = snapshot()
        print(json.dumps(dict(same={k: before[k] == after[k] for k in before},
                              levels=after["levels"])))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert all(out["same"].values()), out
    assert out["levels"]["torch.utils.cpp_extension"] == 0  # NOTSET: untouched
