"""activity.zarr_io writes the Zarr v3 files itself: zarr-python must read them as its own,
and what zarr-python wrote must be read and extended correctly."""

import json
import os

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from activity import zarr_io
from wormflow.core.errors import StoreError

CASES = [
    ("float32", (5, 70, 9), (1, 32, 9), np.nan),
    ("float64", (64,), (64,), np.nan),
    ("int64", (64,), (64,), 0),
    ("bool", (8, 40), (8, 40), False),
    ("string", (8, 3), (4, 3), ""),
]


def _zarr_python(path, dtype, shape, chunks, fill, dims, attrs, default_codecs=False, separator="."):
    numeric = dtype != "string"
    options = {} if default_codecs or not numeric else {
        "compressors": (BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),)}
    return zarr.create_array(path, shape=shape, chunks=chunks, dtype=str if not numeric else dtype,
                             fill_value=fill, dimension_names=dims, attributes=attrs, zarr_format=3,
                             chunk_key_encoding={"name": "default", "separator": separator}, **options)


@pytest.mark.parametrize("dtype, shape, chunks, fill", CASES)
def test_metadata_is_what_zarr_python_writes_for_the_same_array(tmp_path, dtype, shape, chunks, fill):
    dims = [f"d{i}" for i in range(len(shape))]
    attrs = {"coordinates": "a b", "units": "s"}
    _zarr_python(tmp_path / "ref", dtype, shape, chunks, fill, dims, attrs)
    ref = json.loads((tmp_path / "ref" / "zarr.json").read_text())
    ours = zarr_io.array_metadata(shape, chunks, object if dtype == "string" else dtype, fill, dims, attrs)
    assert ours == ref


@pytest.mark.parametrize("dtype, shape, chunks, fill", CASES)
def test_blocks_written_here_read_back_through_zarr_python(tmp_path, dtype, shape, chunks, fill):
    rng = np.random.default_rng(1)
    np_dtype = object if dtype == "string" else np.dtype(dtype)
    meta = zarr_io.array_metadata(shape, chunks, np_dtype, fill, [f"d{i}" for i in range(len(shape))], {})
    arr = zarr_io.Array.create(tmp_path / "a", meta)
    expected = np.full(shape, fill, dtype=np_dtype)
    # two blocks that each cover chunks only in part, the second overlapping the first's chunks
    for start in [(0,) * len(shape), tuple(s // 2 for s in shape)]:
        block_shape = tuple(max(1, (s - b) // 2 + 1) for s, b in zip(shape, start))
        if dtype == "string":
            values = np.array([f"é{v}" for v in rng.integers(0, 99, size=int(np.prod(block_shape)))],
                              dtype=object).reshape(block_shape)
        else:
            values = (rng.normal(size=block_shape) * 10).astype(np_dtype)
        arr.write(start, values)
        expected[tuple(slice(b, b + n) for b, n in zip(start, block_shape))] = values
    got = zarr.open_array(tmp_path / "a", mode="r")[...]
    again = zarr_io.Array.open(tmp_path / "a").read((0,) * len(shape), shape)
    for values in (got, again):
        if dtype == "string":
            assert values.tolist() == expected.tolist()
        else:
            np.testing.assert_array_equal(values, expected)


def test_arrays_zarr_python_wrote_with_its_defaults_are_read_and_extended(tmp_path):
    # stores from earlier wormflow versions: zstd, nested chunk folders, one chunk per worm
    ref = _zarr_python(tmp_path / "old", "float32", (2, 6), (1, 4), np.nan, ["worm", "time"], {},
                       default_codecs=True, separator="/")
    ref[0, :5] = np.arange(5)
    arr = zarr_io.Array.open(tmp_path / "old")
    np.testing.assert_array_equal(arr.read((0, 0), (1, 6)), [[0, 1, 2, 3, 4, np.nan]])
    arr.resize((3, 6))
    arr.write((2, 1), np.ones((1, 5), dtype=np.float32))
    arr.write((0, 5), np.full((1, 1), 7, dtype=np.float32))
    got = zarr.open_array(tmp_path / "old", mode="r")[...]
    np.testing.assert_array_equal(got, [[0, 1, 2, 3, 4, 7], [np.nan] * 6, [np.nan, 1, 1, 1, 1, 1]])


def test_a_chunk_that_was_there_is_replaced_not_written_into(tmp_path):
    # the staging store shares its files with the live store through hard links
    arr = zarr_io.Array.create(tmp_path / "a", zarr_io.array_metadata((4,), (4,), "int64", 0, ["worm"], {}))
    arr.write((0,), np.arange(4))
    chunk = tmp_path / "a" / "c.0"
    os.link(chunk, tmp_path / "live_copy")
    reopened = zarr_io.Array.open(tmp_path / "a")
    reopened.write((1,), np.array([9]))
    assert reopened.read((0,), (4,)).tolist() == [0, 9, 2, 3]
    assert zarr_io.Array(tmp_path / "a", reopened.meta).decode((tmp_path / "live_copy").read_bytes()).tolist() == [0, 1, 2, 3]


def test_unknown_codecs_and_blocks_that_do_not_fit_are_refused(tmp_path):
    meta = zarr_io.array_metadata((4,), (4,), "float64", np.nan, ["worm"], {})
    meta["codecs"] = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]
    with pytest.raises(StoreError, match="codec 'crc32c'"):
        zarr_io.Array(tmp_path / "x", meta)
    arr = zarr_io.Array.create(tmp_path / "y", zarr_io.array_metadata((4,), (4,), "float64", np.nan, ["worm"], {}))
    with pytest.raises(StoreError, match="does not fit"):
        arr.write((3,), np.ones(2))
