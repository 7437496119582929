"""FID and KID with your own copy of pytorch-fid's Inception weights (optional).

    python -m common.metrics fid --fake samples.npy --inception-weights pt_inception-2015-12-05-6726825d.pth

Needs torch, torchvision and pytorch-fid (`pip install pytorch-fid`, which also brings SciPy,
unused here) and the weights file pt_inception-2015-12-05-6726825d.pth, which you download
once yourself from INCEPTION_URL. Nothing is ever downloaded at run time: pytorch-fid's own
`fid_inception_v3()` fetches the weights through torch.hub, so it is not called; the same
network is built here from torchvision's Inception v3 (no weights) and pytorch-fid's FID
blocks, and `load_state_dict` reads your file (strictly: every key, every shape).

The features are pytorch-fid's (its InceptionV3 with the default output block 3): images in
[0, 1] resized bilinearly to 299x299, scaled to [-1, 1], the 2048 pool3 activations. 1-channel
images are repeated to 3. FID is the Fréchet distance of the two sets' Gaussians
(common.metrics.feature_fd: NumPy, eigen-decomposition, no SciPy); KID the unbiased polynomial
MMD^2 over subsets (common.metrics.kid).

This is the one module of common/ that uses a deep-learning framework, and only inside its
functions: importing it imports NumPy alone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from common.errors import UsageError
from common.metrics import as_float_nhwc, feature_fd, kid

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
FEATURE_DIM = 2048
REQUIRED = (("torch", "torch"), ("torchvision", "torchvision"), ("pytorch_fid", "pytorch-fid"))


def _how_to(problem: str) -> str:
    return (f"{problem}; FID and KID need pytorch-fid's Inception weights {INCEPTION_FILE}: download it "
            f"once from {INCEPTION_URL} and pass --inception-weights PATH (nothing is downloaded at run time)")


def check_available(weights_path) -> Path:
    """The weights file as a Path, if it and the packages are there; else a one-line UsageError
    that names the file, where to get it and how to pass it. Imports nothing heavy."""
    missing = [pip for module, pip in REQUIRED if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(_how_to(f"{', '.join(missing)} not installed (pip install pytorch-fid; torch and "
                                 f"torchvision come with the torch extra)"))
    if not weights_path:
        raise UsageError(_how_to("no --inception-weights given"))
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise UsageError(_how_to(f"--inception-weights {path}: no such file"))
    return path


def build_inception():
    """pytorch-fid's FID Inception v3 without weights (PyTorch's default initialisation):
    torchvision's Inception v3 (1008 classes, no aux logits, weights=None) with pytorch-fid's
    FID blocks swapped in, as pytorch_fid.inception.fid_inception_v3() builds it before it
    downloads. Its state_dict has the keys of INCEPTION_FILE."""
    import torchvision
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


def pool3_extractor(inception):
    """A module mapping (N, 3, H, W) images in [0, 1] to (N, 2048) pool3 features, as
    pytorch_fid.inception.InceptionV3() (resize_input, normalize_input, block 3) does."""
    import torch
    import torch.nn.functional as F

    class Pool3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            n = inception
            self.blocks = torch.nn.Sequential(
                n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, torch.nn.MaxPool2d(kernel_size=3, stride=2),
                n.Conv2d_3b_1x1, n.Conv2d_4a_3x3, torch.nn.MaxPool2d(kernel_size=3, stride=2),
                n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e,
                n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, torch.nn.AdaptiveAvgPool2d(output_size=(1, 1)))

        def forward(self, x):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return self.blocks(2 * x - 1).flatten(1)

    return Pool3().eval().requires_grad_(False)


def load_inception(weights_path, device: str = "cpu"):
    """The pool3 extractor with the weights of `weights_path` (strictly checked), on `device`."""
    import torch

    path = check_available(weights_path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle error, a zip error, a truncated file...
        raise UsageError(_how_to(f"--inception-weights {path} could not be read ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})")) from None
    net = build_inception()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()
        raise UsageError(_how_to(f"--inception-weights {path} does not fit the FID Inception network "
                                 f"({first[0] if first else type(e).__name__} ...)")) from None
    return pool3_extractor(net).to(device)


def save_random_inception(path, seed: int = 0) -> Path:
    """A randomly initialised FID Inception state dict, saved as the real weights would be: for
    testing the plumbing without the real file. Convolutions get He-normal weights, so that the
    pool3 features stay of order 1 (PyTorch's default initialisation shrinks them to ~1e-8)."""
    import torch

    torch.manual_seed(seed)
    net = build_inception()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), path)
    return Path(path)


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA device")
    return device


def inception_features(images, model, batch_size: int = 50, device: str = "cpu") -> np.ndarray:
    """(N, 2048) float64 pool3 features of images in any form common.metrics accepts."""
    import torch

    x = as_float_nhwc(images).transpose(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)
            out.append(model(batch).double().cpu().numpy())
    return np.concatenate(out)


def fid_kid(real, fake, weights_path, *, batch_size: int = 50, device: str = "auto", kid_subsets: int = 100,
            kid_subset_size: int = 1000, seed: int = 0, model=None) -> dict:
    """FID and KID between two sets of images: {"fid", "kid", "kid_std", "kid_subsets",
    "kid_subset_size"}. `model` (a pool3 extractor) skips loading the weights again."""
    if batch_size < 1 or kid_subsets < 1 or kid_subset_size < 2:
        raise UsageError("--batch-size and --kid-subsets must be >= 1, --kid-subset-size >= 2")
    device = resolve_device(device)
    model = model if model is not None else load_inception(weights_path, device)
    fa = inception_features(real, model, batch_size, device)
    fb = inception_features(fake, model, batch_size, device)
    return scores(fa, fb, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed)


def scores(fa, fb, *, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0) -> dict:
    """FID and KID from two sets of pool3 features (rows)."""
    kid_mean, kid_std = kid(fa, fb, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    return {"fid": feature_fd(fa, fb), "kid": kid_mean, "kid_std": kid_std, "kid_subsets": kid_subsets,
            "kid_subset_size": min(kid_subset_size, len(fa), len(fb))}
