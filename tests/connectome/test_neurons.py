import numpy as np
import pandas as pd

from connectome import neuron_names, neuron_table
from connectome.build_registry import build_table, natural_key


def test_registry_has_302_distinct_neurons_including_can():
    names = neuron_names()
    assert len(names) == 302 and len(set(names)) == 302
    assert {"CANL", "CANR", "AVAL", "VB2", "I3", "M1"} <= set(names)
    assert "VB02" not in names


def test_registry_order_is_natural_sort_of_names():
    names = list(neuron_names())
    assert names == sorted(names, key=natural_key)
    assert names.index("AS2") < names.index("AS10")


def test_registry_columns_carry_class_type_side_and_position():
    t = neuron_table()
    assert t.loc["AVAL", "neuron_class"] == "AVA" and t.loc["AVAL", "lr"] == "L"
    assert t.loc["AVAL", "cell_type"] == "interneuron"
    assert t.loc["VB2", "neurotransmitter"] == "ACh"
    assert t.loc["PVCL", "x_um"] > 700 and t.loc["ADAL", "x_um"] < 120   # nose-to-tail axis
    assert np.isnan(t.loc["CANL", "x_um"])
    assert set(t["cell_type"]) == {"sensory", "interneuron", "motorneuron", "neuron"}


def test_committed_registry_equals_rebuild_from_mirror(mirror):
    rebuilt = build_table(mirror).set_index("name")
    committed = neuron_table()
    pd.testing.assert_frame_equal(rebuilt, committed, check_dtype=False)
