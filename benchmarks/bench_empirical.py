"""Empirical NTK of any PyTorch model: ntklab against the PyTorch tutorial's contraction.

Three ways, timed in one run on the same model and inputs (float32, trace over outputs):

* ``ntklab``: :func:`ntklab.empirical_ntk` with ``method="generic"``
  (:func:`ntklab.torch_ntk.generic_ntk`: structured derivatives of the Linear/Conv2d layers,
  Novak et al. 2022);
* ``tutorial``: the PyTorch tutorial's "Jacobian contraction": per-example Jacobians of
  ``X`` and of ``Z`` by ``vmap(jacrev(f))`` (``Z = X`` computed again, as the tutorial does),
  then one ``einsum`` per parameter, summed;
* ``structured`` (ntklab's own networks only): the layer-wise formula of
  :func:`ntklab.empirical_ntk` for :meth:`ntklab.Architecture.network`.

Models: ``mlp`` (Linear-ReLU-Linear-ReLU-Linear, 64 inputs, 10 outputs), ``cnn`` (two 3x3
convolutions on 1x8x8 images, then two Linear layers, 10 outputs) and ``ntklab-mlp``
(``Architecture(2, "paper").network``, scalar output). Each (model, way) runs in its own
subprocess, so that its peak memory (resident set size above the process's size after
building the model and inputs) is its own. Prints wall and CPU seconds (best of
``--repeats``), the ratios tutorial/ntklab and ntklab/structured of CPU seconds (on a shared
machine wall time swings with the other processes), the largest difference relative to the
largest entry, and peak memory.

Usage: ``python benchmarks/bench_empirical.py [--large] [--n N] [--threads 1] [--repeats 2]
[--device cuda]`` (on CUDA, peak memory is the GPU's and CPU seconds mean little).
Default sizes are modest (about 100 000 parameters, n = 128); ``--large`` uses about
1 million parameters per model. ``--big-n 10000`` times ntklab alone on that many inputs of
the MLP (the tutorial's Jacobians of 10 000 inputs of the ``--large`` one would need 430 GB);
``--models --big-n 10000 --large`` runs that alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def build(model: str, large: bool, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if model == "mlp":
        w = 1000 if large else 256
        net = nn.Sequential(
            nn.Linear(64, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10)
        )
        shape = (64,)
    elif model == "cnn":
        c, h = (32, 440) if large else (16, 96)
        net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c * 64, h), nn.ReLU(), nn.Linear(h, 10),
        )  # fmt: skip
        shape = (1, 8, 8)
    else:
        import ntklab

        net = ntklab.Architecture(2, "paper").network(
            1000 if large else 320, seed=seed, in_features=64, device="cpu"
        )  # moved to --device by the caller
        shape = (64,)
    return net.eval(), shape


def tutorial_ntk(net, x1, x2):
    """The tutorial's Jacobian contraction, trace over outputs."""
    import torch
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in net.named_parameters()}

    def f_single(p, x):
        return functional_call(net, p, (x.unsqueeze(0),)).reshape(-1)

    with torch.no_grad():
        j1 = vmap(jacrev(f_single), (None, 0))(params, x1)
        j2 = vmap(jacrev(f_single), (None, 0))(params, x2)
        terms = [
            torch.einsum("Naf,Maf->NM", a.flatten(2), b.flatten(2))
            for a, b in zip(j1.values(), j2.values(), strict=True)
        ]
        return torch.stack(terms).sum(0).cpu().numpy()


def one(model: str, way: str, n: int, large: bool, repeats: int, threads: int, device) -> dict:
    import torch

    import ntklab

    torch.set_num_threads(threads)
    net, shape = build(model, large)
    net = net.to(device)
    X = torch.randn((n, *shape), generator=torch.Generator().manual_seed(1)).to(device)
    cuda = X.device.type == "cuda"
    n_params = sum(p.numel() for p in net.parameters())
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fn = {
        "ntklab": lambda: ntklab.empirical_ntk(net, X, method="generic"),
        "tutorial": lambda: tutorial_ntk(net, X, X),
        "structured": lambda: ntklab.empirical_ntk(net, X, method="structured"),
    }[way]
    best, cpu, out = np.inf, np.inf, None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # MiB (Linux)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    np.save(f"/tmp/bench_empirical_{model}_{way}.npy", np.asarray(out, dtype=np.float64))
    return {"seconds": best, "cpu": cpu, "peak_mib": peak, "params": n_params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="about 1M parameters per model")
    ap.add_argument("--n", type=int, default=None, help="inputs (default 128; 64 with --large)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="*", default=["mlp", "cnn", "ntklab-mlp"])
    ap.add_argument("--big-n", type=int, default=0, help="also time ntklab alone on this many")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (peak: GPU memory)")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "WAY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = args.n or (64 if args.large else 128)
    if args.one:
        res = one(*args.one, n, args.large, args.repeats, args.threads, args.device)
        print(json.dumps(res))
        return

    def run(model, way, n_rows=n, repeats=args.repeats):
        cmd = [sys.executable, __file__, "--one", model, way, "--n", str(n_rows),
               "--repeats", str(repeats), "--threads", str(args.threads),
               "--device", args.device]  # fmt: skip
        cmd += ["--large"] if args.large else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    print(f"n = {n} inputs, float32, {args.threads} thread(s), best of {args.repeats}")
    header = f"{'model':<11} {'params':>9} {'way':<11} {'seconds':>9} {'CPU s':>8} {'peak MiB':>9}"
    print(header + "   tutorial/ntklab  ntklab/structured  max rel. diff")
    for model in args.models:
        ways = ["ntklab", "tutorial"] + (["structured"] if model == "ntklab-mlp" else [])
        res = {way: run(model, way) for way in ways}
        ref = np.load(f"/tmp/bench_empirical_{model}_tutorial.npy")
        for way in ways:
            r = res[way]
            diff = np.abs(np.load(f"/tmp/bench_empirical_{model}_{way}.npy") - ref).max()
            line = f"{model:<11} {r['params']:>9} {way:<11} {r['seconds']:>9.3f} {r['cpu']:>8.3f}"
            line += f" {r['peak_mib']:>9.0f}"
            if way == "ntklab":
                line += f"   {res['tutorial']['cpu'] / r['cpu']:>15.1f}"
                if "structured" in res:
                    line += f"  {r['cpu'] / res['structured']['cpu']:>17.2f}"
                else:
                    line += " " * 19
            else:
                line += " " * 37
            print(f"{line}  {diff / np.abs(ref).max():>13.1e}")
    if args.big_n:
        r = run("mlp", "ntklab", n_rows=args.big_n, repeats=1)
        print(f"ntklab alone, mlp ({r['params']} params), n = {args.big_n}: "
              f"{r['seconds']:.1f} s ({r['cpu']:.1f} CPU s), peak {r['peak_mib']:.0f} MiB above the inputs")  # fmt: skip


if __name__ == "__main__":
    main()
