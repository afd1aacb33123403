"""LangevinFlow: a sequential VAE with underdamped Langevin latent dynamics, and its benchmark.

Modules: :mod:`.model` (the network, its training and the fit result), :mod:`.evaluation`
(the synthetic Lorenz data, held-in/held-out neuron splits, bits per spike, R², latent
decoding and the spike-smoothing baseline), :mod:`.design` (the experiment on recordings:
windows, held-out neurons and windows, the comparison with the GRU VAE and smoothing).
"""

from analysis.langevin.evaluation import (bits_per_spike, decode_r2, lorenz_dataset, r2, smooth, smoothing_baseline,
                                          split_neurons)
from analysis.langevin.model import DECODER_INPUTS, Config, FitResult, build_model, fit, from_arrays

__all__ = ["Config", "DECODER_INPUTS", "FitResult", "bits_per_spike", "build_model", "decode_r2", "fit",
           "from_arrays", "lorenz_dataset", "r2", "smooth", "smoothing_baseline", "split_neurons"]
