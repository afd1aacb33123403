"""The dynamic functional connectome: differential affinity between traces, its
(pair x time x worm) tensor factorized by non-negative CP, and communities of the components.

Modules: :mod:`.affinity` (the affinity and its lazy tensor over a store), :mod:`.engine`
(non-negative CP by HALS with missing entries, rank selection, the fit on a store),
:mod:`.communities` (weighted SBM, Leiden, NMI), :mod:`.simulation` (planted co-activation).
"""

from analysis.ntf.affinity import affinity_tensor, differential_affinity, pair_index, standardized_derivative
from analysis.ntf.communities import degree_preserving_null, fit_sbm, icl, leiden, nmi, weighted_sbm
from analysis.ntf.engine import (NTFResult, circular_shift_null, fit, match_components, nonneg_cp_hals, pair_matrix,
                                 select_rank)
from analysis.ntf.simulation import dynamic_communities

__all__ = ["NTFResult", "affinity_tensor", "circular_shift_null", "degree_preserving_null", "differential_affinity",
           "dynamic_communities", "fit", "fit_sbm", "icl",
           "leiden", "match_components", "nmi", "nonneg_cp_hals", "pair_index", "pair_matrix", "select_rank",
           "standardized_derivative", "weighted_sbm"]
