"""Runs worm-graph's Dag2023 preprocessor (qsimeon/worm-data-preprocess) on the mirror's
Flavell files, with the preprocessing settings of its own config, under its own
environment. Prints one JSON line: worms, preprocessing seconds, import seconds, peak RSS.

    <anchor venv>/bin/python worm_data_preprocess.py SRC ANCHOR_DIR
"""

import json
import os
import resource
import sys
import tempfile
import time

t0 = time.perf_counter()
src, where = sys.argv[1], sys.argv[2]
sys.path.insert(0, src)

from sklearn.preprocessing import StandardScaler  # noqa: E402

from preprocess.config import PREPROCESS_CONFIG as C  # noqa: E402
from preprocess.preprocessors._helpers import CausalNormalizer  # noqa: E402
from preprocess.preprocessors._neural import Dag2023Preprocessor  # noqa: E402

t_import = time.perf_counter() - t0
with tempfile.TemporaryDirectory() as out:
    p = Dag2023Preprocessor(CausalNormalizer() if C["norm_transform"] == "causal" else StandardScaler(),
                            C["smooth"]["method"], C["interpolate"], C["resample_dt"], alpha=C["smooth"]["alpha"],
                            window_size=C["smooth"]["window_size"], sigma=C["smooth"]["sigma"])
    p.raw_data_path = os.path.join(where, "data")       # its own layout, inputs linked from the mirror
    p.processed_data_path = out
    t1 = time.perf_counter()
    p.preprocess()
    seconds = time.perf_counter() - t1
n_files = sum(len([f for f in os.listdir(os.path.join(where, "data", "Dag2023", sub)) if f.endswith(".h5")])
              for sub in ("swf702_with_id", "swf415_no_id"))
print(json.dumps({"n_files": n_files, "seconds": seconds, "imports_s": t_import,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
