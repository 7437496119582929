"""The import-order hazard, shown rather than assumed: the wrong order runs in a
fresh process, and the README's rule (TensorFlow last) must be what works."""

import subprocess
import sys
from pathlib import Path

import pytest

import common

from common.backends import is_installed, quiet_env

pytestmark = pytest.mark.slow  # each order runs in a fresh process
needs_all = pytest.mark.skipif(not all(map(is_installed, ("torch", "tf", "mx"))),
                               reason="needs torch, tensorflow and mxnet")


def run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=quiet_env(), timeout=300)


@needs_all
def test_documented_order_loads_all_three_backends_and_their_nets():
    # This test process is the fresh process: conftest.py (through helpers.py) imported
    # torchvision, then the three backends' train modules in the documented order.
    import dcgan_mx.model as m, dcgan_tf.model as f, dcgan_torch.model as t
    from common.spec import ModelSpec
    loaded = {name: i for i, name in enumerate(sys.modules)}  # in the order their imports began
    first = ("torch", "torchvision", "torch._dynamo", "mxnet")  # triton comes with the second and third
    assert all(loaded[name] < loaded["tensorflow"] for name in first), {n: loaded[n] for n in (*first, "tensorflow")}
    s = ModelSpec(n_G=8, n_D=8, image_size=16)
    for mod in (t, m, f):
        assert mod.build_generator(s) is not None and mod.build_discriminator(s) is not None


@needs_all
def test_dcgan_torch_nets_do_not_load_triton_or_torchvision():
    proc = run("import sys, dcgan_torch.model, dcgan_torch.weights, dcgan_torch.sample\n"
               "from common.backends import load\nfrom common.sampling import generate, sample_noise\n"
               "from common.spec import ModelSpec\nfrom common.weights import init_weights\n"
               "s, b = ModelSpec(n_G=8, n_D=8, image_size=16), load('torch')\n"
               "generate(b, b.generator(s, init_weights(s)), sample_noise(0, 2, s.latent_dim))\n"
               "print(sorted(m for m in ('triton', 'torchvision', 'torch._dynamo') if m in sys.modules))")
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]


# The wrong order, walked in one process (each TensorFlow import costs ~6 s of CPU): TensorFlow
# first, then, one after the other, what the README says must come before it. Each step that
# survives prints a line; the crash ends the walk, so it comes last.
TENSORFLOW_FIRST = """\
import tensorflow
{mxnet}
import dcgan_torch.model, dcgan_torch.sample
print('torch nets ok', flush=True)
try:
    import dcgan_torch.train
except ImportError as e:
    print('refused:', e, flush=True)
import torch._dynamo
print('torch._dynamo ok', flush=True)
"""
MXNET = "import dcgan_mx.compat\nprint('mxnet ok', flush=True)"


def mxnet_after_tensorflow_crashes() -> bool:
    import tensorflow as tf  # conftest imported it already, last
    return tuple(map(int, tf.__version__.split(".")[:2])) <= (2, 18)  # measured: segfault on 2.17 and 2.18


@pytest.fixture(scope="module")
def tensorflow_first():
    # Where MXNet after TensorFlow crashes, it would end the walk early: it gets a process of its own.
    return run(TENSORFLOW_FIRST.format(mxnet="" if mxnet_after_tensorflow_crashes() else MXNET))


@needs_all
def test_torch_nets_after_tensorflow_work_and_training_is_a_clear_error_not_a_crash(tensorflow_first):
    # Plain torch (the nets, sampling) after TensorFlow works. torch.optim.Adam
    # imports torch._dynamo (and triton) on first use; dcgan_torch.train loads
    # it at import, so the wrong order fails there, clearly.
    lines = tensorflow_first.stdout.splitlines()
    assert "torch nets ok" in lines, tensorflow_first.stderr[-2000:]
    assert ("refused: import dcgan_torch.train (or create a torch optimizer) before TensorFlow"
            in tensorflow_first.stdout), tensorflow_first.stdout


@needs_all
def test_tensorflow_first_then_triton_crashes(tensorflow_first):
    # torch._dynamo is what dcgan_torch.train loads; torchvision loads the same triton.
    # Measured with TF 2.21: a segfault (TF >= 2.19 may instead abort with
    # "LLVM ERROR: inconsistency in registered CommandLine options").
    # If this starts passing, a TF release fixed it: update the README's rule.
    assert "refused:" in tensorflow_first.stdout  # the walk reached the last step
    assert tensorflow_first.returncode != 0 and "torch._dynamo ok" not in tensorflow_first.stdout


@needs_all
def test_tensorflow_first_then_mxnet_depends_on_the_version(tensorflow_first):
    if mxnet_after_tensorflow_crashes():
        assert run("import tensorflow\n" + MXNET).returncode != 0
    else:
        assert "mxnet ok" in tensorflow_first.stdout.splitlines(), tensorflow_first.stderr[-2000:]


def test_common_imports_no_framework():
    # common.fid uses PyTorch, but only inside its functions: importing it must not.
    modules = ", ".join(f"common.{p.stem}" for p in sorted(Path(common.__file__).parent.glob("*.py"))
                        if p.stem != "__init__")
    proc = run(f"import sys, common.data.__main__, {modules}\n"
               "print(sorted(m for m in ('torch', 'tensorflow', 'mxnet', 'keras') if m in sys.modules))")
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]
