"""Throughput benchmark of the snnlib models on the CPU (or a CUDA GPU, ``--device cuda``): ``python -m snnlib.bench``.

Measures, for one architecture (VGG5 by default) on this machine:

* ``ann_infer`` — ANN forward (eval, inference mode), images/s;
* ``ann_train`` — ANN training step (forward + backward + SGD-momentum step, as ``train_ann``), images/s;
* ``snn_infer`` — SNN forward (eval, inference mode, Poisson input), image-timesteps/s;
* ``snn_bptt``  — SNN BPTT training step (forward + backward through the surrogate + Adam/amsgrad step, dropout on,
  as ``train_snn``), image-timesteps/s;
* ``snn_attack`` — one PGD step on the SNN as the study's attacks take it: the input gradient of the loss through
  BPTT and the straight-through Poisson encoder (``snnlib.attacks.gradients.gradient``, mode ``bptt``, model in
  eval mode), then the signed step and the projection, image-timesteps/s (the study's cost is dominated by these);

each in a fresh process (``multiprocessing`` spawn), so that the peak resident memory (``ru_maxrss``) belongs to that
mode alone.  Each mode is warmed up first and then timed over at least ``--seconds`` seconds and ``--min-iters``
iterations.  Inputs are synthetic (uniform pixels, random labels): dense PyTorch does the same work for any input.
The printed header gives the torch version, thread count, CPU model and the load average before and after, because
the machine is shared and the numbers move with its load.

``run_benchmarks(...)`` returns the same results as a dict (what ``--json`` writes), for other tools to compare.

``--compare`` instead runs the same VGG5 LIF network in snnlib, snnTorch and SpikingJelly (``snnlib.bench.compare``):
it first checks that the three give the same outputs and spike counts, then times inference and a BPTT training
step (forward + backward + Adam) of each at batch 64 and T in {8, 32, 128}, interleaving the three systems
iteration by iteration in one process per (T, mode), and reports image-timesteps per second and the peak extra
resident memory of a step (VmHWM reset before each step).  It needs ``pip install -r requirements-compare.txt``.
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
from typing import Dict, Optional

from ..machine import DEVICES, cpu_name, load_average, resolve_device, utc_now
from .steps import MODES, build_step

__all__ = ["MODES", "DEVICES", "build_step", "measure", "run_benchmarks", "machine_info", "format_table", "main",
           "compare_benchmarks", "measure_compare", "format_compare"]

#: where the benchmarks run: this machine's CPU, or its first CUDA GPU

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


def _sync(dev) -> None:
    """Wait for the GPU's queued work (a no-op on the CPU), so that a timer measures the work, not its launch."""
    if dev.type == "cuda":
        import torch
        torch.cuda.synchronize(dev)


def machine_info(threads: Optional[int] = None, device: str = "cpu") -> dict:
    """The bench report's machine fields: torch, python, threads, cpu (name), cpus (count), load (1/5/15 min),
    device, and on a GPU its name, memory (GB) and CUDA version."""
    import torch
    out = dict(torch=torch.__version__, python=platform.python_version(),
               threads=int(threads if threads is not None else torch.get_num_threads()),
               cpu=cpu_name(), cpus=os.cpu_count(), load=load_average(), device=device)
    if device == "cuda":
        dev = resolve_device(device)
        prop = torch.cuda.get_device_properties(dev)
        out.update(gpu=prop.name, gpu_memory_gb=round(prop.total_memory / 1e9, 1), cuda=torch.version.cuda)
    return out


def measure(mode: str, model: str = "vgg5", T: int = 25, batch: int = 64, threads: Optional[int] = None,
            seconds: float = 4.0, min_iters: int = 3, warmup: Optional[int] = None, seed: int = 0,
            lif_backend: Optional[str] = None, precision: str = "fp32",
            grad_time_chunk: Optional[int] = None, device: str = "cpu") -> dict:
    """Time one mode in the current process; returns {mode, rate, unit, iters, seconds, rss/peak in MB, ...}.

    lif_backend: ``snnlib.neurons.set_lif_backend`` setting for the SNN modes (None = leave as is); its one-off
    compilation, if any, happens in the warm-up and is reported as ``warmup_s``.
    precision: ``SpikingVGG``'s arithmetic for the SNN modes, "fp32" or "bf16" (the ANN modes stay fp32);
    grad_time_chunk: ``SpikingVGG``'s checkpointed time pieces for the gradient modes (None: the whole sequence).
    device: "cpu" or "cuda" (model and data on the GPU, every step timed to its end, ``gpu_peak_mb`` the GPU
    memory the timed steps allocated at most above what was allocated before them).
    """
    import torch

    from ..models import check_arch
    from ..neurons import get_lif_backend, set_lif_backend

    if lif_backend is not None:
        set_lif_backend(lif_backend)
    if threads is not None:
        torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    step, per_iter = build_step(mode, model, T, batch, seed, precision, grad_time_chunk, device)
    arch = check_arch(model)
    if warmup is None:  # the first calls build oneDNN primitives and grow the allocator's pools
        warmup = 3 if mode.startswith("ann") else 1
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    for _ in range(max(int(warmup), 0)):
        step()
    _sync(dev)
    warm_s = time.perf_counter() - t0
    if dev.type == "cuda":
        gpu0 = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t)
    total = sum(times)
    best = min(times)
    peak = _peak_rss_bytes()
    mb = 1024.0 ** 2
    gpu_peak = round((torch.cuda.max_memory_allocated(dev) - gpu0) / mb, 1) if dev.type == "cuda" else None
    return dict(mode=mode, description=MODES[mode][0], unit=MODES[mode][1], model=arch, T=T if mode.startswith("snn") else None,
                batch=batch, threads=torch.get_num_threads(), lif_backend=get_lif_backend(), iters=len(times), seconds=round(total, 3),
                warmup_s=round(warm_s, 3), rate=per_iter * len(times) / total, best_rate=per_iter / best,
                rss_before_mb=round(rss0 / mb, 1), peak_rss_mb=round(peak / mb, 1),
                peak_delta_mb=round((peak - rss0) / mb, 1), precision=precision if mode.startswith("snn") else "fp32",
                grad_time_chunk=grad_time_chunk if mode.startswith("snn") else None, device=dev.type,
                gpu_peak_mb=gpu_peak)


def _child(q, kwargs):  # pragma: no cover - runs in a spawned process
    try:
        q.put(("ok", measure(**kwargs)))
    except BaseException as exc:  # report, never hang the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def run_benchmarks(modes=tuple(MODES), model: str = "vgg5", T: int = 25, batch: int = 64,
                   threads: Optional[int] = None, seconds: float = 4.0, min_iters: int = 3,
                   lif_backend: Optional[str] = None, fresh_process: bool = True, verbose: bool = True,
                   precision: str = "fp32", grad_time_chunk: Optional[int] = None, device: str = "cpu") -> dict:
    """Run the given modes (each in a fresh spawned process by default); returns {'machine': ..., 'results': [...]}.
    precision, grad_time_chunk: settings of the SNN modes; device: "cpu" or "cuda" (see ``measure``)."""
    info = machine_info(threads, device)
    results = []
    for mode in modes:
        kwargs = dict(mode=mode, model=model, T=T, batch=batch, threads=threads, seconds=seconds,
                      min_iters=min_iters, lif_backend=lif_backend, precision=precision,
                      grad_time_chunk=grad_time_chunk, device=device)
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
        res["load_after"] = load_average()
        results.append(res)
    info["load_end"] = load_average()
    return dict(machine=info, config=dict(model=model, T=T, batch=batch, seconds=seconds, min_iters=min_iters,
                                          lif_backend=lif_backend, precision=precision,
                                          grad_time_chunk=grad_time_chunk, device=device), results=results)


def format_table(report: dict) -> str:
    m = report["machine"]
    lines = [f"torch {m['torch']} (python {m['python']}), threads {m['threads']}, CPU {m['cpu']} "
             f"({m['cpus']} logical), load avg before {m['load']} after {m.get('load_end')}{_gpu_text(m)}",
             f"{'mode':<36}{'rate':>10} {'unit':<8}{'best':>9}{'iters':>6}{'warm-up':>9}{'peak RSS':>10}"
             f"{'delta':>9}  load after",
             "-" * 110]
    for r in report["results"]:
        label = r["description"] + (f" T={r['T']}" if r["T"] else "")
        lines.append(f"{label:<36}{r['rate']:>10.1f} {r['unit']:<8}{r['best_rate']:>9.1f}{r['iters']:>6}"
                     f"{r['warmup_s']:>8.1f}s{r['peak_rss_mb']:>8.0f}MB{r['peak_delta_mb']:>7.0f}MB  "
                     f"{r.get('load_after', [''])[0]}"
                     + (f"  GPU peak {r['gpu_peak_mb']:.0f}MB" if r.get("gpu_peak_mb") is not None else ""))
    c = report["config"]
    backends = sorted({r.get("lif_backend") for r in report["results"] if r["mode"].startswith("snn")})
    lines.append(f"model {c['model']}, batch {c['batch']}, LIF backend {'/'.join(map(str, backends)) or '-'}, "
                 f"SNN precision {c.get('precision', 'fp32')}, gradient time pieces {c.get('grad_time_chunk') or '-'}; "
                 f"rate = work / total timed seconds, best = fastest iteration;\npeak RSS = ru_maxrss of the mode's "
                 f"own process, delta = peak - RSS before warm-up. The CPU is shared: compare numbers only at "
                 f"similar load.")
    return "\n".join(lines)


def _gpu_text(machine: dict) -> str:
    """", on GPU NVIDIA H200 (143.8 GB, CUDA 13.0)" for a report made on a GPU, else ""."""
    if machine.get("device") != "cuda":
        return ""
    return f", on GPU {machine.get('gpu')} ({machine.get('gpu_memory_gb')} GB, CUDA {machine.get('cuda')})"


def add_peak_fractions(report: dict, model: str = "vgg5", threads: Optional[int] = None, device: str = "cpu") -> str:
    """Measure the fp32 matrix-multiply rate (on ``device``: 1024 x 1024 on the CPU, 8192 x 8192 on a GPU), store it
    and the model's forward FLOPs per image in ``report`` ("peak"), give every result its "peak_fraction", and return
    the lines that say so."""
    from ..models import build_ann
    from .flops import forward_flops, matmul_gflops, peak_fraction
    flops = forward_flops(build_ann(model, seed=0))
    n = 8192 if device == "cuda" else 1024
    peak = matmul_gflops(n=n, threads=threads, device=device)
    where = "same threads" if device == "cpu" else "on the GPU, TF32 off"
    report["peak"] = dict(gflops=peak, method=f"torch.mm {n} x {n} fp32, {where}", flops_per_image=flops)
    lines = [f"fp32 peak measured as torch.mm {n}x{n}: {peak:.1f} GFLOP/s; {model} forward: "
             f"{flops / 1e6:.1f} MFLOP per image(-timestep) (convolutions and linear layers)"]
    for r in report["results"]:
        r["peak_fraction"] = peak_fraction(r["rate"], r["mode"], flops, peak)
        lines.append(f"  {r['description']:<36} {100 * r['peak_fraction']:5.1f} % of that peak")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ --compare
def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


def _reset_peak() -> bool:
    """Return freed memory to the OS and reset the kernel's peak-RSS mark (VmHWM); False where unsupported."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:  # pragma: no cover
        return False


def _mem_available_mb() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:  # pragma: no cover
        pass
    return None


def _gpu_free_mb() -> Optional[float]:
    """Free memory of the current CUDA GPU in MB (None without one)."""
    import torch
    if not torch.cuda.is_available():
        return None
    return torch.cuda.mem_get_info()[0] / 2 ** 20


COMPARE_MODES = {"infer": "inference (eval, no grad)", "bptt": "BPTT step (fwd+bwd+Adam)"}


def measure_compare(T: int, mode: str, batch: int = 64, reps: int = 3, systems=None, seed: int = 0,
                    threads: Optional[int] = None, lif_backend: Optional[str] = None, warmup: int = 1,
                    device: str = "cpu") -> dict:
    """Time ``mode`` ("infer" | "bptt") of every system at (batch, T) in this process, interleaved.

    Each repetition runs one step of every system, in an order rotated from one repetition to the next; before
    each step the process returns freed memory to the OS and resets VmHWM, so ``peak_mb`` is the step's own peak
    above the resident memory before it (weights, input and optimizer state included in the baseline).  On
    ``device="cuda"`` models and spikes live on the GPU, each step is timed to its end, and ``peak_mb`` is the GPU
    memory the step allocated at most above what was allocated before it.
    """
    import torch
    import torch.nn.functional as F

    from . import compare
    from ..neurons import get_lif_backend, set_lif_backend

    if lif_backend is not None:
        set_lif_backend(lif_backend)
    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(int(threads))
    systems = list(systems or compare.SYSTEMS)
    torch.manual_seed(seed)
    models = {n: m.to(dev) for n, m in compare.build_systems(None, None, 0.99, systems, T, seed).items()}
    seq = compare.make_input(batch, T, seed).to(dev)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(seed)).to(dev)
    opts = {n: torch.optim.Adam(m.parameters(), lr=1e-4) for n, m in models.items()} if mode == "bptt" else {}

    def step(name):
        m = models[name]
        if mode == "infer":
            m.eval()
            with torch.inference_mode():
                return compare.logits(name, m, seq)
        m.train()
        opts[name].zero_grad(set_to_none=True)
        loss = F.cross_entropy(compare.logits(name, m, seq), y)
        loss.backward()
        opts[name].step()
        return loss

    warm = {}
    for name in systems:  # compilation (snnlib's fused LIF), oneDNN primitives, Adam state
        t0 = time.perf_counter()
        for _ in range(max(int(warmup), 0)):
            step(name)
        _sync(dev)
        warm[name] = time.perf_counter() - t0
    times = {n: [] for n in systems}
    peaks = {n: [] for n in systems}
    for r in range(int(reps)):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for name in order:
            if dev.type == "cuda":
                gpu0 = torch.cuda.memory_allocated(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            else:
                hwm_ok = _reset_peak()
                rss0 = _status_kb("VmRSS")
            t = time.perf_counter()
            step(name)
            _sync(dev)
            times[name].append(time.perf_counter() - t)
            if dev.type == "cuda":
                peaks[name].append((torch.cuda.max_memory_allocated(dev) - gpu0) / 2 ** 20)
                continue
            hwm = _status_kb("VmHWM")
            if hwm_ok and hwm is not None and rss0 is not None:
                peaks[name].append((hwm - rss0) / 1024.0)
    out = []
    for name in systems:
        ts = sorted(times[name])
        med = ts[len(ts) // 2] if len(ts) % 2 else 0.5 * (ts[len(ts) // 2 - 1] + ts[len(ts) // 2])
        out.append(dict(system=name, mode=mode, T=T, batch=batch, reps=len(ts), times_s=[round(v, 4) for v in times[name]],
                        rate=batch * T / med, best_rate=batch * T / ts[0], warmup_s=round(warm[name], 2),
                        peak_mb=round(max(peaks[name]), 1) if peaks[name] else None,
                        lif_backend=get_lif_backend() if name in ("snnlib", compare.BF16) else None))
    return dict(T=T, mode=mode, batch=batch, results=out, load=load_average(), rss_mb=round(_rss_bytes() / 2 ** 20, 1),
                device=dev.type)


def _compare_child(q, kwargs):  # pragma: no cover - runs in a spawned process
    try:
        q.put(("ok", measure_compare(**kwargs)))
    except BaseException as exc:
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def compare_benchmarks(Ts=(8, 32, 128), batch: int = 64, modes=("infer", "bptt"), reps: int = 3,
                       systems=None, threads: Optional[int] = None, lif_backend: Optional[str] = None,
                       check: bool = True, mem_margin_mb: float = 3072.0, verbose: bool = True,
                       device: str = "cpu") -> dict:
    """The --compare benchmark: equivalence check, then ``measure_compare`` per (T, mode), each in a fresh process.

    A BPTT configuration whose memory, extrapolated linearly in T from the largest smaller T measured, would not
    fit in the free memory (MemAvailable, or the GPU's free memory on ``device="cuda"``) minus ``mem_margin_mb`` is
    skipped and reported as such (never risk the OOM killer on a shared machine).  The equivalence checks run on
    the CPU.  Raises ``snnlib.bench.compare.CompareUnavailable`` without the optional packages.
    """
    from . import compare
    versions = compare.require_packages()
    info = machine_info(threads, device)
    # bf16 is native on every CUDA GPU this targets (Ampere and later); on the CPU only where oneDNN says so
    info.update(versions=versions, bf16_native=True if device == "cuda" else compare.bf16_native())
    if systems is None:   # snnlib's bf16 option only where the CPU computes bf16 natively (else it is emulated)
        systems = list(compare.SYSTEMS) + ([compare.BF16] if info["bf16_native"] else [])
    all_systems = list(systems)
    exact = [n for n in all_systems if n != compare.BF16]
    report = dict(machine=info, config=dict(Ts=list(Ts), batch=batch, modes=list(modes), reps=reps,
                                            systems=all_systems, leak=0.99, lif_backend=lif_backend,
                                            device=device), checks=[], runs=[], skipped=[])
    if check:
        for cl in (True, False):
            if verbose:
                print(f"  equivalence check (batch 2, T=8, snnlib channels_last={cl}) ...", file=sys.stderr, flush=True)
            eq = compare.check_equivalence(batch=2, T=8, seed=0, channels_last=cl, systems=exact)
            for e in eq["systems"].values():
                e.pop("logits", None)
            report["checks"].append(eq)
            if not eq["ok"]:
                raise RuntimeError(f"the three implementations disagree; not timing them: {eq}")
        if compare.BF16 in all_systems:
            report["bf16_check"] = bf = compare.check_bf16()
            if not bf["ok"]:
                raise RuntimeError(f"snnlib's bf16 precision moved spike counts beyond its tolerance: {bf}")
    last_peak: Dict[tuple, tuple] = {}
    for mode in modes:
        for T in Ts:
            run_systems = []
            for name in all_systems:
                if mode == "bptt" and (mode, name) in last_peak:
                    T0, peak0 = last_peak[(mode, name)]
                    need = peak0 * T / T0
                    avail = _gpu_free_mb() if device == "cuda" else _mem_available_mb()
                    if avail is not None and need > avail - mem_margin_mb:
                        msg = (f"BPTT T={T} {name}: not run, would need about {need / 1024:.1f} GB (linear in T "
                               f"from T={T0}) with {avail / 1024:.1f} GB available")
                        report["skipped"].append(dict(mode=mode, T=T, system=name, need_mb=round(need),
                                                      available_mb=round(avail), reason=msg))
                        if verbose:
                            print("  " + msg, file=sys.stderr, flush=True)
                        continue
                run_systems.append(name)
            if not run_systems:
                continue
            # a BPTT step at T >= 128 takes minutes on this CPU: fewer repetitions, same configuration
            r = 1 if mode == "bptt" and T >= 128 and device == "cpu" else reps
            kwargs = dict(T=T, mode=mode, batch=batch, reps=r, systems=run_systems, threads=threads,
                          lif_backend=lif_backend, device=device)
            if verbose:
                print(f"  {mode} T={T} (load {load_average()}) ...", file=sys.stderr, flush=True)
            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=_compare_child, args=(q, kwargs))
            p.start()
            try:
                status, res = q.get()
            finally:
                p.join()
            if status != "ok":
                raise RuntimeError(f"compare {mode} T={T} failed: {res}")
            res["load_before"] = report["runs"][-1]["load"] if report["runs"] else info["load"]
            report["runs"].append(res)
            for r in res["results"]:
                if r["peak_mb"] is not None:
                    last_peak[(mode, r["system"])] = (T, r["peak_mb"])
            if verbose:
                print(format_compare(dict(machine=info, runs=[res], config=report["config"])).split("\n", 1)[1],
                      file=sys.stderr, flush=True)
    info["load_end"] = load_average()
    report["summary"] = compare_summary(report)
    return report


def compare_summary(report: dict) -> dict:
    """Per (mode, T): snnlib's rate over the fastest peer library (``speedup``, ``best_other``) and over the plain
    PyTorch baseline (``plain_speedup``), and its peak memory over the leanest other system (``mem_ratio``); where
    snnlib's bf16 option ran, the same three for it (``bf16_speedup``, ``bf16_plain_speedup``, ``bf16_mem_ratio``;
    else None).  The other systems are the non-snnlib ones."""
    from .compare import BF16, PEERS, is_snnlib
    rows = []
    for run in report["runs"]:
        by = {r["system"]: r for r in run["results"]}
        others = [r for n, r in by.items() if not is_snnlib(n)]
        if "snnlib" not in by or not others:
            continue
        peers = [r for r in others if r["system"] in PEERS] or others
        fastest = max(peers, key=lambda r: r["rate"])
        lean = min((r for r in others if r["peak_mb"] is not None), key=lambda r: r["peak_mb"], default=None)
        plain = by.get("plain")

        def ratios(me):
            return (me["rate"] / fastest["rate"], me["rate"] / plain["rate"] if plain else None,
                    (me["peak_mb"] / lean["peak_mb"]) if lean and me["peak_mb"] else None)

        me = by["snnlib"]
        speedup, plain_speedup, mem_ratio = ratios(me)
        bf = by.get(BF16)
        bf_speedup, bf_plain, bf_mem = ratios(bf) if bf else (None, None, None)
        rows.append(dict(mode=run["mode"], T=run["T"], snnlib_rate=me["rate"], best_other=fastest["system"],
                         best_other_rate=fastest["rate"], speedup=speedup,
                         plain_rate=plain["rate"] if plain else None, plain_speedup=plain_speedup,
                         snnlib_peak_mb=me["peak_mb"], min_other_peak_mb=lean["peak_mb"] if lean else None,
                         leanest_other=lean["system"] if lean else None, mem_ratio=mem_ratio,
                         bf16_rate=bf["rate"] if bf else None, bf16_speedup=bf_speedup,
                         bf16_plain_speedup=bf_plain, bf16_peak_mb=bf["peak_mb"] if bf else None,
                         bf16_mem_ratio=bf_mem))
    return dict(rows=rows)


def format_compare(report: dict) -> str:
    m = report["machine"]
    lines = [f"torch {m['torch']}, threads {m['threads']}, CPU {m['cpu']} ({m['cpus']} logical), "
             f"versions {m.get('versions')}, load avg at start {m['load']}{_gpu_text(m)}",
             f"{'mode':<6}{'T':>5}  {'system':<13}{'img*T/s':>10}{'best':>9}{'reps':>5}{'peak MB':>9}"
             f"{'warm-up':>9}  load after"]
    for run in report["runs"]:
        for r in run["results"]:
            pk = f"{r['peak_mb']:>9.0f}" if r["peak_mb"] is not None else f"{'-':>9}"
            lines.append(f"{r['mode']:<6}{r['T']:>5}  {r['system']:<13}{r['rate']:>10.1f}{r['best_rate']:>9.1f}"
                         f"{r['reps']:>5}{pk}{r['warmup_s']:>8.1f}s  {run['load'][0] if run['load'] else ''}")
    for sk in report.get("skipped", []):
        lines.append(sk["reason"])
    for row in report.get("summary", {}).get("rows", []):
        mem = f", peak memory x{row['mem_ratio']:.2f} of the leaner" if row["mem_ratio"] else ""
        plain = f", {row['plain_speedup']:.2f}x plain PyTorch" if row.get("plain_speedup") else ""
        lines.append(f"{row['mode']} T={row['T']}: snnlib {row['speedup']:.2f}x the fastest peer "
                     f"({row['best_other']}){plain}{mem}")
        if row.get("bf16_speedup"):
            bmem = f", peak memory x{row['bf16_mem_ratio']:.2f}" if row.get("bf16_mem_ratio") else ""
            bplain = f", {row['bf16_plain_speedup']:.2f}x plain" if row.get("bf16_plain_speedup") else ""
            lines.append(f"{'':>{len(row['mode']) + len(str(row['T'])) + 4}}snnlib bf16 {row['bf16_speedup']:.2f}x "
                         f"the fastest peer{bplain}{bmem}")
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
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="arithmetic of the SNN modes: fp32 (the papers') or bf16 (SpikingVGG's option: bfloat16 "
                         "convolutions and linear layers, float32 membranes); --compare times both by itself")
    ap.add_argument("--grad-time-chunk", type=int, default=None, metavar="N",
                    help="SNN gradient modes: checkpointed pieces of N timesteps (activation checkpointing over "
                         "time; memory of N steps instead of T, one more forward)")
    ap.add_argument("--device", default="cpu", choices=list(DEVICES),
                    help="where to run: this machine's CPU (default) or its CUDA GPU (the GPU's name, memory and "
                         "each step's peak GPU memory are reported; --compare's equivalence checks stay on the CPU)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--compare", action="store_true",
                    help="compare with snnTorch and SpikingJelly (VGG5 LIF, batch 64, T in --compare-T; needs "
                         "pip install -r requirements-compare.txt)")
    ap.add_argument("--compare-T", default="8,32,128", help="timesteps for --compare (comma-separated)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per system and configuration (--compare)")
    ap.add_argument("--peak", action="store_true",
                    help="also measure the fp32 matrix-multiply rate and report each mode's share of it "
                         "(snnlib.bench.flops)")
    ap.add_argument("--breakdown", action="store_true",
                    help="instead of timing, profile each mode (torch.profiler, CPU) and split its time into "
                         "convolutions and matrix products, pooling and the rest (snnlib.bench.breakdown)")
    a = ap.parse_args(argv)
    if a.compare:
        from .compare import CompareUnavailable, require_packages
        try:
            require_packages()
        except CompareUnavailable as exc:
            print(f"python -m snnlib.bench --compare: {exc}", file=sys.stderr)
            return 2
        try:
            Ts = [int(v) for v in a.compare_T.split(",") if v.strip()]
        except ValueError:
            ap.error(f"--compare-T must be comma-separated integers, got {a.compare_T!r}")
        if not Ts or min(Ts) < 1 or a.batch < 1 or a.reps < 1:
            ap.error("--compare-T values, --batch and --reps must be >= 1")
        try:
            resolve_device(a.device)
        except RuntimeError as exc:
            print(f"python -m snnlib.bench: {exc}", file=sys.stderr)
            return 2
        report = compare_benchmarks(Ts, a.batch, reps=a.reps, threads=a.threads, lif_backend=a.lif_backend,
                                    device=a.device)
        print(format_compare(report))
        if a.json:
            os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
            with open(a.json, "w") as f:
                json.dump(report, f, indent=2)
        return 0
    from ..models import check_arch
    from ..encoding import check_timesteps
    check_arch(a.model)
    check_timesteps(a.T)
    if a.batch < 1 or (a.threads is not None and a.threads < 1) or a.min_iters < 1 or \
            (a.grad_time_chunk is not None and a.grad_time_chunk < 1):
        ap.error("--batch, --threads, --min-iters and --grad-time-chunk must be >= 1")
    modes = [s.strip() for s in a.modes.split(",") if s.strip()]
    bad = [s for s in modes if s not in MODES]
    if bad:
        ap.error(f"unknown modes {bad}; choose from {list(MODES)}")
    try:
        resolve_device(a.device)
    except RuntimeError as exc:
        print(f"python -m snnlib.bench: {exc}", file=sys.stderr)
        return 2
    if a.breakdown:
        if a.device != "cpu":
            ap.error("--breakdown profiles the CPU; leave out --device cuda")
        from .breakdown import breakdown, format_breakdown
        rows = [breakdown(m, a.model, a.T, a.batch, threads=a.threads) for m in modes]
        print(format_breakdown(rows))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(dict(machine=machine_info(a.threads), measured_utc=utc_now(), rows=rows), f, indent=2)
        return 0
    report = run_benchmarks(modes, a.model, a.T, a.batch, a.threads, a.seconds, a.min_iters, a.lif_backend,
                            precision=a.precision, grad_time_chunk=a.grad_time_chunk, device=a.device)
    print(format_table(report))
    if a.peak:
        print(add_peak_fractions(report, a.model, a.threads, a.device))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
