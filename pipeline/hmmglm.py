"""`wormflow analyze hmmglm`: brain states of the store's worms by a state-switching GLM,
compared with behaviour (reversals) and the anatomical connectome; atomic output with
provenance, and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from activity.store import open_activity, store_fact
from analysis import hmmglm
from analysis.sequences import REVERSAL_CLASSES, store_sequences
from wormflow.core.errors import WormflowError
from pipeline.analyze import provenance_attrs, select_worms
from pipeline.storage import json_safe, write_zarr_atomic

DEFAULT_CONNECTOME_SOURCE = "cook_2019_herm/si5"
SIGN_SOURCE = "fenyves_2020"


def anatomy(connectome_store, neurons, source: str | None = None):
    """(adjacency (post, pre) bool: chemical or electrical synapse in ``source`` (default:
    Cook 2019's hermaphrodite if the store has it, else its first source with chemical
    synapses); sign (post, pre): Fenyves 2020's predicted sign where the store has it,
    else None; the source used)."""
    from connectome.store import open_connectome

    c = open_connectome(connectome_store)
    sources = [str(s) for s in c.source.values]
    if source is None:
        with_chemical = [s for s in sources if bool((c["chemical"].sel(source=s) > 0).any())]
        if DEFAULT_CONNECTOME_SOURCE in with_chemical or not with_chemical:
            source = DEFAULT_CONNECTOME_SOURCE
        else:
            source = with_chemical[0]
    if source not in sources:
        raise WormflowError(f"connectome source {source!r} is not in {connectome_store} "
                            f"(it has {', '.join(sources[:8])}{'…' if len(sources) > 8 else ''})")

    def layer(kind, src):
        return np.nan_to_num(c[kind].sel(source=src, pre=list(neurons), post=list(neurons)).values.T)

    adj = (layer("chemical", source) > 0) | (layer("electrical", source) > 0)
    sign = None
    if SIGN_SOURCE in sources:
        sign = c["sign"].sel(source=SIGN_SOURCE, pre=list(neurons), post=list(neurons)).values.T
    return adj, sign, source


def hmmglm_on_store(store: str | Path, out: str | Path, *, n_states: int = 3, prior: str = "onehot",
                    emission: str = "gaussian", worms=None, datasets=None, neurons=None,
                    max_neurons: int = 60, selection: str = "brain", min_worm_fraction: float = 0.5, connectome=None,
                    connectome_source: str | None = None, connectome_prior: bool = False,
                    behaviour: str = "behavior_reversal_vec", n_restarts: int = 4, detrend_s: float = 120.0,
                    seed: int = 0):
    """Fit the HMM-GLM to the store's worms (their labelled calcium), score the states
    against ``behaviour`` and the learned prior against the connectome, and write
    ``out``/hmmglm.zarr atomically. Returns (result Dataset, summary dict)."""
    if emission == "poisson":
        raise WormflowError("the activity store holds calcium: use --emission gaussian")
    ds = select_worms(open_activity(store), worms, datasets)
    if selection not in ("brain", "command"):
        raise WormflowError(f"selection must be brain or command, got {selection!r}")
    store_options = dict(neurons=list(neurons) if neurons else None, max_neurons=max_neurons,
                         min_worm_fraction=min_worm_fraction, keep_only=selection == "command")
    try:
        seqs, worm_ids, names = store_sequences(ds, **store_options)
    except ValueError as exc:
        raise WormflowError(f"{store}: {exc}") from exc
    adj = sign = None
    if connectome is not None:
        adj, sign, connectome_source = anatomy(connectome, names, connectome_source)
    init = hmmglm.connectome_type_prior(adj, sign) if (connectome_prior and adj is not None) else None
    if connectome_prior and adj is None:
        raise WormflowError("--connectome-prior needs --connectome STORE")
    # the connectome both starts the one-hot prior and stays its hyperprior's mean
    dt = store_fact(ds, "dt")
    detrend = int(round(detrend_s / dt)) if detrend_s else None
    if detrend is not None and detrend < 3:
        raise WormflowError(f"detrend_s {detrend_s} s is under three bins of the store's {dt} s grid")
    result = hmmglm.fit(seqs, n_states, prior=prior, emission=emission, n_restarts=n_restarts, seed=seed,
                        global_prior_init=init, prior_mean=init, detrend=detrend)
    if detrend:     # the baselines see the same traces as the model
        from analysis.hmmglm.model import remove_baseline
        seqs = [remove_baseline(s, detrend) for s in seqs]
    result.neurons, result.sequences = names, worm_ids
    summary = {"n_worms": len(worm_ids), "n_neurons": len(names), "n_states": n_states, "prior": prior,
               "emission": emission, "log_likelihood_per_bin": result.history[-1] if result.history else None,
               "converged": result.converged, "n_iter": result.n_iter}
    if behaviour in ds:
        b = ds[behaviour].sel(worm=worm_ids).values
        states = [result.states[i, :len(s)] for i, s in enumerate(seqs)]
        beh = [b[i, :len(s)] for i, s in enumerate(seqs)]
        summary["behaviour"] = {"variable": behaviour, **hmmglm.behaviour_balanced_accuracy(states, beh, n_states),
                                "baselines": _baselines(seqs, beh, names, n_states, seed)}
    if adj is not None:
        summary["connectome"] = {"source": connectome_source, "used_as_prior": bool(connectome_prior)}
        if result.global_prior is not None:
            summary["connectome"].update(hmmglm.compare_with_connectome(result.global_prior, adj, sign))
        else:
            off = ~np.eye(len(names), dtype=bool)          # the plain models: the largest |W| over states
            p_conn = np.abs(result.weights).max(0)
            summary["connectome"]["auc"] = hmmglm.roc_auc(p_conn[off], adj[off])
    out_ds = hmmglm.result_dataset(result, dt=dt)
    if adj is not None:
        out_ds["anatomical_synapse"] = (("post", "pre"), adj)
    out_ds.attrs.update({
        **provenance_attrs("hmmglm", store, ds, worm_ids),
        "parameters": json.dumps({"n_states": n_states, "prior": prior, "emission": emission, "seed": seed,
                                  "selection": selection,
                                  "n_restarts": n_restarts, "detrend_s": detrend_s, "connectome": str(connectome) if connectome else None,
                                  "connectome_source": connectome_source, "connectome_prior": connectome_prior,
                                  **store_options}),
        "summary": json.dumps(json_safe(summary)),
    })
    write_zarr_atomic(out_ds, Path(out) / "hmmglm.zarr")
    return out_ds, summary, ds


def _baselines(seqs, behaviour, names, n_states, seed) -> dict:
    """The simple models the states are measured against, on the same worms and protocol
    (mapped or trained on the other worms, scored per worm): a Gaussian HMM on 5 principal
    components, and a logistic regression from the reversal command neurons."""
    from analysis.hmmglm.baselines import fit_gaussian_hmm, reversal_decoder_accuracy
    from analysis.sequences import command_neurons

    g = fit_gaussian_hmm(seqs, n_states, min(5, len(names)), seed=seed)
    ghmm = hmmglm.behaviour_balanced_accuracy(g.decode(seqs), behaviour, n_states)["held_out"]
    reversal = [i for i, n in enumerate(names) if n in command_neurons(names) and n[:3] in REVERSAL_CLASSES]
    out = {"gaussian_hmm_pcs": {"held_out": ghmm, "held_out_mean": _nanmean(ghmm)}}
    if reversal:
        lr = reversal_decoder_accuracy(seqs, behaviour, reversal)
        out["logistic_reversal_neurons"] = {"held_out": lr, "held_out_mean": _nanmean(lr),
                                            "neurons": [names[i] for i in reversal]}
    return out


def _nanmean(values):
    v = np.asarray(values, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else None


def hmmglm_figures(result, ds, figures: str | Path, behaviour: str = "behavior_reversal_vec") -> list[Path]:
    from pipeline.figures import coupling_matrices, prior_vs_connectome, state_rasters

    figures = Path(figures)
    made = [state_rasters(result, ds, figures / "hmmglm_states.png", behaviour),
            coupling_matrices(result, figures / "hmmglm_couplings.png")]
    if "global_prior" in result or "anatomical_synapse" in result:
        made.append(prior_vs_connectome(result, figures / "hmmglm_prior_vs_connectome.png"))
    return made
