import pytest

from connectome import canonical_label, parse_label


@pytest.mark.parametrize("raw,expected", [
    ("VB02", "VB2"), ("DA01", "DA1"), ("aval", "AVAL"), ("  AVAR\t", "AVAR"), ("'RIML'", "RIML"),
    ("AS11", "AS11"), ("I3", "I3"), ("M3L", "M3L"), ("CANL", "CANL"),
])
def test_canonical_label_normalizes_lab_spellings(raw, expected):
    assert canonical_label(raw) == expected


@pytest.mark.parametrize("raw", ["AVAX", "AVALL", "neuron 12", "12", "CEPshVR", "hyp7"])
def test_unknown_text_maps_to_nothing_never_a_nearest_match(raw):
    p = parse_label(raw)
    assert p.name is None and canonical_label(raw) is None
    assert p.status == "unmapped"


def test_question_mark_is_uncertain_and_lists_candidates():
    p = parse_label("SAAD?")
    assert p.name is None and p.uncertain and p.candidates == ("SAADL", "SAADR")
    assert parse_label("AVAL?").candidates == ("AVAL",) and parse_label("AVAL?").name is None


def test_side_ambiguity_is_uncertain_not_resolved():
    assert parse_label("AVA").candidates == ("AVAL", "AVAR") and parse_label("AVA").name is None
    assert parse_label("AVAL/AVAR").status == "uncertain"


def test_every_rename_is_reported():
    p = parse_label("vb02")
    assert p.name == "VB2"
    assert any("case" in r for r in p.renames) and any("zero padding" in r for r in p.renames)
    assert parse_label("AVAL").renames == ()


def test_empty_label_is_unlabelled():
    for raw in ("", "  ", None, "nan"):
        assert parse_label(raw).status == "unlabelled"
