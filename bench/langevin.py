"""Benchmark: LangevinFlow training throughput and peak memory, in the reference's MC_Maze
shapes (batch 256, 137 held-in of 182 neurons, 35 + 10 bins), against the reference in the
same run.

One training step is what the reference times: coordinated dropout, forward, Poisson NLL,
KL, backward, Adam. The data are Poisson counts of the right shape (the speed does not
depend on their values). Three networks alternate (``--pairs``, default 5), each in a fresh
process timing ``--steps`` steps (median) after one warm-up step:
- ours in its MC_Maze configuration (latent 40, hidden 280: 1.62 M parameters);
- ours at the reference's size (latent 280 = the reference's z and v width, hidden 408:
  4.52 M parameters against its 4.51 M), the like-for-like comparison;
- the reference, KingJamesSong/LangevinFlow_CCN@68dcbfa (LangevinAutoencoder, hidden 280,
  its own training_step), under its own environment (``python bench/anchors.py setup
  LangevinFlow_CCN``); where it is not set up the bench says so and prints no ratio.
It prints seconds per step, trials per second, parameters and peak resident size, and each
pair's ratio ours/theirs as min-median-max (CPU here; ``--device cuda`` where lent).

Then the Lorenz benchmark (LFADS recipe; `analysis.langevin.lorenz_dataset`): LangevinFlow
against the GRU sequential VAE and the spike-smoothing baseline, trained and scored in the
same run on the same split: R^2 to the true rates (all neurons, test trials) and
co-smoothing bits per spike on the held-out neurons.

It also prints, per network, how well the true Lorenz state decodes from the latent (z, v)
(cross-validated ridge R^2; the issue's goal is 0.8) and how much rate R^2 is lost when the
decoder's non-latent input (the encoder's state, for ``decoder_input="state+past"``) is
zeroed: the share of the prediction that bypasses the latent.

Run: .venv/bin/python bench/langevin.py [--device cuda] [--steps 5] [--pairs 5] [--epochs 250] [--seeds 3]
     [--skip-lorenz] [--skip-throughput] [--decoder-input state]
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
CONFIGS = {"ours (MC_Maze configuration)": dict(latent=40, hidden=HIDDEN),
           "ours at the reference's size": dict(latent=280, hidden=408)}


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
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--worms", action="store_true", help="also the mirror's Flavell worms (held-out neurons, velocity)")
    ap.add_argument("--worm-epochs", type=int, default=60)
    ap.add_argument("--worm-decoders", default="state,state+past", help="decoder inputs compared on the worms")
    ap.add_argument("--worm-seeds", type=int, default=2, help="training seeds (and splits) on the worms")
    ap.add_argument("--decoder-input", default=None, choices=L.DECODER_INPUTS,
                    help="what LangevinFlow's decoder reads (default: the model's default)")
    ap.add_argument("--pairs", type=int, default=5, help="alternating runs of ours and the reference's")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        latent, hidden, steps, device = args.child
        return child(int(latent), int(hidden), int(steps), device)
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_lorenz:
        lorenz(args)
    if args.worms:
        worms(args)


def worms(args) -> None:
    """The mirror's labelled Flavell worms, as `wormflow analyze langevin` prepares them:
    LangevinFlow and the GRU VAE (each decoder input, each seed) against smoothing and the
    within-worm ridge decoder, all on the same windows and split."""
    import sys

    sys.path.insert(0, str(HERE))
    from analysis.langevin import design
    from analysis.sequences import store_sequences
    from flavell import flavell_store

    with flavell_store("worms") as (_, ds):
        if ds is None:
            return
        seqs, ids, names = store_sequences(ds, max_neurons=60)
        dt = float(ds.attrs["dt"])
        vel = [ds["behavior_velocity"].sel(worm=w).values[:len(q)] for w, q in zip(ids, seqs)]
        x, v, where = design.windows(seqs, vel, int(round(30 / dt)))
        rows = {}
        for decoder in args.worm_decoders.split(","):
            for seed in range(args.worm_seeds):
                in_idx, out_idx, train, test = design.held_out_split(x, len(names), 0.2, 0.2, seed)
                t0 = time.perf_counter()
                _, metrics, _ = design.compare(x, v, in_idx, out_idx, train, test, epochs=args.worm_epochs, latent=8,
                                               hidden=64, seed=seed, device=args.device, where=where,
                                               decoder_input=decoder)
                print(f"  [{decoder}, seed {seed}: {time.perf_counter() - t0:.0f} s]", flush=True)
                for m, val in metrics.items():
                    key = f"{m} ({decoder})" if m in design.MODELS else m
                    if m in design.MODELS or decoder == args.worm_decoders.split(",")[0]:
                        rows.setdefault(key, []).append(val)
    print(f"\nFlavell worms: {len(ids)} worms, {len(names)} neurons (20% held out), {len(x)} windows of 30 s, "
          f"{args.worm_epochs} epochs; mean +- sd over seeds 0-{args.worm_seeds - 1} (each seed its own split)")
    print(f"  {'model':28s} {'held-out R2':>14s} {'from latent alone':>18s} {'velocity R2':>14s}")
    for key, vals in rows.items():
        def col(name):
            a = np.array([r.get(name, np.nan) for r in vals], float)
            return f"{np.nanmean(a):7.3f} +- {np.nanstd(a):.3f}" if np.isfinite(a).any() else f"{'-':>14s}"
        print(f"  {key:28s} {col('heldout_r2'):>14s} {col('heldout_r2_latent_only'):>18s} {col('velocity_r2'):>14s}")


def lorenz(args) -> None:
    data = L.lorenz_dataset(n_trials=300, n_time=50, n_neurons=30, seed=0)
    held_in, held_out = L.split_neurons(30, 0.2, seed=0)
    train, test = np.arange(240), np.arange(240, 300)
    spikes, rates = data["spikes"], data["rates"]

    def scores(pred):
        bps = L.bits_per_spike(np.maximum(pred[..., held_out], 1e-6), spikes[test][..., held_out])
        return L.r2(pred, rates[test]), bps

    rows, latent_rows = {}, {}
    t0 = time.perf_counter()
    base = L.smoothing_baseline(spikes[train], spikes[test], held_in, held_out)
    rows["spike smoothing + GLM"] = ([scores(base)], time.perf_counter() - t0)
    # one seed decides nothing here: seed to seed, either network's R^2 moves by ~0.07
    for name, dynamics in (("GRU sequential VAE", "gru"), ("LangevinFlow", "langevin")):
        t0, runs = time.perf_counter(), []
        extra = {"decoder_input": args.decoder_input} if args.decoder_input else {}
        for seed in range(args.seeds):
            fit = L.fit(spikes[train], held_in, held_out, dynamics=dynamics, epochs=args.epochs, batch_size=32,
                        latent=12, hidden=32, patience=30, seed=seed, device=args.device, **extra)
            pred = fit.predict(spikes[test])
            runs.append(scores(pred))
            # does the latent carry the state? the true Lorenz state decoded from (z, v);
            # and how much of the prediction goes around the latent (the decoder's other input)
            bare = L.r2(fit.predict_without_context(spikes[test]), rates[test])
            latent_rows.setdefault(name, []).append((L.decode_r2(fit.states(spikes), data["latents"], seed=seed),
                                                     runs[-1][0] - bare))
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
    decoder = args.decoder_input or L.Config(1, 1).decoder_input
    print(f"  decoder input: {decoder}; true Lorenz state from the latent (z, v), cross-validated ridge R^2 "
          "(goal >= 0.8), and the rate R^2 lost when the decoder's non-latent input is zeroed (the bypass):")
    for name, vals in latent_rows.items():
        z, lost = np.array(vals).T
        print(f"  {name:24s} state R^2 {z.mean():.3f} (seeds {' '.join(f'{v:.3f}' for v in z)}), "
              f"R^2 lost without the bypass {lost.mean():+.3f}")


def child(latent: int, hidden: int, steps: int, device: str) -> None:
    """In a fresh process: ``steps`` timed training steps of ours at (latent, hidden)."""
    import json

    torch.manual_seed(0)
    cfg = L.Config(n_in=N_IN, n_out=N_OUT, latent=latent, hidden=hidden, heads=4, coordinated_dropout=0.3)
    model = L.build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    y = torch.as_tensor(np.random.default_rng(0).poisson(0.3, (BATCH, T_OBS + T_FWD, N_OUT)).astype(np.float32),
                        device=device)
    step_fn(model, opt, y, T_OBS)                       # warm-up (allocations, kernels)
    times = []
    for _ in range(steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step_fn(model, opt, y, T_OBS)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "step_s": float(np.median(times)),
                      "threads": torch.get_num_threads(),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _ours(latent, hidden, steps, device) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, __file__, "--child", str(latent), str(hidden), str(steps), device],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"our training step failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def throughput(args) -> None:
    import statistics
    import sys

    sys.path.insert(0, str(HERE))
    import anchors

    runs = {name: [] for name in (*CONFIGS, "reference")}
    why_not = ""
    for _ in range(args.pairs):
        for name, cfg in CONFIGS.items():
            runs[name].append(_ours(cfg["latent"], cfg["hidden"], args.steps, args.device))
        if not why_not:
            try:
                runs["reference"].append(anchors.run("LangevinFlow_CCN", args.steps, args.device))
            except anchors.Unavailable as exc:
                why_not = str(exc)
    print(f"LangevinFlow training step, MC_Maze shapes: batch {BATCH}, {N_IN} held-in / {N_OUT} neurons, "
          f"{T_OBS}+{T_FWD} bins, device {args.device}, {args.steps} steps per run, {args.pairs} alternating runs")
    for name, rs in runs.items():
        if rs:
            step = statistics.median(r["step_s"] for r in rs)
            print(f"  {name:32s} {rs[0]['parameters'] / 1e6:5.2f} M parameters, {step:.3f} s/step = "
                  f"{BATCH / step:6.0f} trials/s, peak RSS {statistics.median(r['peak_mb'] for r in rs):6.0f} MB, "
                  f"{rs[0]['threads']} threads")
    if why_not:
        print(f"  reference: not run ({why_not}); no ratio")
        return
    results, ref = anchors.Results(f"langevin-{args.device}"), f"LangevinFlow_CCN ({args.device})"
    for name in CONFIGS:
        print(results.ratio(f"LangevinFlow {name}: s/step", [r["step_s"] for r in runs[name]],
                            [r["step_s"] for r in runs["reference"]], against=ref))
        print(results.ratio(f"LangevinFlow {name}: peak RSS", [r["peak_mb"] for r in runs[name]],
                            [r["peak_mb"] for r in runs["reference"]], against=ref, unit="MB"))
    results.save()


if __name__ == "__main__":
    main()
