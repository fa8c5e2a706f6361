"""CPU throughput benchmark of the snnlib models: ``python -m snnlib.bench``.

Measures, for one architecture (VGG5 by default) on this machine:

* ``ann_infer`` — ANN forward (eval, inference mode), images/s;
* ``ann_train`` — ANN training step (forward + backward + SGD-momentum step, as ``train_ann``), images/s;
* ``snn_infer`` — SNN forward (eval, inference mode, Poisson input), image-timesteps/s;
* ``snn_bptt``  — SNN BPTT training step (forward + backward through the surrogate + Adam/amsgrad step, dropout on,
  as ``train_snn``), image-timesteps/s;

each in a fresh process (``multiprocessing`` spawn), so that the peak resident memory (``ru_maxrss``) belongs to that
mode alone.  Each mode is warmed up first and then timed over at least ``--seconds`` seconds and ``--min-iters``
iterations.  Inputs are synthetic (uniform pixels, random labels): dense PyTorch does the same work for any input.
The printed header gives the torch version, thread count, CPU model and the load average before and after, because
the machine is shared and the numbers move with its load.

``run_benchmarks(...)`` returns the same results as a dict (what ``--json`` writes), for other tools to compare.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from typing import Dict, List, Optional

__all__ = ["MODES", "measure", "run_benchmarks", "machine_info", "format_table", "main"]

#: mode -> (description, unit)
MODES: Dict[str, tuple] = {
    "ann_infer": ("ANN inference (eval, no grad)", "img/s"),
    "ann_train": ("ANN train step (SGD momentum)", "img/s"),
    "snn_infer": ("SNN inference (eval, no grad)", "img*T/s"),
    "snn_bptt": ("SNN BPTT step (fwd+bwd+Adam)", "img*T/s"),
}

# released model-1 thresholds x 0.7 (reference/papers.md 1.14.5); other architectures use 1.0 everywhere
_VGG5_THRESHOLDS = [14.53, 1.88, 1.63, 0.2, 0.8]


def _rss_bytes() -> int:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - psutil is in the project's environment
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> List[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def machine_info(threads: Optional[int] = None) -> dict:
    import torch
    return dict(torch=torch.__version__, python=platform.python_version(),
                threads=int(threads if threads is not None else torch.get_num_threads()),
                cpu=_cpu_model(), cpus=os.cpu_count(), load=_load())


def measure(mode: str, model: str = "vgg5", T: int = 25, batch: int = 64, threads: Optional[int] = None,
            seconds: float = 4.0, min_iters: int = 3, warmup: Optional[int] = None, seed: int = 0,
            lif_backend: Optional[str] = None) -> dict:
    """Time one mode in the current process; returns {mode, rate, unit, iters, seconds, rss/peak in MB, ...}.

    lif_backend: ``snnlib.neurons.set_lif_backend`` setting for the SNN modes (None = leave as is); its one-off
    compilation, if any, happens in the warm-up and is reported as ``warmup_s``.
    """
    import torch
    import torch.nn.functional as F

    from .models import SpikingVGG, build_ann
    from .neurons import get_lif_backend, set_lif_backend

    if lif_backend is not None:
        set_lif_backend(lif_backend)

    if mode not in MODES:
        raise ValueError(f"unknown benchmark mode {mode!r}; choose from {sorted(MODES)}")
    if threads is not None:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    net = build_ann(model, seed=seed)
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, net.num_classes, (batch,))
    if mode.startswith("ann"):
        per_iter, target = batch, net
    else:
        th = _VGG5_THRESHOLDS if net.arch == "vgg5" else [1.0] * net.num_spiking
        target = SpikingVGG(net, th, T=T, leak=0.99)
        per_iter = batch * T
    if mode == "ann_train":
        opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4)
    elif mode == "snn_bptt":
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=5e-4, amsgrad=True)

    def step():
        if mode.endswith("infer"):
            target.eval()
            with torch.inference_mode():
                return target(x)
        target.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(target(x), y)
        loss.backward()
        opt.step()
        return loss

    if warmup is None:  # the first calls build oneDNN primitives and grow the allocator's pools
        warmup = 3 if mode.startswith("ann") else 1
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    for _ in range(max(int(warmup), 0)):
        step()
    warm_s = time.perf_counter() - t0
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    total = sum(times)
    best = min(times)
    peak = _peak_rss_bytes()
    mb = 1024.0 ** 2
    return dict(mode=mode, description=MODES[mode][0], unit=MODES[mode][1], model=net.arch, T=T if mode.startswith("snn") else None,
                batch=batch, threads=torch.get_num_threads(), lif_backend=get_lif_backend(), iters=len(times), seconds=round(total, 3),
                warmup_s=round(warm_s, 3), rate=per_iter * len(times) / total, best_rate=per_iter / best,
                rss_before_mb=round(rss0 / mb, 1), peak_rss_mb=round(peak / mb, 1),
                peak_delta_mb=round((peak - rss0) / mb, 1))


def _child(q, kwargs):  # pragma: no cover - runs in a spawned process
    try:
        q.put(("ok", measure(**kwargs)))
    except BaseException as exc:  # report, never hang the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def run_benchmarks(modes=tuple(MODES), model: str = "vgg5", T: int = 25, batch: int = 64,
                   threads: Optional[int] = None, seconds: float = 4.0, min_iters: int = 3,
                   lif_backend: Optional[str] = None, fresh_process: bool = True, verbose: bool = True) -> dict:
    """Run the given modes (each in a fresh spawned process by default); returns {'machine': ..., 'results': [...]}."""
    info = machine_info(threads)
    results = []
    for mode in modes:
        kwargs = dict(mode=mode, model=model, T=T, batch=batch, threads=threads, seconds=seconds,
                      min_iters=min_iters, lif_backend=lif_backend)
        if verbose:
            print(f"  running {mode} ...", file=sys.stderr, flush=True)
        if fresh_process:
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=_child, args=(q, kwargs))
            p.start()
            status, res = q.get()
            p.join()
            if status != "ok":
                raise RuntimeError(f"benchmark {mode} failed: {res}")
        else:
            res = measure(**kwargs)
        res["load_after"] = _load()
        results.append(res)
    info["load_end"] = _load()
    return dict(machine=info, config=dict(model=model, T=T, batch=batch, seconds=seconds, min_iters=min_iters,
                                          lif_backend=lif_backend), results=results)


def format_table(report: dict) -> str:
    m = report["machine"]
    lines = [f"torch {m['torch']} (python {m['python']}), threads {m['threads']}, CPU {m['cpu']} "
             f"({m['cpus']} logical), load avg before {m['load']} after {m.get('load_end')}",
             f"{'mode':<36}{'rate':>10} {'unit':<8}{'best':>9}{'iters':>6}{'warm-up':>9}{'peak RSS':>10}"
             f"{'delta':>9}  load after",
             "-" * 110]
    for r in report["results"]:
        label = r["description"] + (f" T={r['T']}" if r["T"] else "")
        lines.append(f"{label:<36}{r['rate']:>10.1f} {r['unit']:<8}{r['best_rate']:>9.1f}{r['iters']:>6}"
                     f"{r['warmup_s']:>8.1f}s{r['peak_rss_mb']:>8.0f}MB{r['peak_delta_mb']:>7.0f}MB  "
                     f"{r.get('load_after', [''])[0]}")
    c = report["config"]
    backends = sorted({r.get("lif_backend") for r in report["results"] if r["mode"].startswith("snn")})
    lines.append(f"model {c['model']}, batch {c['batch']}, LIF backend {'/'.join(map(str, backends)) or '-'}; "
                 f"rate = work / total timed seconds, best = fastest iteration;\npeak RSS = ru_maxrss of the mode's "
                 f"own process, delta = peak - RSS before warm-up. The CPU is shared: compare numbers only at "
                 f"similar load.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snnlib.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vgg5", help="architecture (vgg5, vgg9, vgg11)")
    ap.add_argument("--T", type=int, default=25, help="SNN timesteps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--seconds", type=float, default=4.0, help="minimum timed seconds per mode (after warm-up)")
    ap.add_argument("--min-iters", type=int, default=3, help="minimum timed iterations per mode")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    ap.add_argument("--lif-backend", default=None, choices=["eager", "compile", "auto"],
                    help="LIF update backend for the SNN modes (default: snnlib's default / $SNNLIB_LIF_BACKEND)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args(argv)
    from .models import check_arch
    from .encoding import check_timesteps
    check_arch(a.model)
    check_timesteps(a.T)
    if a.batch < 1 or (a.threads is not None and a.threads < 1) or a.min_iters < 1:
        ap.error("--batch, --threads and --min-iters must be >= 1")
    modes = [s.strip() for s in a.modes.split(",") if s.strip()]
    bad = [s for s in modes if s not in MODES]
    if bad:
        ap.error(f"unknown modes {bad}; choose from {list(MODES)}")
    report = run_benchmarks(modes, a.model, a.T, a.batch, a.threads, a.seconds, a.min_iters, a.lif_backend)
    print(format_table(report))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
