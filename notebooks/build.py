"""Writes the four notebooks from one template: the three framework notebooks
are mirror images, cell for cell, differing only in the framework's own API.

    python notebooks/build.py          # rewrite notebooks/*.ipynb
    python notebooks/build.py --check  # exit 1 if a notebook differs from what this writes

tests/test_notebooks.py runs the check, so an edit made to one notebook by hand
(and not here) is caught.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

PARAMETERS = '''# Parameters (the tests run this notebook small by replacing this cell).
# The book's setting is DATA = "pokemon", IMAGE_SIZE = 64, N_G = N_D = 64, BATCH_SIZE = 256,
# EPOCHS = 20, LR_G = LR_D = 0.005, VARIANT = "d2l": minutes on a GPU, hours on a laptop CPU. The defaults here
# train the built-in shapes on a CPU in a few minutes.
import time
DATA = "shapes"
IMAGE_SIZE = 32
VARIANT = "paper"  # D without batch norm on its input block (the book's nets: "d2l")
N_G, N_D = 32, 16
BATCH_SIZE = 64
EPOCHS = 5
LR_G, LR_D = 0.002, 0.0005  # as make demo: D learns at a quarter of G's rate
NUM_IMAGES = 16384
MAX_STEPS = None
OUT = time.strftime("runs/notebook-{fw}-%Y%m%d-%H%M%S")'''

# What differs between the frameworks: names, imports, tensors, layouts.
FRAMEWORKS = {
    "torch": {
        "title": "PyTorch",
        "layout": "PyTorch lays tensors out NCHW: (batch, channels, height, width).",
        "imports": "import numpy as np\nimport torch\nfrom torch import nn",
        "zeros": "torch.zeros({shape})",
        "init": "",
        "leaky": "nn.LeakyReLU(alpha)(torch.from_numpy(x)).numpy()",
        "numpy": "np",
        "nchw": True,
    },
    "tf": {
        "title": "TensorFlow / Keras",
        "layout": "TensorFlow lays tensors out NHWC: (batch, height, width, channels). Batch norm runs on "
                  "batch statistics only when a call passes `training=True`; the blocks pass the flag through.",
        "imports": "import numpy as np\nfrom dcgan_tf.compat import keras, tf",
        "zeros": "tf.zeros({shape})",
        "init": "",
        "leaky": "keras.layers.LeakyReLU(negative_slope=alpha)(x).numpy()",
        "numpy": "np",
        "nchw": False,
    },
    "mx": {
        "title": "MXNet Gluon",
        "layout": "MXNet lays tensors out NCHW: (batch, channels, height, width). As in the book, the code runs "
                  "in MXNet's NumPy interface (`from mxnet import np, npx; npx.set_np()`): `np` below is "
                  "`mxnet.np`, and `onp` is NumPy itself.",
        "imports": "import numpy as onp\nfrom dcgan_mx.compat import np, npx\nfrom mxnet.gluon import nn",
        "zeros": "np.zeros({shape})",
        "init": "blk.initialize()\n",
        "leaky": "nn.LeakyReLU(alpha)(np.array(x)).asnumpy()",
        "numpy": "onp",
        "nchw": True,
    },
}


def shape(fw: str, nchw: str) -> str:
    """A shape written NCHW in the template, in the framework's layout."""
    if FRAMEWORKS[fw]["nchw"]:
        return nchw
    n, c, h, w = [part.strip() for part in nchw.strip("()").split(",")]
    return f"({n}, {h}, {w}, {c})"


def framework_cells(fw: str) -> list[tuple[str, str]]:
    f = FRAMEWORKS[fw]
    np_ = f["numpy"]
    zeros = lambda nchw: f["zeros"].format(shape=shape(fw, nchw))
    return [
        ("markdown", f"# DCGAN in {f['title']}\n\nThe *Dive into Deep Learning* chapter on DCGAN, run with this "
                     f"project's `dcgan_{fw}` backend: the cells show the project's own code (via `inspect`), "
                     f"not a second copy of it.\n\n{f['layout']}\n\n**Import order:** in one Python process with "
                     f"TensorFlow and PyTorch or MXNet, import TensorFlow last (see the README)."),
        ("parameters", PARAMETERS.format(fw=fw)),
        ("code", f"import inspect\n\nimport matplotlib.pyplot as plt\nfrom IPython import display\n\n{f['imports']}\n\n"
                 "from common.config import TrainConfig\nfrom common.data import DataSource\n"
                 "from common.spec import ModelSpec\nfrom common.weights import init_weights\n"
                 f"from dcgan_{fw}.model import G_block, D_block, build_generator, build_discriminator, layer_outputs\n"
                 f"from dcgan_{fw}.train import train, train_step\nfrom dcgan_{fw}.weights import load_canonical"),
        ("markdown", "## The data\n\nDecoded once into a uint8 array (N, H, W, 3) and cached; every framework "
                     "reads the same array."),
        ("code", "images = DataSource(DATA, num_images=NUM_IMAGES).load(IMAGE_SIZE)\nprint(images.shape, images.dtype)\n"
                 "fig, axes = plt.subplots(4, 5, figsize=(6, 5))\nfor ax, img in zip(axes.flat, images[:20]):\n"
                 "    ax.imshow(img)\n    ax.axis('off')"),
        ("markdown", "## The generator block\n\nA transposed convolution, batch normalization and ReLU. With the "
                     "defaults (kernel 4, stride 2, padding 1) it doubles the height and width."),
        ("code", "print(inspect.getsource(G_block))"),
        ("code", f"X = {zeros('(2, 3, 16, 16)')}\nblk = G_block(20)\n{f['init']}blk(X).shape  # {shape(fw, '(2, 20, 32, 32)')}"),
        ("code", f"X = {zeros('(2, 3, 1, 1)')}\nblk = G_block(20, strides=1, padding=0)\n{f['init']}"
                 f"blk(X).shape  # {shape(fw, '(2, 20, 4, 4)')}"),
        ("markdown", "## The generator\n\nBuilt from the shared spec (`common.spec.ModelSpec`): G_blocks from 1x1 "
                     "up, then a transposed convolution to the image and tanh. Its weights are DCGAN's "
                     "initialisation, drawn once in NumPy (`init_weights`), so the same seed gives the same net "
                     "in every framework."),
        ("code", "spec = ModelSpec(n_G=N_G, n_D=N_D, image_size=IMAGE_SIZE, variant=VARIANT)\n"
                 "net_G = load_canonical(build_generator(spec), init_weights(spec, seed=0))\n"
                 f"X = {zeros('(1, spec.latent_dim, 1, 1)')}\nfor i, out in enumerate(layer_outputs(net_G, X)):\n"
                 "    print(i, tuple(out.shape))"),
        ("markdown", "## Leaky ReLU\n\nThe discriminator uses leaky ReLU: alpha = 0 is ReLU, alpha = 1 is the identity."),
        ("code", f"x = {np_}.arange(-2, 1, 0.1, dtype={np_}.float32)\nfor alpha in [0, .2, .4, .6, .8, 1]:\n"
                 f"    plt.plot(x, {f['leaky']}, label=f'alpha = {{alpha}}')\n"
                 "plt.legend(); plt.xlabel('x'); plt.ylabel('y')"),
        ("markdown", "## The discriminator block\n\nA convolution, batch normalization and leaky ReLU (slope 0.2). "
                     "With the defaults it halves the height and width."),
        ("code", "print(inspect.getsource(D_block))"),
        ("code", f"X = {zeros('(2, 3, 16, 16)')}\nblk = D_block(20)\n{f['init']}blk(X).shape  # {shape(fw, '(2, 20, 8, 8)')}"),
        ("markdown", "## The discriminator\n\nD_blocks down to 4x4, then a 4x4 convolution to one logit per image."),
        ("code", "net_D = load_canonical(build_discriminator(spec), init_weights(spec, seed=1))\n"
                 f"X = {zeros('(1, 3, spec.image_size, spec.image_size)')}\n"
                 "for i, out in enumerate(layer_outputs(net_D, X)):\n    print(i, tuple(out.shape))"),
        ("markdown", "## Training\n\nOne step, as in every backend: update D on real and fake (separately), then G "
                     "through the same fake with the updated D."),
        ("code", "print(inspect.getsource(train_step))"),
        ("code", "def show(epoch, metrics, samples):\n"
                 '    """Called by train() at every epoch end: the loss curves and the fixed-noise samples."""\n'
                 "    display.clear_output(wait=True)\n"
                 "    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3))\n"
                 "    for key in ('loss_D', 'loss_G'):\n"
                 "        ax1.plot([m['step'] for m in metrics], [m[key] for m in metrics], label=key)\n"
                 "    ax1.set_xlabel('step'); ax1.legend(); ax1.set_title(f'epoch {epoch}')\n"
                 f"    rows = [{np_}.concatenate(list(samples[r * 7:(r + 1) * 7]), axis=1) for r in range(3)]\n"
                 f"    ax2.imshow({np_}.concatenate(rows, axis=0).squeeze()); ax2.axis('off')\n"
                 "    display.display(fig); plt.close(fig)\n\n"
                 "config = TrainConfig(spec=spec, data=DataSource(DATA, num_images=NUM_IMAGES), batch_size=BATCH_SIZE,\n"
                 "                     epochs=EPOCHS, lr_G=LR_G, lr_D=LR_D, max_steps=MAX_STEPS, log_every=10, out=OUT)\n"
                 "summary = train(config, progress=False, callback=show)"),
        ("markdown", "The last line printed is the book's: losses and examples/sec. The run directory `OUT` holds "
                     "the metrics, the sample grids, a checkpoint and `generator.npz`, which any of the three "
                     "backends can sample: `python -m dcgan_tf.sample --weights OUT/generator.npz`."),
    ]


def compare_cells() -> list[tuple[str, str]]:
    return [
        ("markdown", "# PyTorch, TensorFlow and MXNet side by side\n\n`common.compare` trains the same DCGAN in "
                     "each framework, each in its own process (so no import order can crash it), with the same "
                     "config and seed, and writes a report and a figure."),
        ("parameters", "# Parameters (the tests run this notebook small by replacing this cell).\nimport time\n"
                       'FRAMEWORKS = "torch,tf,mx"\n'
                       '# make demo\'s settings (README, "What make demo shows")\n'
                       'FLAGS = ["--data", "shapes", "--image-size", "32", "--variant", "paper", "--n-g", "32", '
                       '"--n-d", "16",\n         "--batch-size", "64", "--num-images", "16384", "--epochs", "5", '
                       '"--lr-g", "0.002", "--lr-d", "0.0005"]\n'
                       'OUT = time.strftime("runs/notebook-compare-%Y%m%d-%H%M%S")'),
        ("code", "from IPython.display import Image, Markdown, display\n\nfrom common.compare import main as compare\n\n"
                 'status = compare(["--frameworks", FRAMEWORKS, *FLAGS, "--out", OUT])\nprint("exit status", status)'),
        ("code", 'display(Markdown(open(f"{OUT}/report.md").read().split("![")[0]))\ndisplay(Image(f"{OUT}/compare.png"))'),
        ("markdown", "Same seed, same initial weights, same batches and noise: the curves start together and drift "
                     "apart as training amplifies float32 rounding. `python -m common.parity` shows the three "
                     "compute the same numbers where rounding cannot hide a difference."),
    ]


def notebook(cells: list[tuple[str, str]]) -> dict:
    out = []
    for i, (kind, source) in enumerate(cells):
        cell = {"cell_type": "markdown" if kind == "markdown" else "code", "id": f"cell-{i:02d}", "metadata": {},
                "source": source.splitlines(keepends=True)}
        if kind == "parameters":
            cell["metadata"] = {"tags": ["parameters"]}
        if cell["cell_type"] == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return {"cells": out, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


def notebooks() -> dict[str, str]:
    """File name -> its JSON text."""
    books = {f"dcgan_{fw}.ipynb": notebook(framework_cells(fw)) for fw in FRAMEWORKS}
    books["compare.ipynb"] = notebook(compare_cells())
    return {name: json.dumps(nb, indent=1, ensure_ascii=False) + "\n" for name, nb in books.items()}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stale = [name for name, text in notebooks().items()
             if not (HERE / name).exists() or (HERE / name).read_text() != text]
    if "--check" in argv:
        for name in stale:
            print(f"notebooks/{name} differs from notebooks/build.py's template; run python notebooks/build.py")
        return 1 if stale else 0
    for name, text in notebooks().items():
        (HERE / name).write_text(text)
    print(f"wrote {len(notebooks())} notebooks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
