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
  oscillator with its own stiffness k_i and a quartic term a_i > 0, coupled to its
  neighbour on a ring with strength c_i > 0:
      U(z) = sum_i [k_i z_i^2 / 2 + a_i z_i^4 / 4 + c_i (z_i - z_{i+1})^2 / 2]
  and grad U is written in closed form (no autograd call inside the time loop). The
  stiffness may take either sign (``stiffness="free"``, the default): a channel with
  k_i < 0 is a double well, two lobes the state switches between under the forces, which
  is what lets the latent carry a Lorenz-like state; ``"positive"`` keeps single wells;
- a one-layer Transformer decoder reads, at every bin, the latent position and velocity
  only (``decoder_input="state"``, the paper's generative model: the encoder infers the
  latent and nothing else), and gives each neuron's log-rate (Poisson) or mean
  (Gaussian, with a learned per-neuron noise). ``"state+past"`` also hands it the forward
  encoder's state one bin back, as the released code does; the prediction can then go
  around the latent (``FitResult.predict_without_context`` measures how much does).

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

The Lorenz data, the scores and the smoothing baseline are in
:mod:`analysis.langevin.evaluation`; the package exports both.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis.langevin.evaluation import (bits_per_spike, decode_r2, lorenz_dataset, r2, smooth, smoothing_baseline,
                                     split_neurons)

__all__ = ["Config", "DECODER_INPUTS", "FitResult", "build_model", "fit", "from_arrays", "lorenz_dataset",
           "split_neurons", "bits_per_spike", "r2", "decode_r2", "smooth", "smoothing_baseline"]


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the package depends on torch
        raise ImportError("analysis.langevin needs PyTorch: pip install torch==2.13.0 (CPU) "
                          "or a CUDA build from pytorch.org") from exc
    return torch


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
    # what the decoder reads at each bin: position | state (z, v: the latent alone, the paper's
    # generative model, and the default) | state+context (z, v and the encoder's output) |
    # state+past (z, v and the forward encoder's output one bin back, so never the bin being
    # predicted; the released code's choice, in which the prediction can go around the latent)
    decoder_input: str = "state"
    # the oscillators' stiffness k_i: "free" (any sign: with the quartic term a channel may be a
    # double well, two lobes to switch between; the default) or "positive" (softplus, single wells)
    stiffness: str = "free"


DECODER_INPUTS = ("position", "state", "state+context", "state+past")
STIFFNESS = ("positive", "free")


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
            if cfg.stiffness not in STIFFNESS:
                raise ValueError(f"stiffness must be one of {STIFFNESS}, got {cfg.stiffness!r}")
            self.stiffness = nn.Parameter(torch.full((d,), 1.0 if cfg.stiffness == "free" else _softplus_inv(1.0)))
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
            k = self.stiffness if cfg.stiffness == "free" else F.softplus(self.stiffness)
            a, c = F.softplus(self.quartic), F.softplus(self.coupling)
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

        def forward(self, x, n_time: int | None = None, n_samples: int = 1, sample: bool = True,
                    with_velocity: bool = False, without_context: bool = False):
            """x: (batch, T_obs, n_in) inputs; the trajectory runs ``n_time`` >= T_obs bins,
            the forces beyond the observed bins at their prior (forward prediction).
            Returns (predicted log-rates or means (batch, T, n_out) averaged over
            ``n_samples``, positions of the first sample (with its velocities after them
            when ``with_velocity``), KL per trial). ``without_context`` zeroes whatever the
            decoder reads besides (z, v): what the prediction is without the bypass."""
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
            if without_context:
                context = torch.zeros_like(context)
            outs, first = [], None
            for _ in range(n_samples):
                s0 = m0 + torch.randn_like(m0) * (0.5 * lv0).exp() if sample else m0
                eps = mf + torch.randn_like(mf) * (0.5 * lvf).exp() if sample else mf
                z0, v0 = s0.chunk(2, -1)
                z, vel = self.integrate_state(z0, v0, eps)
                parts = {"position": [z], "state": [z, vel]}.get(cfg.decoder_input, [z, vel, context])
                outs.append(self.readout(self.decoder(self.embed(torch.cat(parts, -1)))))
                if first is None:
                    first = torch.cat([z, vel], -1) if with_velocity else z
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

    def predict(self, data, n_samples: int = 8, batch: int = 256, without_context: bool = False) -> np.ndarray:
        """Predicted rates (counts per bin; Poisson) or means (Gaussian) of every neuron,
        ordered as the data's neurons, averaged over ``n_samples`` posterior samples."""
        torch = _torch()
        x, n_time = self._inputs(data)
        order = np.concatenate([self.held_in, self.held_out])
        out = np.empty((len(x), n_time, len(order)), dtype=np.float32)
        self.model.eval()
        with torch.no_grad():
            for lo in range(0, len(x), batch):
                pred, _, _ = self.model(x[lo:lo + batch], n_time, n_samples=n_samples,
                                        without_context=without_context)
                if self.config.likelihood == "poisson":
                    pred = torch.exp(pred)
                out[lo:lo + batch] = pred.cpu().numpy()
        result = np.empty_like(out)
        result[..., order] = out
        return result

    def latents(self, data, batch: int = 256) -> np.ndarray:
        """Posterior-mean latent positions (trial, time, latent)."""
        return self.states(data, batch)[..., :self.config.latent]

    def states(self, data, batch: int = 256) -> np.ndarray:
        """Posterior-mean latent state: positions then velocities (trial, time, 2 latent)."""
        torch = _torch()
        x, n_time = self._inputs(data)
        out = []
        self.model.eval()
        with torch.no_grad():
            for lo in range(0, len(x), batch):
                _, zv, _ = self.model(x[lo:lo + batch], n_time, sample=False, with_velocity=True)
                out.append(zv.cpu().numpy())
        return np.concatenate(out)

    def predict_without_context(self, data, n_samples: int = 8, batch: int = 256) -> np.ndarray:
        """``predict`` with the decoder's non-latent input (the encoder's state, for
        ``decoder_input`` "state+past" or "state+context") zeroed: comparing it with
        ``predict`` measures how much of the prediction bypasses the latent."""
        return self.predict(data, n_samples, batch, without_context=True)

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
    # checkpoints written before decoder_input (stiffness) existed decoded the position only
    # (had positive stiffness)
    cfg = Config(**{"decoder_input": "position", "stiffness": "positive", **header["config"]})
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
