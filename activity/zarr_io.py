"""Zarr v3 arrays read and written as files, following the Zarr v3 specification.

The activity store writer needs a few operations only: create an array, grow it, write a
block of it, read a few per-worm values back, and write the group's metadata. Doing
them with zarr-python costs milliseconds per call in event-loop round trips and metadata
handling, which made the writer, not the reading of raw files, the slowest part of an
ingest. Here each is plain file work: an array is a folder with a ``zarr.json``
(shape, data type, chunk grid, chunk key encoding, fill value, codecs, attributes,
dimension names) and one file per chunk, holding the chunk's C-order bytes passed
through the codec chain.

Codecs handled: ``bytes`` (either endianness) and ``vlen-utf8`` (object strings) for
the array, then any of ``blosc``, ``zstd`` and ``gzip``, through numcodecs (the library
zarr-python itself uses for them). That covers every store wormflow has written; an
array with anything else is refused with its name and the codec. What is written is
read back by zarr-python and xarray (``open_activity``); the tests compare the metadata
written here with what zarr-python writes for the same array.

Files are never modified in place: a chunk or a ``zarr.json`` is written under a
temporary name and renamed over the old one, because a staging store shares its files
with the live store through hard links.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
from numcodecs import GZip, Zstd
from numcodecs.blosc import Blosc
from numcodecs.vlen import VLenUTF8

from wormflow.core.errors import StoreError

_SHUFFLE = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def string_as_object(dtype) -> np.dtype:
    """numpy's string dtypes (object, fixed-width ``<U``, numpy 2's ``StringDType``) as object."""
    dtype = np.dtype(dtype)
    return np.dtype(object) if dtype.kind in "OUT" else dtype


def data_type(dtype) -> str:
    """The Zarr v3 ``data_type`` of a numpy dtype (strings are written as variable-length UTF-8)."""
    dtype = string_as_object(dtype)
    if dtype == object:
        return "string"
    if dtype.kind not in "biuf":
        raise StoreError(f"no Zarr v3 data type is written for numpy dtype {dtype}")
    return dtype.name


def _numpy_dtype(name: str) -> np.dtype:
    if name == "string":
        return np.dtype(object)
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise StoreError(f"Zarr data type {name!r} is not one the activity store reads")
    return dtype


def _json_fill(value, dtype: np.dtype):
    if dtype == object:
        return str(value)
    if dtype.kind == "f":
        v = float(value)
        return "NaN" if math.isnan(v) else ("Infinity" if v == math.inf else ("-Infinity" if v == -math.inf else v))
    return bool(value) if dtype == bool else int(value)


def _fill_from_json(value, dtype: np.dtype):
    if dtype == object:
        return str(value)
    if isinstance(value, str) and dtype.kind == "f":
        if value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        if value.startswith("0x"):                  # the raw bits, big-endian hex
            raw = bytes.fromhex(value[2:])
            return struct.unpack(">" + {2: "e", 4: "f", 8: "d"}[len(raw)], raw)[0]
    return dtype.type(value)


def default_codecs(dtype) -> list[dict]:
    """Codecs for a new array: blosc lz4 without shuffle for numbers; UTF-8 strings
    compressed with zstd, zarr-python's default for them.

    On the mirror's Flavell worms (chunks mostly NaN padding past each recording) lz4
    without shuffle compresses 1.5x faster than with byte shuffle and 3x faster than
    zstd; the chunks come out at 15-31% of the raw bytes, at most 20% larger than zstd's.
    """
    dtype = string_as_object(dtype)
    if dtype == object:
        return [{"name": "vlen-utf8", "configuration": {}},
                {"name": "zstd", "configuration": {"level": 0, "checksum": False}}]
    array_to_bytes = {"name": "bytes"} if dtype.itemsize == 1 else {"name": "bytes", "configuration": {"endian": "little"}}
    return [array_to_bytes, {"name": "blosc", "configuration": {
        "typesize": dtype.itemsize, "cname": "lz4", "clevel": 5, "shuffle": "noshuffle", "blocksize": 0}}]


def array_metadata(shape, chunks, dtype, fill_value, dims, attributes: dict, codecs: list[dict] | None = None,
                   separator: str = ".") -> dict:
    """The ``zarr.json`` of a new array, key for key as zarr-python writes it."""
    dtype = string_as_object(dtype)
    return {
        "shape": [int(n) for n in shape],
        "data_type": data_type(dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [int(n) for n in chunks]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": separator}},
        "fill_value": _json_fill(fill_value, dtype),
        "codecs": codecs if codecs is not None else default_codecs(dtype),
        "attributes": dict(attributes),
        "dimension_names": list(dims),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def _bytes_codec(spec: dict, where: str):
    config = spec.get("configuration") or {}
    name = spec.get("name")
    if name == "blosc":
        return Blosc(cname=config.get("cname", "zstd"), clevel=int(config.get("clevel", 5)),
                     shuffle=_SHUFFLE[config.get("shuffle", "noshuffle")], blocksize=int(config.get("blocksize", 0)))
    if name == "zstd":
        return Zstd(level=int(config.get("level", 0)), checksum=bool(config.get("checksum", False)))
    if name == "gzip":
        return GZip(level=int(config.get("level", 5)))
    raise StoreError(f"{where}: codec {name!r} is not one the activity store writes or reads")


def write_file(path: Path, data: bytes, shared: bool = True) -> None:
    """Write ``path``; a file that may be ``shared`` (it existed before, possibly hard-linked
    into another store) is replaced by a new one, never written into."""
    if not shared:
        with open(path, "wb") as fh:
            fh.write(data)
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class Array:
    """One Zarr v3 array on disk: its metadata, and chunk-wise reads and writes.

    The array keeps the names of its chunk files (listed once when opened): a chunk never
    written reads as the fill value without a file lookup, and a chunk first written in
    this session is written in place, as only files that were already there can be shared.
    """

    def __init__(self, path: str | Path, meta: dict, chunk_files: set[str] | None = None):
        self.path = Path(path)
        self.meta = meta
        self._old = set(chunk_files or ())        # chunk files that were there when the array was opened
        self._new: set[str] = set()               # chunk files written since
        where = str(self.path)
        try:
            self.dtype = _numpy_dtype(meta["data_type"])
            self.chunks = tuple(int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"])
            key = meta.get("chunk_key_encoding", {"name": "default"})
            codecs = list(meta["codecs"])
        except (KeyError, TypeError) as exc:
            raise StoreError(f"{where}/zarr.json: not Zarr v3 array metadata ({exc})") from exc
        if meta.get("chunk_grid", {}).get("name") != "regular" or key.get("name") != "default":
            raise StoreError(f"{where}: only regular chunk grids with default chunk keys are read")
        self._separator = (key.get("configuration") or {}).get("separator", "/")
        self.fill = _fill_from_json(meta.get("fill_value"), self.dtype)
        first = codecs[0].get("name") if codecs else None
        if first == "vlen-utf8":
            self._endian = None
        elif first == "bytes":
            endian = (codecs[0].get("configuration") or {}).get("endian", "little")
            self._endian = "<" if endian == "little" else ">"
        else:
            raise StoreError(f"{where}: codec {first!r} is not one the activity store writes or reads")
        self._compressors = [_bytes_codec(c, where) for c in codecs[1:]]
        self._vlen = VLenUTF8() if self._endian is None else None

    # -- metadata
    @classmethod
    def create(cls, path: str | Path, meta: dict) -> "Array":
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arr = cls(path, meta)
        arr.save_metadata()
        return arr

    @classmethod
    def open(cls, path: str | Path) -> "Array":
        path = Path(path)
        try:
            meta = json.loads((path / "zarr.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}/zarr.json: cannot read the array metadata: {exc}") from exc
        return cls(path, meta, _chunk_files(path))

    def save_metadata(self) -> None:
        write_file(self.path / "zarr.json", json.dumps(self.meta, indent=2).encode())

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.meta["shape"])

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.meta.get("dimension_names") or ())

    @property
    def attrs(self) -> dict:
        return self.meta.get("attributes", {})

    def resize(self, shape) -> None:
        """Grow the array (the chunk grid is unchanged, so no chunk is rewritten)."""
        if any(n < o for n, o in zip(shape, self.shape)) or len(shape) != len(self.shape):
            raise StoreError(f"{self.path}: cannot shrink or reshape {self.shape} to {tuple(shape)}")
        self.meta["shape"] = [int(n) for n in shape]
        self.save_metadata()

    # -- chunks
    def _key(self, index: tuple[int, ...]) -> Path:
        if not index:
            return self.path / "c"
        if self._separator == ".":
            return self.path / ("c." + ".".join(map(str, index)))
        return self.path.joinpath("c", *map(str, index))

    def encode(self, chunk: np.ndarray) -> bytes:
        if self._vlen is not None:
            data = self._vlen.encode(np.ascontiguousarray(chunk, dtype=object).reshape(-1))
        else:
            data = np.ascontiguousarray(chunk, dtype=self.dtype.newbyteorder(self._endian))
        for codec in self._compressors:
            data = codec.encode(data)
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        for codec in reversed(self._compressors):
            data = codec.decode(data)
        if self._vlen is not None:
            return self._vlen.decode(data).reshape(self.chunks)
        values = np.frombuffer(data, dtype=self.dtype.newbyteorder(self._endian)).reshape(self.chunks)
        return values.astype(self.dtype)              # native byte order, and writable

    def read_chunk(self, index: tuple[int, ...]) -> np.ndarray:
        path = self._key(index)
        key = path.relative_to(self.path).as_posix()
        if key not in self._old and key not in self._new:
            return np.full(self.chunks, self.fill, dtype=self.dtype)
        try:
            return self.decode(path.read_bytes())
        except (OSError, ValueError, RuntimeError) as exc:
            raise StoreError(f"{path}: damaged chunk: {exc}") from exc

    def _write_chunk(self, index: tuple[int, ...], chunk: np.ndarray) -> None:
        path = self._key(index)
        key = path.relative_to(self.path).as_posix()
        if self._separator != ".":
            path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, self.encode(chunk), shared=key in self._old)
        self._new.add(key)

    def _regions(self, start: tuple[int, ...], shape: tuple[int, ...]):
        """(chunk index, slices into the region's values, slices into that chunk) for every chunk the region touches."""
        stop = [s + n for s, n in zip(start, shape)]
        spans = [range(s // c, -(-e // c)) for s, e, c in zip(start, stop, self.chunks)]
        for index in itertools.product(*spans):
            lo = [i * c for i, c in zip(index, self.chunks)]
            a = [max(s, o) for s, o in zip(start, lo)]
            b = [min(e, o + c) for e, o, c in zip(stop, lo, self.chunks)]
            yield (index, tuple(slice(x - s, y - s) for x, y, s in zip(a, b, start)),
                   tuple(slice(x - o, y - o) for x, y, o in zip(a, b, lo)))

    def write(self, start: tuple[int, ...], values: np.ndarray) -> None:
        """Write ``values`` with its first element at ``start`` (missing trailing starts are 0);
        a chunk the values cover only in part keeps the rest of its content."""
        values = np.asarray(values)
        start = tuple(start) + (0,) * (values.ndim - len(start))
        if values.ndim != len(self.shape) or any(s + n > m for s, n, m in zip(start, values.shape, self.shape)):
            raise StoreError(f"{self.path}: a block of shape {values.shape} at {start} does not fit "
                             f"the array's shape {self.shape}")
        for index, src, dst in self._regions(start, values.shape):
            part = values[src]
            if part.shape == self.chunks:
                self._write_chunk(index, part)
            else:
                chunk = self.read_chunk(index)
                chunk[dst] = part
                self._write_chunk(index, chunk)

    def read(self, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
        out = np.empty(shape, dtype=self.dtype)
        for index, src, dst in self._regions(tuple(start), tuple(shape)):
            out[src] = self.read_chunk(index)[dst]
        return out


def _chunk_files(path: Path) -> set[str]:
    """The chunk files of an array folder, relative to it (``c.0.1`` or ``c/0/1``)."""
    out = set()
    for root, _dirs, files in os.walk(path):
        rel = Path(root).relative_to(path)
        out.update((rel / f).as_posix() for f in files if f != "zarr.json" and not f.startswith("."))
    return out


def open_arrays(group: str | Path) -> dict[str, Array]:
    """Every array directly under a group folder, by name."""
    out = {}
    for entry in sorted(os.scandir(group), key=lambda e: e.name):
        meta = Path(entry.path) / "zarr.json"
        if entry.is_dir() and meta.is_file():
            arr = Array.open(entry.path)
            if arr.meta.get("node_type") == "array":
                out[entry.name] = arr
    return out


def write_group(group: str | Path, attributes: dict, arrays: dict[str, Array]) -> None:
    """The group's ``zarr.json`` with its attributes and the arrays' metadata consolidated
    inline, as ``zarr.consolidate_metadata`` writes it (xarray opens the store from it)."""
    meta = {"attributes": attributes, "zarr_format": 3,
            "consolidated_metadata": {"kind": "inline", "must_understand": False,
                                      "metadata": {name: arrays[name].meta for name in sorted(arrays)}},
            "node_type": "group"}
    write_file(Path(group) / "zarr.json", json.dumps(meta, indent=2).encode())
