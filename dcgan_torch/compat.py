"""Import PyTorch for this backend; every module here imports `torch` from here.

PyTorch's optimizers import torch._dynamo, and with it triton, the first time
one is created (torch.compile loads the same); triton loaded after TensorFlow
>= 2.19 crashes the process (README, "Import order"). The nets alone need
neither, so `train.py` calls `load_dynamo()` at import, where the import order
is decided: a process that already holds TensorFlow gets a clear error then,
instead of a crash in the middle of a run.
"""

import sys

import torch


def load_dynamo() -> None:
    """Load torch._dynamo now, or raise ImportError if TensorFlow came first."""
    if "tensorflow" in sys.modules and "torch._dynamo" not in sys.modules:
        raise ImportError("import dcgan_torch.train (or create a torch optimizer) before TensorFlow: "
                          "torch's optimizers load triton, which crashes a process that already loaded "
                          "TensorFlow (see README, Import order)")
    import torch._dynamo  # noqa: F401


__all__ = ["torch", "load_dynamo"]
