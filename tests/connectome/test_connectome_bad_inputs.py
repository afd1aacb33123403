"""Malformed connectome files get one error naming the file, sheet and cell (fixtures written here)."""

from __future__ import annotations

import openpyxl
import pytest

from wormflow.core.errors import FormatError, UnknownFormatError
from connectome.readers import read_connectome
from pipeline.connectome_ingest import ingest_connectomes


def _xlsx(path, sheets: dict[str, list[list]]):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def test_fixture_varshney_with_a_non_numeric_count_names_the_cell(tmp_path):
    f = _xlsx(tmp_path / "NeuronConnect.xlsx", {"Sheet1": [["Neuron 1", "Neuron 2", "Type", "Nbr"],
                                                           ["ADAL", "ADAR", "EJ", 1], ["ADAL", "AIBL", "S", "two"]]})
    with pytest.raises(FormatError, match=r"NeuronConnect\.xlsx, sheet 'Sheet1', cell D3: 'two' is not a number"):
        read_connectome(f, format="varshney_xls")


def test_fixture_varshney_with_an_undocumented_type_is_refused(tmp_path):
    f = _xlsx(tmp_path / "nc.xlsx", {"Sheet1": [["Neuron 1", "Neuron 2", "Type", "Nbr"], ["ADAL", "ADAR", "Q", 1]]})
    with pytest.raises(FormatError, match=r"unknown synapse types \['Q'\]"):
        read_connectome(f, format="varshney_xls")


def test_fixture_edge_table_with_a_missing_column_names_it(tmp_path):
    f = _xlsx(tmp_path / "w.xlsx", {"w L1": [["pre", "post", "kind", "synapses"], ["ADAL", "ADAR", "chemical", 1]]})
    with pytest.raises(FormatError, match=r"w\.xlsx, sheet 'w L1': no column 'type' in the header row"):
        read_connectome(f, format="prepost_table")


def test_fixture_openworm_without_its_connectome_sheet_names_the_sheet(tmp_path):
    f = _xlsx(tmp_path / "tables.xlsx", {"Sensory": [["Neuron"], ["ADEL"]]})
    with pytest.raises(FormatError, match=r"tables\.xlsx: no sheet 'Connectome' \(sheets: Sensory\)"):
        read_connectome(f, format="openworm_xls")


def _cook_sheet(rows_names, col_names, values):
    rows = [[None, None, None, "PHARYNX"], [], [None, None, None] + col_names]
    for name, vals in zip(rows_names, values):
        rows.append([None, None, name] + vals)
    return rows


def test_fixture_cook_symmetric_matrix_whose_row_and_column_names_disagree(tmp_path):
    f = _xlsx(tmp_path / "SI 5.xlsx", {
        "hermaphrodite chemical": _cook_sheet(["ADAL", "ADAR"], ["ADAL", "ADAR"], [[None, 1], [2, None]]),
        "herm gap jn symmetric": _cook_sheet(["ADAL", "ADAR"], ["ADAL", "AIBL"], [[None, 1], [1, None]]),
    })
    with pytest.raises(FormatError, match=r"sheet 'herm gap jn symmetric': row and column names of the symmetric "
                                          r"matrix disagree \(rows only: \['ADAR'\], columns only: \['AIBL'\]\)"):
        read_connectome(f)


def test_fixture_cook_matrix_with_text_in_a_cell_names_the_cell(tmp_path):
    f = _xlsx(tmp_path / "SI 5.xlsx", {
        "hermaphrodite chemical": _cook_sheet(["ADAL", "ADAR"], ["ADAL", "ADAR"], [[None, "x"], [2, None]]),
        "herm gap jn symmetric": _cook_sheet(["ADAL", "ADAR"], ["ADAL", "ADAR"], [[None, 1], [1, None]]),
    })
    with pytest.raises(FormatError, match=r"sheet 'hermaphrodite chemical', cell E4: 'x' is not a number"):
        read_connectome(f)


def test_fixture_corrected_cook_release_sheet_names_are_found_by_their_words(tmp_path):
    f = _xlsx(tmp_path / "SI 5 corrected.xlsx", {
        "herm chem corrected 2020": _cook_sheet(["ADAL", "ADAR"], ["ADAL", "ADAR"], [[None, 4], [2, None]]),
        "herm gap jn symmetric corr": _cook_sheet(["ADAL", "ADAR"], ["ADAL", "ADAR"], [[None, 1], [1, None]]),
    })
    (raw,) = read_connectome(f)
    assert raw.source == "cook_2019_herm/si5"
    assert raw.matrices[0].values.tolist() == [[0, 4], [2, 0]]


def test_an_unrecognised_file_lists_the_known_formats(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    with pytest.raises(UnknownFormatError, match="known formats: prepost_table"):
        read_connectome(f)


def test_a_bad_file_fails_alone_and_the_store_keeps_the_good_ones(tmp_path, mirror):
    bad = _xlsx(tmp_path / "nc.xlsx", {"Sheet1": [["Neuron 1", "Neuron 2", "Type", "Nbr"], ["ADAL", "ADAR", "EJ", "?"]]})
    good = mirror / "connectome/White1986/aconnectome_white_1986_whole.csv"
    report = ingest_connectomes([bad, good], tmp_path / "c.zarr")
    assert [p for p, _ in report.failed] == [str(bad)] and "cell D2" in report.failed[0][1]
    assert report.sources == ["white_1986_whole/tsv"]
