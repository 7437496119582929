"""Import MXNet 1.9.1 on a current NumPy, in the book's NumPy interface, with
sane threading. Every module of this backend imports MXNet from here.

MXNet 1.9.1 (the last release; Apache MXNet is retired) still refers to the
NumPy aliases removed in NumPy 1.24 (`np.bool`, `np.int`, ...). They are
restored here, once, before `import mxnet`.

The book's MXNet code runs in MXNet's NumPy interface: `from mxnet import np,
npx; npx.set_np()`, so arrays are `mxnet.np.ndarray`s with NumPy's semantics.
So does this backend; `np` below is mxnet.np, as in the book.

MXNet's OpenMP pool, left to itself, oversubscribes small machines (measured on
2 cores: 62 examples/s by default, 117-137 with OMP_NUM_THREADS=2), so the pool
is sized to the CPUs this process may use unless the user already chose.

One private switch, for `common.bench` only: DCGAN_MX_THREADS=default leaves
OMP_NUM_THREADS alone, so that the benchmark's worker for the book's own code
(`dcgan_mx/book.py`, which imports MXNet through here) runs with MXNet's default
threading, as the book does. The bench sets it in that worker's environment
and nowhere else; users and the project's own runs never need it.
"""

import os

import numpy as _numpy

for _alias, _type in (("bool", bool), ("int", int), ("float", float),
                      ("complex", complex), ("object", object), ("str", str)):
    if _alias not in _numpy.__dict__:
        setattr(_numpy, _alias, _type)

if os.environ.get("DCGAN_MX_THREADS") != "default":  # common.bench's book worker (see above)
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))
                                                 if hasattr(os, "sched_getaffinity")
                                                 else os.cpu_count() or 1))

import mxnet as mx  # noqa: E402  (must follow the aliases above)
from mxnet import autograd, gluon, init, np, npx  # noqa: E402

npx.set_np()

__all__ = ["mx", "autograd", "gluon", "init", "np", "npx"]
