"""LangevinFlow: a sequential VAE whose latent state follows underdamped Langevin dynamics
(after Song et al. 2025, "Langevin Flows for Modeling Neural Latent Dynamics"), for spike
counts (Poisson) and calcium (Gaussian). Runs on CPU or CUDA with the same code.

Generative model, per trial:
- initial position and velocity (z_0, v_0) ~ N(0, I), each of ``latent`` channels;
- per step, with step h, damping gamma and noise scale s (semi-implicit Euler):
      z_{t+1} = z_t + h v_t
      v'      = v_t - h grad U(z_{t+1})
      v_{t+1} = (1 - h gamma) v' + s sqrt(h) eps_t,        eps_t ~ N(0, I)
- the potential U is a lattice of locally coupled oscillators: every channel is an
  oscillator with its own stiffness k_i and a quartic term a_i, coupled to its neighbour
  on a ring with strength c_i:
      U(z) = sum_i [k_i z_i^2 / 2 + a_i z_i^4 / 4 + c_i (z_i - z_{i+1})^2 / 2]
  and grad U is written in closed form (no autograd call inside the time loop);
- a one-layer Transformer decoder reads, at every bin, the position and velocity and the
  forward encoder's state one bin back (``decoder_input="state+past"``, as the released
  code pairs (z, v) with its causal encoder's state), and gives each neuron's log-rate
  (Poisson) or mean (Gaussian, with a learned per-neuron noise). The encoder's state for
  the bin being predicted is withheld: with it the decoder learns the bin's own noise.

Inference: a bidirectional GRU encoder over the observed neurons gives the posterior of
(z_0, v_0) and, per step, the posterior of the stochastic force eps_t. The ELBO is the
expected log-likelihood minus KL(q(z_0, v_0) || N(0, I)) minus sum_t KL(q(eps_t) || N(0, I)):
the transition KL of the paper, written on the force that drives each transition. (The
released code computes its KL on a different quantity than the paper states; we follow
the paper's intent: the divergence between the posterior and prior transition
densities, which for this Gaussian transition reduces exactly to the KL on eps_t.)

Training uses coordinated dropout (inputs dropped at random, the likelihood counted only
on the dropped entries of the observed neurons and on every held-out neuron), Adam, and
early stopping on validation loss. ``dynamics="gru"`` swaps the Langevin integrator for a
GRU cell driven by the same inferred forces: the "GRU sequential VAE" baseline.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the package depends on torch
        raise ImportError("analysis.langevin needs PyTorch: pip install torch==2.13.0 (CPU) "
                          "or a CUDA build from pytorch.org") from exc
    return torch


# ---------------------------------------------------------------- data


def lorenz_dataset(n_trials: int = 400, n_time: int = 50, n_neurons: int = 30, *, dt: float = 0.006,
                   steps_per_bin: int = 1, base_rate: float = 0.2, gain: float = 0.7, seed: int = 0) -> dict:
    """The synthetic Lorenz benchmark after the LFADS recipe: a Lorenz system (sigma 10,
    rho 28, beta 8/3) integrated with RK4, one trial per random start on the attractor;
    the state is z-scored, and each neuron's log-rate is linear in it:
    log r = log(base_rate) + gain * W x, W ~ N(0, 1/3); counts ~ Poisson(r) per bin.
    Returns spikes (trial, time, neuron) int, rates, latents (trial, time, 3)."""
    rng = np.random.default_rng(seed)

    def f(s):
        x, y, z = s[..., 0], s[..., 1], s[..., 2]
        return np.stack([10.0 * (y - x), x * (28.0 - z) - y, x * y - (8.0 / 3.0) * z], -1)

    state = rng.normal(size=(n_trials, 3)) * np.array([8.0, 8.0, 8.0]) + np.array([0.0, 0.0, 25.0])
    h = dt / steps_per_bin

    def step(s):
        k1 = f(s)
        k2 = f(s + 0.5 * h * k1)
        k3 = f(s + 0.5 * h * k2)
        k4 = f(s + h * k3)
        return s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    for _ in range(int(2.0 / h)):                     # burn in onto the attractor
        state = step(state)
    path = np.empty((n_trials, n_time, 3))
    for t in range(n_time):
        for _ in range(steps_per_bin):
            state = step(state)
        path[:, t] = state
    latents = (path - path.reshape(-1, 3).mean(0)) / path.reshape(-1, 3).std(0)
    w = rng.normal(scale=1 / math.sqrt(3), size=(3, n_neurons))
    rates = base_rate * np.exp(gain * latents @ w)
    spikes = rng.poisson(rates)
    return dict(spikes=spikes, rates=rates, latents=latents, readout=w)


def split_neurons(n_neurons: int, held_out: float = 0.2, seed: int = 0):
    """(held-in, held-out) neuron indices, the held-out ones chosen at random."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_neurons)
    n_out = max(1, int(round(held_out * n_neurons)))
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


# ---------------------------------------------------------------- metrics


def bits_per_spike(rates, spikes) -> float:
    """The Neural Latents Benchmark's bits per spike: the Poisson log-likelihood of
    ``spikes`` under ``rates`` (counts per bin, any shape ending in neurons) minus that
    under each neuron's mean rate over the evaluated data, in bits, per spike."""
    rates = np.asarray(rates, dtype=float).reshape(-1, np.shape(rates)[-1])
    spikes = np.asarray(spikes, dtype=float).reshape(-1, np.shape(spikes)[-1])
    keep = ~np.isnan(spikes).any(1)
    rates, spikes = rates[keep], spikes[keep]
    if (rates <= 0).any():
        raise ValueError("rates must be positive")
    null = np.broadcast_to(spikes.mean(0, keepdims=True), spikes.shape)

    def nll(r):
        with np.errstate(divide="ignore", invalid="ignore"):
            term = np.where(spikes > 0, spikes * np.log(r), 0.0)
        return float((r - term).sum())

    with np.errstate(divide="ignore"):
        null_nll = nll(np.where(null > 0, null, 1e-300)) if (null > 0).all() else nll(np.maximum(null, 1e-300))
    return (null_nll - nll(rates)) / (spikes.sum() * math.log(2))


def r2(pred, truth, axis_neurons: int = -1) -> float:
    """Mean over neurons of the coefficient of determination of ``pred`` for ``truth``
    (all other axes pooled; NaN entries of ``truth`` skipped)."""
    p = np.moveaxis(np.asarray(pred, float), axis_neurons, -1).reshape(-1, np.shape(pred)[axis_neurons])
    t = np.moveaxis(np.asarray(truth, float), axis_neurons, -1).reshape(p.shape)
    out = []
    for j in range(p.shape[1]):
        ok = np.isfinite(t[:, j]) & np.isfinite(p[:, j])
        if ok.sum() < 3:
            continue
        ss = ((t[ok, j] - t[ok, j].mean()) ** 2).sum()
        if ss > 0:
            out.append(1 - ((t[ok, j] - p[ok, j]) ** 2).sum() / ss)
    return float(np.mean(out)) if out else float("nan")


def decode_r2(latents, target, *, folds: int = 5, alphas=(0.01, 0.1, 1.0, 10.0, 100.0), seed: int = 0) -> float:
    """Cross-validated ridge decoding of ``target`` (trial, time[, k]) from ``latents``
    (trial, time, d): folds over trials, the ridge penalty chosen inside each training
    fold; returns R^2 on the held-out folds pooled."""
    x = np.asarray(latents, float)
    y = np.asarray(target, float)
    if y.ndim == 2:
        y = y[..., None]
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    preds = np.full(y.shape, np.nan)

    def fit(xtr, ytr, alpha):
        xm, ym = xtr.mean(0), ytr.mean(0)
        xc = xtr - xm
        coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(xc.shape[1]), xc.T @ (ytr - ym))
        return lambda xx: (xx - xm) @ coef + ym

    def rows(idx):
        xx, yy = x[idx].reshape(-1, x.shape[-1]), y[idx].reshape(-1, y.shape[-1])
        ok = np.isfinite(yy).all(1) & np.isfinite(xx).all(1)
        return xx[ok], yy[ok]

    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        inner = train[::2], train[1::2]
        best = min(alphas, key=lambda a: _sq_err(fit(*rows(inner[0]), a), *rows(inner[1])))
        model = fit(*rows(train), best)
        xt = x[test].reshape(-1, x.shape[-1])
        preds[test] = model(np.nan_to_num(xt)).reshape(len(test), x.shape[1], -1)
    return r2(preds, y)


def _sq_err(model, x, y):
    return float(((model(x) - y) ** 2).sum()) if len(x) else 0.0


# ---------------------------------------------------------------- model


@dataclass
class Config:
    """Everything that defines a model; saved beside every checkpoint."""
    n_in: int                      # observed (held-in) neurons: the encoder's input
    n_out: int                     # neurons the decoder predicts (held-in then held-out)
    latent: int = 16               # channels of position (and of velocity)
    hidden: int = 64               # encoder GRU and decoder width
    heads: int = 4
    likelihood: str = "poisson"    # poisson | gaussian
    dynamics: str = "langevin"     # langevin | gru (the baseline)
    step: float = 0.1              # h
    damping: float = 0.5           # gamma (initial; learned, positive)
    noise: float = 0.5             # s (initial; learned, positive)
    dropout: float = 0.1
    coordinated_dropout: float = 0.2
    # what the decoder reads at each bin: position | state (z, v) | state+context (z, v and the
    # encoder's output) | state+past (z, v and the forward encoder's output one bin back, so
    # never the bin being predicted; the released code's choice, and the best on Lorenz)
    decoder_input: str = "state+past"


DECODER_INPUTS = ("position", "state", "state+context", "state+past")


def _softplus_inv(y: float) -> float:
    return float(np.log(np.expm1(y)))


def build_model(cfg: Config):
    """The LangevinFlow (or GRU sequential VAE) torch module for ``cfg``."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class LangevinFlow(nn.Module):
        def __init__(self):
            super().__init__()
            d, hdim = cfg.latent, cfg.hidden
            self.encoder = nn.GRU(cfg.n_in, hdim, batch_first=True, bidirectional=True)
            self.to_init = nn.Linear(2 * hdim, 4 * d)              # mean and log-variance of (z0, v0)
            self.to_force = nn.Linear(2 * hdim, 2 * d)             # mean and log-variance of eps_t
            self.stiffness = nn.Parameter(torch.full((d,), _softplus_inv(1.0)))
            self.quartic = nn.Parameter(torch.full((d,), _softplus_inv(0.05)))
            self.coupling = nn.Parameter(torch.full((d,), _softplus_inv(0.5)))
            self.log_damping = nn.Parameter(torch.tensor(math.log(cfg.damping)))
            self.log_noise = nn.Parameter(torch.tensor(math.log(cfg.noise)))
            if cfg.dynamics == "gru":
                self.cell = nn.GRUCell(d, 2 * d)
            if cfg.decoder_input not in DECODER_INPUTS:
                raise ValueError(f"decoder_input must be one of {DECODER_INPUTS}, got {cfg.decoder_input!r}")
            width = {"position": d, "state": 2 * d, "state+context": 2 * d + 2 * hdim,
                     "state+past": 2 * d + hdim}[cfg.decoder_input]
            self.embed = nn.Linear(width, hdim)
            layer = nn.TransformerEncoderLayer(hdim, cfg.heads, dim_feedforward=2 * hdim, dropout=cfg.dropout,
                                               batch_first=True)
            self.decoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.readout = nn.Linear(hdim, cfg.n_out)
            if cfg.likelihood == "gaussian":
                self.log_var = nn.Parameter(torch.zeros(cfg.n_out))

        def grad_potential(self, z):
            """grad U for the coupled-oscillator ring, in closed form."""
            k, a, c = F.softplus(self.stiffness), F.softplus(self.quartic), F.softplus(self.coupling)
            right = z - torch.roll(z, -1, dims=-1)                  # z_i - z_{i+1}
            left = torch.roll(c, 1) * (z - torch.roll(z, 1, dims=-1))   # c_{i-1} (z_i - z_{i-1})
            return k * z + a * z ** 3 + c * right + left

        def integrate(self, z, v, eps):
            """Roll the latent state over eps (batch, T-1, d); returns positions (batch, T, d)."""
            return self.integrate_state(z, v, eps)[0]

        def integrate_state(self, z, v, eps):
            """Positions and velocities (batch, T, d) each (for the GRU: the two halves of its state)."""
            h = cfg.step
            zs, vs = [z], [v]
            if cfg.dynamics == "gru":
                state = torch.cat([z, v], -1)
                for t in range(eps.shape[1]):
                    state = self.cell(eps[:, t], state)
                    zs.append(state[:, :z.shape[-1]])
                    vs.append(state[:, z.shape[-1]:])
                return torch.stack(zs, 1), torch.stack(vs, 1)
            damp = 1 - h * torch.exp(self.log_damping)
            kick = torch.exp(self.log_noise) * math.sqrt(h)
            for t in range(eps.shape[1]):
                z = z + h * v
                v = damp * (v - h * self.grad_potential(z)) + kick * eps[:, t]
                zs.append(z)
                vs.append(v)
            return torch.stack(zs, 1), torch.stack(vs, 1)

        def forward(self, x, n_time: int | None = None, n_samples: int = 1, sample: bool = True):
            """x: (batch, T_obs, n_in) inputs; the trajectory runs ``n_time`` >= T_obs bins,
            the forces beyond the observed bins at their prior (forward prediction).
            Returns (predicted log-rates or means (batch, T, n_out) averaged over
            ``n_samples``, positions of the first sample, KL per trial)."""
            enc, last = self.encoder(x)
            summary = torch.cat([last[0], last[1]], -1)
            m0, lv0 = self.to_init(summary).chunk(2, -1)
            mf, lvf = self.to_force(enc[:, 1:]).chunk(2, -1)
            extra = (n_time or x.shape[1]) - x.shape[1]
            if extra > 0:
                pad = mf.new_zeros(mf.shape[0], extra, mf.shape[2])
                mf, lvf = torch.cat([mf, pad], 1), torch.cat([lvf, pad], 1)
            kl = 0.5 * (m0 ** 2 + lv0.exp() - 1 - lv0).sum(-1) + 0.5 * (mf ** 2 + lvf.exp() - 1 - lvf).sum((-1, -2))
            context = enc
            if cfg.decoder_input == "state+past":   # forward direction only, shifted: bins before t
                fwd = enc[..., :cfg.hidden]
                context = torch.cat([fwd.new_zeros(fwd.shape[0], 1, fwd.shape[2]), fwd[:, :-1]], 1)
            if extra > 0:                   # no observation past the window: the context is zero there
                context = torch.cat([context, context.new_zeros(context.shape[0], extra, context.shape[2])], 1)
            outs, first = [], None
            for _ in range(n_samples):
                s0 = m0 + torch.randn_like(m0) * (0.5 * lv0).exp() if sample else m0
                eps = mf + torch.randn_like(mf) * (0.5 * lvf).exp() if sample else mf
                z0, v0 = s0.chunk(2, -1)
                z, vel = self.integrate_state(z0, v0, eps)
                parts = {"position": [z], "state": [z, vel]}.get(cfg.decoder_input, [z, vel, context])
                outs.append(self.readout(self.decoder(self.embed(torch.cat(parts, -1)))))
                first = z if first is None else first
            return torch.stack(outs).mean(0), first, kl

        def nll(self, pred, target, mask):
            """Negative log-likelihood summed over the entries where ``mask`` is 1."""
            if cfg.likelihood == "poisson":
                ll = target * pred - torch.exp(pred) - torch.lgamma(target + 1)
            else:
                ll = -0.5 * ((target - pred) ** 2 / self.log_var.exp() + self.log_var + math.log(2 * math.pi))
            return -(ll * mask).sum((-1, -2))

    return LangevinFlow()


# ---------------------------------------------------------------- training


@dataclass
class FitResult:
    model: object
    config: Config
    held_in: np.ndarray
    held_out: np.ndarray
    forward: int = 0                                   # bins predicted past the observed window
    history: list = field(default_factory=list)        # (epoch, train loss, validation loss)
    best_epoch: int = 0
    device: str = "cpu"

    def _inputs(self, data):
        torch = _torch()
        x = np.nan_to_num(np.asarray(data, dtype=np.float32)[..., self.held_in])
        n_obs = x.shape[1] - self.forward
        return torch.as_tensor(x[:, :n_obs], device=self.device), x.shape[1]

    def predict(self, data, n_samples: int = 8, batch: int = 256) -> np.ndarray:
        """Predicted rates (counts per bin; Poisson) or means (Gaussian) of every neuron,
        ordered as the data's neurons, averaged over ``n_samples`` posterior samples."""
        torch = _torch()
        x, n_time = self._inputs(data)
        order = np.concatenate([self.held_in, self.held_out])
        out = np.empty((len(x), n_time, len(order)), dtype=np.float32)
        self.model.eval()
        with torch.no_grad():
            for lo in range(0, len(x), batch):
                pred, _, _ = self.model(x[lo:lo + batch], n_time, n_samples=n_samples)
                if self.config.likelihood == "poisson":
                    pred = torch.exp(pred)
                out[lo:lo + batch] = pred.cpu().numpy()
        result = np.empty_like(out)
        result[..., order] = out
        return result

    def latents(self, data, batch: int = 256) -> np.ndarray:
        """Posterior-mean latent positions (trial, time, latent)."""
        torch = _torch()
        x, n_time = self._inputs(data)
        zs = []
        self.model.eval()
        with torch.no_grad():
            for lo in range(0, len(x), batch):
                _, z, _ = self.model(x[lo:lo + batch], n_time, sample=False)
                zs.append(z.cpu().numpy())
        return np.concatenate(zs)

    def to_arrays(self) -> dict:
        """The model as plain arrays (weights, neuron split, and a JSON header as bytes),
        ready for ``numpy.savez``; nothing that needs unpickling."""
        arrays = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        arrays["__held_in"], arrays["__held_out"] = self.held_in, self.held_out
        header = {"config": asdict(self.config), "forward": self.forward, "best_epoch": self.best_epoch,
                  "history": self.history}
        arrays["__header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        return arrays


def from_arrays(arrays, device: str = "cpu") -> FitResult:
    """A FitResult from ``to_arrays``'s output (or an ``np.load`` of it)."""
    torch = _torch()
    header = json.loads(bytes(np.asarray(arrays["__header"])).decode())
    state = {k: torch.as_tensor(np.asarray(arrays[k])) for k in arrays if not k.startswith("__")}
    # checkpoints written before decoder_input existed decoded the position only
    cfg = Config(**{"decoder_input": "position", **header["config"]})
    model = build_model(cfg).to(device)
    model.load_state_dict(state)
    return FitResult(model, cfg, np.asarray(arrays["__held_in"]), np.asarray(arrays["__held_out"]),
                     header["forward"], header["history"], header["best_epoch"], device)


def _device(device: str) -> str:
    torch = _torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def fit(data, held_in, held_out, *, likelihood: str = "poisson", dynamics: str = "langevin", forward: int = 0,
        epochs: int = 200, batch_size: int = 64, lr: float = 3e-3, patience: int = 20, val_fraction: float = 0.2,
        kl_warmup: int = 20, seed: int = 0, device: str = "auto", progress=None, **config) -> FitResult:
    """Train a LangevinFlow (or, with ``dynamics="gru"``, the GRU sequential VAE) on
    ``data`` (trial, time, neuron): spike counts, or calcium with NaN where unobserved.

    The encoder sees the ``held_in`` neurons over all but the last ``forward`` bins; the
    decoder predicts held-in and ``held_out`` neurons over every bin. A ``val_fraction``
    of the trials is held back for early stopping (``patience`` epochs without a better
    validation loss); the best weights are restored. ``config`` sets Config fields
    (latent, hidden, step, damping, noise, coordinated_dropout, ...). Deterministic for
    a given ``seed`` on the CPU. ``progress(epoch, train, val)`` is called per epoch."""
    torch = _torch()
    if likelihood not in ("poisson", "gaussian"):
        raise ValueError(f"likelihood must be 'poisson' or 'gaussian', got {likelihood!r}")
    if dynamics not in ("langevin", "gru"):
        raise ValueError(f"dynamics must be 'langevin' or 'gru', got {dynamics!r}")
    data = np.asarray(data, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"data must be (trial, time, neuron), got shape {data.shape}")
    held_in, held_out = np.asarray(held_in, dtype=int), np.asarray(held_out, dtype=int)
    if not 0 <= forward < data.shape[1] - 1:
        raise ValueError(f"forward must leave at least two observed bins, got {forward} of {data.shape[1]}")
    device = _device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = Config(n_in=len(held_in), n_out=len(held_in) + len(held_out), likelihood=likelihood, dynamics=dynamics,
                 **config)
    model = build_model(cfg).to(device)
    order = np.concatenate([held_in, held_out])
    target = data[..., order]
    observed = np.isfinite(target).astype(np.float32)
    target = np.nan_to_num(target)
    n_val = max(1, int(round(val_fraction * len(data))))
    perm = rng.permutation(len(data))
    val, train = perm[:n_val], perm[n_val:]
    n_obs = data.shape[1] - forward
    tt = torch.as_tensor(target, device=device)
    tm = torch.as_tensor(observed, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_in = len(held_in)
    p_cd = cfg.coordinated_dropout
    gen = torch.Generator(device=device).manual_seed(seed)
    result = FitResult(model, cfg, held_in, held_out, forward, device=device)
    best, best_state, waited = np.inf, None, 0
    for epoch in range(epochs):
        model.train()
        beta = min(1.0, (epoch + 1) / max(kl_warmup, 1))
        order_e = rng.permutation(train)
        total = 0.0
        for lo in range(0, len(order_e), batch_size):
            idx = torch.as_tensor(order_e[lo:lo + batch_size], device=device)
            y, m = tt[idx], tm[idx]
            x = y[:, :n_obs, :n_in]
            mask = m.clone()
            if p_cd > 0:          # coordinated dropout: score held-in entries only where they were hidden
                keep = (torch.rand(x.shape, generator=gen, device=device) > p_cd).float()
                x = x * keep / (1 - p_cd)
                mask[:, :n_obs, :n_in] = mask[:, :n_obs, :n_in] * (1 - keep)
            pred, _, kl = model(x, data.shape[1])
            loss = (model.nll(pred, y, mask) + beta * kl).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            vi = torch.as_tensor(val, device=device)
            pred, _, kl = model(tt[vi][:, :n_obs, :n_in], data.shape[1], sample=False)
            vloss = float((model.nll(pred, tt[vi], tm[vi]) + kl).mean())
        result.history.append((epoch, total / len(train), vloss))
        if progress is not None:
            progress(epoch, total / len(train), vloss)
        if epoch + 1 < kl_warmup:          # the KL weight is still rising: losses are not comparable yet
            continue
        if not np.isfinite(best) or vloss < best - 1e-4 * abs(best):
            best, waited, result.best_epoch = vloss, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


# ---------------------------------------------------------------- the smoothing baseline


def smooth(data, sigma_bins: float):
    """Gaussian smoothing of (trial, time, neuron) along time (NaN -> 0 first)."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.nan_to_num(np.asarray(data, float)), sigma_bins, axis=1, mode="nearest")


def smoothing_baseline(train, test, held_in, held_out, *, likelihood: str = "poisson",
                       sigmas=(1.0, 2.0, 4.0, 8.0), ridge: float = 1e-2) -> np.ndarray:
    """NLB's spike-smoothing baseline: held-in neurons' own smoothed activity is their
    prediction; held-out neurons are a GLM (Poisson with log link, or linear for calcium)
    of the smoothed held-in activity, fitted on ``train``. The kernel width is chosen on
    a split of ``train``. Returns predictions for ``test`` (trial, time, neuron)."""
    train, test = np.asarray(train, float), np.asarray(test, float)
    half = len(train) // 2

    def run(fit_on, apply_to, sigma):
        xs = smooth(fit_on[..., held_in], sigma).reshape(-1, len(held_in))
        ys = np.nan_to_num(fit_on[..., held_out]).reshape(-1, len(held_out))
        coef = _glm(xs, ys, likelihood, ridge)
        xa = smooth(apply_to[..., held_in], sigma)
        out = np.empty(apply_to.shape)
        out[..., held_in] = np.maximum(xa, 1e-3) if likelihood == "poisson" else xa
        design = np.concatenate([xa.reshape(-1, len(held_in)), np.ones((xa[..., 0].size, 1))], 1)
        lin = design @ coef
        out[..., held_out] = (np.exp(lin) if likelihood == "poisson" else lin).reshape(*apply_to.shape[:2], -1)
        return out

    def score(pred, truth):
        if likelihood == "poisson":
            return bits_per_spike(np.maximum(pred[..., held_out], 1e-6), truth[..., held_out])
        return r2(pred[..., held_out], truth[..., held_out])

    best = max(sigmas, key=lambda s: score(run(train[:half], train[half:], s), train[half:]))
    return run(train, test, best)


def _glm(x, y, likelihood, ridge, n_iter: int = 50):
    """Per output column: ridge-penalized Poisson (log link, by Newton's method) or linear
    regression on x with an intercept; returns (d+1, k) coefficients."""
    xd = np.concatenate([x, np.ones((len(x), 1))], 1)
    pen = ridge * np.eye(xd.shape[1])
    pen[-1, -1] = 0
    if likelihood != "poisson":
        return np.linalg.solve(xd.T @ xd + pen * len(x), xd.T @ y)
    coef = np.zeros((xd.shape[1], y.shape[1]))
    coef[-1] = np.log(np.maximum(y.mean(0), 1e-3))
    for _ in range(n_iter):
        mu = np.exp(np.clip(xd @ coef, -20, 20))
        grad = xd.T @ (y - mu) - pen @ coef * len(x)
        step = np.stack([np.linalg.solve((xd * mu[:, [j]]).T @ xd + pen * len(x), grad[:, j])
                         for j in range(y.shape[1])], 1)
        coef += step
        if np.abs(step).max() < 1e-6:
            break
    return coef
