"""Fits the one-hot HMM-GLM paper's own model (JerrySoybean/onehot-hmmglm, its deprecated
module, as its demo notebook trains it: Adam lr 0.01, 10 EM epochs x 50 M-step steps,
Gumbel-softmax adjacency) on the reference synthetic file, on one torch thread, under its
own environment. Writes the posteriors, connection types and test log-likelihood per bin
to OUT.npz for the bench to score exactly as it scores ours; prints one JSON line.

    <anchor venv>/bin/python onehot_hmmglm.py SRC ANCHOR_DIR DATA.npz OUT.npz [EPOCHS SUB_EPOCHS]
"""

import json
import resource
import sys
import time

import numpy as np
import torch

from hmmglm.deprecated import distributions, model, nonlinearities, utils

src, where, data, out = sys.argv[1:5]
epochs, sub_epochs = (int(sys.argv[5]), int(sys.argv[6])) if len(sys.argv) > 6 else (10, 50)
torch.set_num_threads(1)
d = np.load(data)
train = torch.tensor(d["spikes_train"], dtype=torch.float32)
conv_train = torch.tensor(d["convolved_train"])
test = torch.tensor(d["spikes_test"], dtype=torch.float32)
conv_test = torch.tensor(d["convolved_test"])
n_states, n_neurons = d["transition_matrix"].shape[0], train.shape[2]
basis = utils.exp_basis(decay=1, window_size=len(d["kernel"]), time_span=len(d["kernel"]))

t0 = time.perf_counter()
cpu0 = time.process_time()
torch.manual_seed(0)
m = model.OnehotHMMGLM(n_states, n_neurons, basis, distributions.Poisson(), nonlinearities.Sigmoid(),
                       nonlinearities.Softplus())
m._bias.data = train.mean(dim=(0, 1))
opt = torch.optim.Adam(m.parameters(), lr=0.01)
for epoch in range(epochs):                       # the demo's training loop
    for k in range(len(train)):
        gamma, xi = m.forward_backward(train[k], conv_train[k])
        m.set_adjacency_type("gumbel_softmax")
        for _ in range(sub_epochs):
            loss = -m.m_step(train[k], conv_train[k], gamma, xi) - m.adjacency_prior_log_likelihood()
            opt.zero_grad()
            loss.backward()
            opt.step()
            m.correct_extreme_onehot()
        m.set_adjacency_type("softmax")
fit_s = time.perf_counter() - t0
cpu_s = time.process_time() - cpu0


def log_likelihood(spikes, conv):
    """log p(spikes) by the forward algorithm in log space, uniform initial state."""
    with torch.no_grad():
        rates = m.firing_rates(conv)
        log_em = m.distribution.log_likelihood(spikes[None], rates).sum(-1).T       # time x states
        log_a = torch.log(m.transition_matrix)
        alpha = torch.log(torch.full((n_states,), 1.0 / n_states)) + log_em[0]
        for t in range(1, len(spikes)):
            alpha = log_em[t] + torch.logsumexp(log_a.T + alpha, dim=1)
        return float(torch.logsumexp(alpha, 0))


with torch.no_grad():
    post_train = np.stack([m.forward_backward(train[k], conv_train[k])[0].numpy() for k in range(len(train))])
    post_test = np.stack([m.forward_backward(test[k], conv_test[k])[0].numpy() for k in range(len(test))])
    ll = sum(log_likelihood(test[k], conv_test[k]) for k in range(len(test))) / (test.shape[0] * test.shape[1])
    np.savez(out, posterior_train=post_train, posterior_test=post_test, types=m.adjacency_index.numpy(),
             weights=m.weight.numpy())
print(json.dumps({"fit_s": fit_s, "cpu_s": cpu_s, "test_ll": ll, "epochs": epochs, "sub_epochs": sub_epochs,
                  "threads": torch.get_num_threads(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
