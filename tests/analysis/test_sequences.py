"""Worms of a store as model sequences: the command neurons are kept when any worm has them."""

import numpy as np
import xarray as xr

from analysis.sequences import command_neurons, store_sequences
from wormflow.core.neurons import neuron_names


def _store(n_worms=5, n_time=200, seed=0):
    """Labelled calcium where AVBL is seen in one worm only and every worm sees 40 common neurons."""
    rng = np.random.default_rng(seed)
    names = list(neuron_names())
    x = np.full((n_worms, n_time, len(names)), np.nan)
    common = [i for i, n in enumerate(names) if n not in command_neurons(names)][:40]
    x[:, :, common] = rng.normal(size=(n_worms, n_time, len(common)))
    x[0, :, names.index("AVBL")] = rng.normal(size=n_time)       # one worm of five
    return xr.Dataset({"calcium": (("worm", "time", "neuron"), x)},
                      coords={"worm": [f"D/w{i}" for i in range(n_worms)], "neuron": names})


def test_command_neurons_are_the_six_classes_by_name_and_by_the_registry_class():
    from wormflow.core.neurons import registry_columns

    names = list(neuron_names())
    want = {"AVAL", "AVAR", "AVBL", "AVBR", "AVEL", "AVER", "AIBL", "AIBR", "RIBL", "RIBR", "RIML", "RIMR"}
    assert set(command_neurons(names)) == want
    assert set(command_neurons(names, registry_columns()["neuron_class"])) == want


def test_a_command_neuron_seen_in_one_worm_is_kept_and_counts_in_the_maximum():
    ds = _store()
    _, _, names = store_sequences(ds, max_neurons=20)
    assert "AVBL" in names and len(names) == 20
    assert "AVAL" not in names                                  # no worm has it: not invented
    _, _, plain = store_sequences(ds, max_neurons=20, keep=())
    assert "AVBL" not in plain                                  # 1 of 5 worms is under min_worm_fraction
