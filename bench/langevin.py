"""Benchmark: LangevinFlow training throughput and peak memory, in the reference's MC_Maze
configuration (hidden 280, batch 256, 137 held-in of 182 neurons, 35 + 10 bins).

One training step is what the reference times: coordinated dropout, forward, Poisson NLL,
KL, backward, Adam. The data are Poisson counts of the right shape (the speed does not
depend on their values). It prints seconds per step, trials per second and the peak
memory (CPU: the process's peak resident size grown during the steps; CUDA: torch's peak
allocation), against the reference's figures quoted from issue 10: 3.3-4.2 s per step on
this 2-core CPU, 221 ms per step (1,160 trials/s, 0.96 GiB) on an H200, goal >= 2,300
trials/s there.

Then the Lorenz benchmark (LFADS recipe; `analysis.langevin.lorenz_dataset`): LangevinFlow
against the GRU sequential VAE and the spike-smoothing baseline, trained and scored in the
same run on the same split: R^2 to the true rates (all neurons, test trials) and
co-smoothing bits per spike on the held-out neurons.

Run: .venv/bin/python bench/langevin.py [--device cuda] [--steps 5] [--epochs 250] [--seeds 3] [--skip-lorenz]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analysis import langevin as L  # noqa: E402

N_IN, N_OUT, T_OBS, T_FWD, BATCH, HIDDEN = 137, 182, 35, 10, 256, 280
REFERENCE = {"cpu": (3.3, 4.2), "cuda": (0.221, 0.221)}


def step_fn(model, opt, y, n_obs, p_cd=0.3):
    x = y[:, :n_obs, :N_IN]
    keep = (torch.rand_like(x) > p_cd).float()
    mask = torch.ones_like(y)
    mask[:, :n_obs, :N_IN] = 1 - keep
    pred, _, kl = model(x * keep / (1 - p_cd), y.shape[1])
    loss = (model.nll(pred, y, mask) + kl).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=250)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per network on the Lorenz benchmark")
    ap.add_argument("--skip-lorenz", action="store_true")
    args = ap.parse_args()
    throughput(args)
    if not args.skip_lorenz:
        lorenz(args)


def lorenz(args) -> None:
    data = L.lorenz_dataset(n_trials=300, n_time=50, n_neurons=30, seed=0)
    held_in, held_out = L.split_neurons(30, 0.2, seed=0)
    train, test = np.arange(240), np.arange(240, 300)
    spikes, rates = data["spikes"], data["rates"]

    def scores(pred):
        bps = L.bits_per_spike(np.maximum(pred[..., held_out], 1e-6), spikes[test][..., held_out])
        return L.r2(pred, rates[test]), bps

    rows = {}
    t0 = time.perf_counter()
    base = L.smoothing_baseline(spikes[train], spikes[test], held_in, held_out)
    rows["spike smoothing + GLM"] = ([scores(base)], time.perf_counter() - t0)
    # one seed decides nothing here: seed to seed, either network's R^2 moves by ~0.07
    for name, dynamics in (("GRU sequential VAE", "gru"), ("LangevinFlow", "langevin")):
        t0, runs = time.perf_counter(), []
        for seed in range(args.seeds):
            fit = L.fit(spikes[train], held_in, held_out, dynamics=dynamics, epochs=args.epochs, batch_size=32,
                        latent=8, hidden=32, patience=30, seed=seed, device=args.device)
            runs.append(scores(fit.predict(spikes[test])))
        rows[name] = (runs, (time.perf_counter() - t0) / args.seeds)
    ceiling = L.bits_per_spike(rates[test][..., held_out], spikes[test][..., held_out])
    print(f"\nLorenz benchmark: 30 neurons (6 held out), 240 train / 60 test trials of 50 bins, "
          f"{spikes.mean():.2f} spikes/bin; networks: mean +- sd over seeds 0-{args.seeds - 1}; "
          f"the true rates score {ceiling:.3f} bits/spike")
    print(f"  {'model':24s} {'R2 to true rates':>17s} {'co-bps (held out)':>18s} {'fit s':>7s}")
    for name, (runs, secs) in rows.items():
        r, b = np.array(runs).T
        sd = (lambda x: f" +- {x.std(ddof=1):.3f}") if len(runs) > 1 else (lambda x: "")
        print(f"  {name:24s} {r.mean():9.3f}{sd(r):>8s} {b.mean():10.3f}{sd(b):>8s} {secs:7.1f}")


def throughput(args) -> None:
    torch.manual_seed(0)
    cfg = L.Config(n_in=N_IN, n_out=N_OUT, latent=40, hidden=HIDDEN, heads=4, coordinated_dropout=0.3)
    model = L.build_model(cfg).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    y = torch.as_tensor(np.random.default_rng(0).poisson(0.3, (BATCH, T_OBS + T_FWD, N_OUT)).astype(np.float32),
                        device=args.device)
    step_fn(model, opt, y, T_OBS)                       # warm-up (allocations, kernels)
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step_fn(model, opt, y, T_OBS)
    if args.device == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - t0) / args.steps
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2 ** 30
        where = "peak CUDA allocation"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        where = f"peak resident size (grew {(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 2 ** 20:.2f} GiB in the steps)"
    lo, hi = REFERENCE["cuda" if args.device.startswith("cuda") else "cpu"]
    print(f"LangevinFlow, MC_Maze configuration: {n_params / 1e6:.2f} M parameters, batch {BATCH}, "
          f"{N_IN} held-in / {N_OUT} neurons, {T_OBS}+{T_FWD} bins, device {args.device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  {per_step:.3f} s/step = {BATCH / per_step:.0f} trials/s; {where} {peak:.2f} GiB")
    print(f"  reference: {lo}-{hi} s/step on this kind of {'GPU' if lo < 1 else 'CPU'} -> "
          f"{lo / per_step:.1f}-{hi / per_step:.1f}x")


if __name__ == "__main__":
    main()
