"""State-switching GLMs (HMM-GLM) with the one-hot, Gaussian or no coupling prior.

Modules: :mod:`.model` (sequences, the design and the parameters), :mod:`.inference` (EM,
the public fit and its result), :mod:`.mstep` (the per-state coupling updates),
:mod:`.hmm` (exact forward-backward, Viterbi, state matching), :mod:`.scores` (the
connectome prior and scores against truth, behaviour and anatomy), :mod:`.simulation`
(planted HMM-GLM data). ``prepare_sequences``, ``e_step`` and ``m_step`` are public so that
a benchmark can time one EM step.
"""

from analysis.hmmglm.hmm import (forward_backward, match_states, sequence_log_likelihood, state_accuracy,
                                 update_transition, viterbi)
from analysis.hmmglm.inference import (EMISSIONS, PRIORS, TYPE_NAMES, HMMGLMResult, e_step, fit, result_dataset)
from analysis.hmmglm.model import as_sequences, convolve_history, history_kernel, prepare_sequences
from analysis.hmmglm.mstep import m_step
from analysis.hmmglm.scores import (behaviour_balanced_accuracy, compare_with_connectome, connection_type_scores,
                                    connectome_type_prior, roc_auc)
from analysis.hmmglm.simulation import hmmglm_sample

__all__ = ["EMISSIONS", "PRIORS", "TYPE_NAMES", "HMMGLMResult", "as_sequences", "behaviour_balanced_accuracy",
           "compare_with_connectome", "connection_type_scores", "connectome_type_prior", "convolve_history", "e_step",
           "fit", "forward_backward", "history_kernel", "hmmglm_sample", "m_step", "match_states",
           "prepare_sequences", "result_dataset", "roc_auc", "sequence_log_likelihood", "state_accuracy",
           "update_transition", "viterbi"]
