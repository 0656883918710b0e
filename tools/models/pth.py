"""Reads PyTorch's legacy (non-zip) checkpoint format without torch.

Layout: four pickles in a row (magic number, protocol version, system
info, then the object itself), a pickle listing the storage keys, then for
each storage in that order an 8-byte little-endian element count followed
by its raw data. Tensors inside the object pickle only refer to storages by
key, so they are rebuilt after the storages have been read.
"""
import collections
import pickle
import struct

import numpy as np

_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32,
           "DoubleStorage": np.float64, "HalfStorage": np.float16, "ByteStorage": np.uint8}


class _StorageType:
    def __init__(self, name):
        self.dtype = _DTYPES[name]


class _LazyTensor:
    def __init__(self, key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = key, offset, tuple(size), tuple(stride)

    def materialize(self, storages):
        flat = storages[self.key]
        if not self.size:
            return flat[self.offset].copy()
        itemsize = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride])
        return np.array(view)


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return _LazyTensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, dtypes):
        super().__init__(f)
        self.dtypes = dtypes

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        _, storage_type, key, _location, _numel = pid[:5]
        self.dtypes[key] = storage_type.dtype
        return key


def load_state_dict(path):
    """Returns an ordered dict of name -> numpy array."""
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(f)
        dtypes = {}
        obj = _Unpickler(f, dtypes).load()
        keys = pickle.load(f)
        storages = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            dtype = np.dtype(dtypes[key])
            storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    return collections.OrderedDict((k, v.materialize(storages)) for k, v in obj.items())
