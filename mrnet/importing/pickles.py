"""Loading a pickled numpy array without running code: KneeMRI's .pck volumes.

A pickle is a program: loading one with pickle.load can call any function it names (a
file shipped with a dataset could delete files or open a shell). The unpickler here
admits only the few names numpy itself uses to rebuild an array, so a file that names
anything else stops before any call is made, and what comes out must be a numeric array.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

# (module, name) pairs an ndarray's pickle uses: numpy < 2 writes numpy.core, numpy >= 2 numpy._core;
# _frombuffer is what protocol 5 writes for an array; _codecs.encode turns text back into the array's bytes in a
# protocol 0-2 pickle written by Python 3 (a pure conversion; Python 2's pickles, as KneeMRI's, do without it).
ALLOWED = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class UnsafePickle(Exception):
    """A pickle that names something other than a numpy array's parts, or holds no numeric array."""


class ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise UnsafePickle(f"it names {module}.{name}, which a numpy array does not need; nothing was run")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickle("it refers to outside objects (persistent ids); nothing was run")


def load_array(path: Path) -> np.ndarray:
    """A .pck file's numpy array (Python 2 pickles included); UnsafePickle for anything else."""
    data = Path(path).read_bytes()
    try:
        value = ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickle:
        raise
    except Exception as err:  # a truncated or corrupt pickle raises many types
        raise UnsafePickle(f"not a readable pickle ({type(err).__name__}: {err})") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "uifb":
        raise UnsafePickle(f"holds {type(value).__name__}, not a numeric numpy array")
    return value
