"""Decode the plain-data parts of a Julia JLD2 file by reading its HDF5 structures directly.

JLD2 files are HDF5 files written with a small, fixed subset of HDF5: version-2 object
headers, compact or contiguous layouts, committed datatypes, object references. A Julia
``Dict`` is a vector of references to ``Pair`` records (compound ``first``/``second``)
whose fields are references to the key and the value; a tuple is a compound with fields
``1``, ``2``...; strings are fixed-length byte strings; an empty value is an opaque type.

A labels file holds thousands of tiny objects. Going through h5py costs ~0.3 ms per
object (open, type conversion, read); parsing the bytes of a file read once into memory
costs a few microseconds, which turns a 0.45 s decode per worm into ~10 ms. Anything
outside the subset raises :class:`JLD2Error` naming the structure; nothing is executed and
no Julia type is instantiated.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

_MAX_DEPTH = 64
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_UNDEFINED = 0xFFFFFFFFFFFFFFFF


class JLD2Error(ValueError):
    """The file is not a JLD2 file this decoder reads."""


class Ref(NamedTuple):
    """An HDF5 object reference: the address of the object's header."""
    addr: int


@dataclass(frozen=True)
class _Type:
    cls: int                       # HDF5 datatype class
    size: int
    numpy: str | None = None       # numpy dtype string for numbers
    members: tuple = ()            # compound: (name, offset, _Type)
    names: tuple = ()              # compound: the member names

    @property
    def scalar(self) -> struct.Struct | None:
        """How one number of this type is unpacked (faster than numpy for a single value)."""
        return _SCALARS.get(self.numpy) if self.numpy else None


_SCALARS = {f"<{k}{n}": struct.Struct("<" + c) for k, n, c in (
    ("f", 2, "e"), ("f", 4, "f"), ("f", 8, "d"), ("i", 1, "b"), ("i", 2, "h"), ("i", 4, "i"), ("i", 8, "q"),
    ("u", 1, "B"), ("u", 2, "H"), ("u", 4, "I"), ("u", 8, "Q"))}
_MESSAGE_HEAD = struct.Struct("<BHB")


def _offset_width(size: int) -> int:
    """Bytes of a version-3 compound member offset: the fewest that can hold ``size``."""
    return next(w for w, lim in ((1, 1 << 8), (2, 1 << 16), (3, 1 << 24), (4, 1 << 32)) if size < lim)


class _Pair(tuple):
    def __new__(cls, key, value):
        return super().__new__(cls, (key, value))


class JLD2File:
    """A JLD2 file read into memory; ``root(name)`` gives a top-level variable undecoded."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.buf = self.path.read_bytes()
        self._types: dict[int, _Type] = {}
        self._objects: dict[int, object] = {}
        self.base = self._find_superblock()
        self.links = self._root_links()

    # -- HDF5 structures ---------------------------------------------------------------
    def _find_superblock(self) -> int:
        for at in (0, 512, 1024, 2048, 4096):
            if self.buf[at:at + 8] == _HDF5_SIGNATURE:
                version, offsets, lengths = self.buf[at + 8], self.buf[at + 9], self.buf[at + 10]
                if version not in (2, 3):
                    raise JLD2Error(f"HDF5 superblock version {version} (JLD2 writes 2 or 3)")
                if offsets != 8 or lengths != 8:
                    raise JLD2Error("HDF5 offsets/lengths that are not 8 bytes")
                base, _ext, _eof, root = struct.unpack_from("<4Q", self.buf, at + 12)
                self._root = root
                return base
        raise JLD2Error("no HDF5 superblock at the start of the file")

    def _messages(self, addr: int) -> list[tuple[int, int, int, int]]:
        """(type, flags, payload offset, size) of every message in an object header."""
        b = self.buf
        at = self.base + addr
        if not b.startswith(b"OHDR", at) or b[at + 4] != 2:
            raise JLD2Error(f"object at {addr} is not a version-2 object header")
        flags = b[at + 5]
        at += 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        size = int.from_bytes(b[at:at + width], "little")
        blocks = [(at + width, at + width + size)]
        head = 4 + (2 if flags & 0x04 else 0)
        out = []
        unpack = _MESSAGE_HEAD.unpack_from
        seen = set()                       # continuation blocks already read: a loop ends here
        while blocks:
            pos, end = blocks.pop(0)
            while pos + head <= end:
                mtype, msize, mflags = unpack(b, pos)
                pos += head
                if mtype == 0x10:                                   # continuation block
                    caddr, clen = struct.unpack_from("<2Q", b, pos)
                    cat = self.base + caddr
                    if not b.startswith(b"OCHK", cat):
                        raise JLD2Error(f"object at {addr}: bad continuation block")
                    if cat in seen:
                        raise JLD2Error(f"object at {addr}: its header continues into block {caddr} twice "
                                        "(a continuation loop)")
                    if clen < 8 or cat + clen > len(b):
                        raise JLD2Error(f"object at {addr}: continuation block {caddr} of {clen} bytes runs "
                                        "past the end of the file")
                    seen.add(cat)
                    blocks.append((cat + 4, cat + clen - 4))
                else:
                    out.append((mtype, mflags, pos, msize))
                pos += msize
        return out

    def _root_links(self) -> dict[str, int]:
        links = {}
        for mtype, _f, pos, _s in self._messages(self._root):
            if mtype == 0x06:
                flags = self.buf[pos + 1]
                p = pos + 2
                if flags & 0x08:
                    if self.buf[p] != 0:
                        raise JLD2Error("a soft or external link in the root group")
                    p += 1
                p += (8 if flags & 0x04 else 0) + (1 if flags & 0x10 else 0)
                width = 1 << (flags & 3)
                n = int.from_bytes(self.buf[p:p + width], "little")
                p += width
                name = self.buf[p:p + n].decode("utf-8")
                links[name] = struct.unpack_from("<Q", self.buf, p + n)[0]
            elif mtype == 0x02:
                (heap,) = struct.unpack_from("<Q", self.buf, pos + 2 + (8 if self.buf[pos + 1] & 1 else 0))
                if heap != _UNDEFINED:
                    raise JLD2Error("the root group stores its links in a fractal heap")
        return links

    def _datatype(self, pos: int) -> _Type:
        b = self.buf
        cls, version = b[pos] & 0x0F, b[pos] >> 4
        bits = int.from_bytes(b[pos + 1:pos + 4], "little")
        (size,) = struct.unpack_from("<I", b, pos + 4)
        p = pos + 8
        if cls in (0, 1):
            if bits & 1:
                raise JLD2Error("big-endian numbers")
            kind = "f" if cls == 1 else ("i" if bits & 0x08 else "u")
            return _Type(cls, size, f"<{kind}{size}")
        if cls in (3, 5):
            return _Type(cls, size)
        if cls == 7:
            if version >= 4 or (bits & 0x0F) != 0:
                raise JLD2Error("a reference that is not a plain object reference")
            return _Type(cls, size)
        if cls == 6:
            members = []
            width = _offset_width(size)
            for _ in range(bits & 0xFFFF):
                end = b.index(b"\x00", p)
                name = b[p:end].decode("utf-8")
                if version == 3:
                    p = end + 1
                    offset = int.from_bytes(b[p:p + width], "little")
                    p += width
                else:
                    p += (end - p) // 8 * 8 + 8
                    (offset,) = struct.unpack_from("<I", b, p)
                    p += 4 + (28 if version == 1 else 0)
                member = self._datatype(p)
                members.append((name, offset, member))
                p += self._datatype_length(p)
            return _Type(cls, size, members=tuple(members), names=tuple(m[0] for m in members))
        if cls == 9:                                   # variable length: bits 0-3 say string or sequence
            return _Type(cls, size, members=(("string" if bits & 0x0F == 1 else "sequence", 0, self._datatype(p)),))
        raise JLD2Error(f"HDF5 datatype class {cls}")

    def _datatype_length(self, pos: int) -> int:
        """Bytes taken by the datatype description at ``pos`` (to step over compound members)."""
        b = self.buf
        cls, version = b[pos] & 0x0F, b[pos] >> 4
        bits = int.from_bytes(b[pos + 1:pos + 4], "little")
        n = 8
        if cls == 0:
            return n + 4
        if cls == 1:
            return n + 12
        if cls == 5:
            return n + (bits & 0xFF)
        if cls == 6:
            p = pos + 8
            size = struct.unpack_from("<I", b, pos + 4)[0]
            width = _offset_width(size)
            for _ in range(bits & 0xFFFF):
                end = b.index(b"\x00", p)
                if version == 3:
                    p = end + 1 + width
                else:
                    p += (end - p) // 8 * 8 + 8 + 4 + (28 if version == 1 else 0)
                p += self._datatype_length(p)
            return p - pos
        if cls == 9:
            return n + self._datatype_length(pos + 8)
        return n

    def _shared_type(self, pos: int) -> _Type:
        version, kind = self.buf[pos], self.buf[pos + 1]
        if kind != 2 and version != 1:
            raise JLD2Error("a datatype shared through the shared-message heap")
        (addr,) = struct.unpack_from("<Q", self.buf, pos + (8 if version == 1 else 2))
        if addr not in self._types:
            for mtype, _f, p, _s in self._messages(addr):
                if mtype == 0x03:
                    self._types[addr] = self._datatype(p)
                    break
            else:
                raise JLD2Error(f"committed datatype at {addr} has no datatype message")
        return self._types[addr]

    def load(self, addr: int):
        """The value stored in the dataset whose object header is at ``addr``, undecoded."""
        if addr in self._objects:
            return self._objects[addr]
        dtype = shape = data = None
        for mtype, mflags, pos, _size in self._messages(addr):
            if mtype == 0x01:
                shape = self._dataspace(pos)
            elif mtype == 0x03:
                dtype = self._shared_type(pos) if mflags & 0x02 else self._datatype(pos)
            elif mtype == 0x08:
                data = self._layout(pos)
        if dtype is None or data is None:
            raise JLD2Error(f"object at {addr} is not a dataset")
        if shape is None:                                        # null dataspace: an empty value
            value = None
        elif shape == ():
            value = self._value(dtype, data, 0)
        else:
            count = math.prod(shape)
            if count * max(dtype.size, 1) > len(data):
                raise JLD2Error(f"object at {addr} declares {count} elements of {dtype.size} bytes "
                                f"but holds {len(data)} bytes")
            if dtype.numpy is not None:
                value = np.frombuffer(data, dtype.numpy, count).reshape(shape).tolist()
            else:
                value = [self._value(dtype, data, i * dtype.size) for i in range(count)]
        self._objects[addr] = value
        return value

    def _dataspace(self, pos: int):
        b = self.buf
        version, rank = b[pos], b[pos + 1]
        if version == 2:
            if b[pos + 3] == 2:
                return None
            p = pos + 4
        else:
            p = pos + 8
        return tuple(struct.unpack_from(f"<{rank}Q", b, p))

    def _layout(self, pos: int) -> bytes:
        b = self.buf
        if b[pos] not in (3, 4):
            raise JLD2Error(f"data layout message version {b[pos]}")
        kind = b[pos + 1]
        if kind == 0:
            n = int.from_bytes(b[pos + 2:pos + 4], "little")
            return b[pos + 4:pos + 4 + n]
        if kind == 1:
            addr, n = struct.unpack_from("<2Q", b, pos + 2)
            return b"" if addr == _UNDEFINED else b[self.base + addr:self.base + addr + n]
        raise JLD2Error("a chunked or virtual dataset")

    def _value(self, t: _Type, data: bytes, at: int):
        if t.numpy is not None:
            scalar = t.scalar
            return scalar.unpack_from(data, at)[0] if scalar else np.frombuffer(data, t.numpy, 1, at)[0].item()
        if t.cls == 3:
            return data[at:at + t.size].rstrip(b"\x00").decode("utf-8", "replace")
        if t.cls == 5:
            return None
        if t.cls == 7:
            (addr,) = struct.unpack_from("<Q", data, at)
            return Ref(addr) if addr else None
        if t.cls == 9:
            return self._vlen(t, data, at)
        fields = [self._value(mt, data, at + off) for _n, off, mt in t.members]
        if t.names == ("first", "second"):
            return _Pair(*fields)
        return _Record(t.names, tuple(fields))

    def _vlen(self, t: _Type, data: bytes, at: int):
        count, addr, index = struct.unpack_from("<IQI", data, at)
        kind, _o, base = t.members[0]
        if count == 0 or addr == 0:
            return "" if kind == "string" else []
        offset, size = self._heap_object(addr, index)
        raw = self.buf[offset:offset + size]
        if kind == "string":
            return raw.rstrip(b"\x00").decode("utf-8", "replace")
        return [self._value(base, raw, i * base.size) for i in range(count)]

    def _heap_object(self, addr: int, index: int) -> tuple[int, int]:
        """(absolute offset, size) of object ``index`` in the global heap collection at ``addr``."""
        key = ("heap", addr)
        if key not in self._objects:
            at = self.base + addr
            if self.buf[at:at + 4] != b"GCOL":
                raise JLD2Error(f"no global heap collection at {addr}")
            (total,) = struct.unpack_from("<Q", self.buf, at + 8)
            objects, p, end = {}, at + 16, at + total
            while p + 16 <= end:
                idx, _refs, _r, size = struct.unpack_from("<HHIQ", self.buf, p)
                if idx == 0:
                    break
                objects[idx] = (p + 16, size)
                p += 16 + (size + 7) // 8 * 8
            self._objects[key] = objects
        try:
            return self._objects[key][index]
        except KeyError:
            raise JLD2Error(f"global heap collection at {addr} has no object {index}") from None

    def root(self, name: str):
        if name not in self.links:
            raise KeyError(name)
        return self.load(self.links[name])


class _Record(tuple):
    """A compound value (a Julia struct or tuple): field values in order, with their names."""

    def __new__(cls, names, values):
        obj = super().__new__(cls, values)
        obj.names = names
        return obj


def _deref(f: JLD2File, x):
    for _ in range(_MAX_DEPTH):
        if isinstance(x, Ref):
            x = f.load(x.addr)
        else:
            return x
    raise JLD2Error("reference chain deeper than 64 levels")


def dict_entries(f: JLD2File, x) -> dict:
    """A Julia Dict as {decoded key: undecoded value}, so callers decode only what they need."""
    items = _deref(f, x)
    if not isinstance(items, list):
        raise JLD2Error("not a JLD2 Dict (expected a vector of Pair references)")
    out = {}
    for ref in items:
        pair = _deref(f, ref)
        if not isinstance(pair, _Pair):
            raise JLD2Error("not a JLD2 Dict (an element is not a Pair)")
        out[decode(f, pair[0])] = pair[1]
    return out


def dict_fields(f: JLD2File, x, keys: tuple, hint: dict | None = None) -> tuple[dict, dict]:
    """Only the entries of ``keys`` of a Julia Dict, undecoded, and where each was found.

    Dicts of one struct type list their pairs in the same order, so ``hint`` (the
    positions found in a previous such Dict) is tried first and each hit is checked
    by its key: a record costs a few object reads instead of one per field. Keys the
    hint misses are searched for in the whole Dict.
    """
    items = _deref(f, x)
    if not isinstance(items, list):
        raise JLD2Error("not a JLD2 Dict (expected a vector of Pair references)")
    out: dict = {}
    where: dict = {}

    def pair_at(i):
        pair = _deref(f, items[i])
        if not isinstance(pair, _Pair):
            raise JLD2Error("not a JLD2 Dict (an element is not a Pair)")
        return pair

    for key, i in (hint or {}).items():
        if key in keys and i < len(items):
            pair = pair_at(i)
            if decode(f, pair[0]) == key:
                out[key], where[key] = pair[1], i
    if len(out) < len(keys):
        for i in range(len(items)):
            pair = pair_at(i)
            key = decode(f, pair[0])
            if key in keys and key not in out:
                out[key], where[key] = pair[1], i
    return out, where


def tuple_field_raw(f: JLD2File, x, index: int):
    """One field of a Julia Tuple (fields ``1``, ``2``...), undecoded."""
    rec = _deref(f, x)
    if not (isinstance(rec, _Record) and str(index + 1) in rec.names):
        raise JLD2Error(f"not a Julia tuple with a field {index + 1}")
    return rec[rec.names.index(str(index + 1))]


def decode(f: JLD2File, x, depth: int = 0):
    """Fully decode a value: references followed, Dicts as dicts, tuples as tuples."""
    if depth > _MAX_DEPTH:
        raise JLD2Error("nesting deeper than 64 levels")
    x = _deref(f, x)
    if isinstance(x, _Pair):
        return _Pair(decode(f, x[0], depth + 1), decode(f, x[1], depth + 1))
    if isinstance(x, _Record):
        return tuple(decode(f, v, depth + 1) for v in x)
    if isinstance(x, list):
        items = [decode(f, v, depth + 1) for v in x]
        return {k: v for k, v in items} if items and all(isinstance(i, _Pair) for i in items) else items
    return x
