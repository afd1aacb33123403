"""Times training steps of LangevinFlow's released model (KingJamesSong/LangevinFlow_CCN,
nlb_lightning.models.LangevinAutoencoder) at its MC_Maze configuration, under its own
environment: hidden 280, 137 held-in of 182 neurons, 35 observed + 10 forward bins, batch
256, its own training_step (coordinated dropout, forward, Poisson NLL, KL), then backward
and its Adam settings. Prints one JSON line: parameters, seconds per step, peak RSS.

    <anchor venv>/bin/python LangevinFlow_CCN.py SRC ANCHOR_DIR STEPS [DEVICE]

Its requirements pin pytorch-lightning 1.6.0, which predates the torch it would run with
here; the model only needs ``pl.LightningModule``, taken from the current release.
"""

import json
import resource
import sys
import time

import numpy as np
import torch

from nlb_lightning.models import LangevinAutoencoder

src, where, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
N_IN, N_OUT, T_OBS, T_FWD, BATCH, HIDDEN = 137, 182, 35, 10, 256, 280
torch.manual_seed(0)
model = LangevinAutoencoder(input_size=N_IN, hidden_size=HIDDEN, output_size=N_OUT, fwd_steps=T_FWD,
                            learning_rate=3e-3, weight_decay=2e-5, dropout=0.05, gamma=0.55, cd_rate=0.5).to(device)
model.log = lambda *a, **k: None                     # no Lightning trainer here: its logging is a no-op
opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=2e-5)
rng = np.random.default_rng(0)
y = torch.as_tensor(rng.poisson(0.3, (BATCH, T_OBS + T_FWD, N_OUT)).astype(np.float32), device=device)
batch = (y[:, :T_OBS, :N_IN].contiguous(), y, torch.zeros(BATCH, T_OBS + T_FWD, 2, device=device))


def step():
    loss = model.training_step(batch, 0)
    opt.zero_grad()
    loss.backward()
    opt.step()


model.train()
step()                                               # warm-up (allocations)
times = []
for _ in range(steps):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "step_s": float(np.median(times)),
                  "steps": steps, "threads": torch.get_num_threads(), "device": device,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
