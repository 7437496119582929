"""The backend contract (docs/design.md §3): what each of dcgan_torch,
dcgan_tf and dcgan_mx defines, module by module, with the same public names,
in the same order, with the same signatures and meanings. Written once here,
as documented stubs, and checked by reading each backend's source:

    python -m common.contract            # every backend; exit status 1 on any difference
    python -m common.contract dcgan_tf   # one

A public name is a top-level def or class, or an UPPER_CASE constant, not
starting with "_"; anything a backend needs beyond the contract (TF's layout
transposes, PyTorch's epsilon folding, a framework subclass) is private.
Signatures compare the parameters' names, kinds and default values (as
written); annotations may differ. The one deliberate exception: `G_block`
and `D_block` keep each framework's own signature from the book's chapter,
so a reader can hold them against it; `build_*` call them with keywords.
`compat.py` imports the framework and is each backend's own.

The stubs below are the contract; the backends' docstrings say how each
framework does it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from common.backends import FRAMEWORKS
from common.config import ADAM_EPSILON

MODULES = ("core", "model", "weights", "distributed", "train", "sample", "score", "book")
# The chapter's own code keeps each framework's own signatures.
OWN_SIGNATURE = {("model", "G_block"), ("model", "D_block"), ("book", "G_block"), ("book", "D_block"),
                 ("book", "update_D"), ("book", "update_G")}
ROOT = Path(__file__).resolve().parents[1]

# -- the contract -----------------------------------------------------------------------


class core:
    """The adapter (Keras's convert_to_tensor / convert_to_numpy): common code
    reaches the framework only through these and the other modules' names."""

    LAYOUT = "NCHW or NHWC: how the framework lays out images"

    def pick_device(choice):
        """"auto", "cpu" or "gpu" -> the framework's device; "gpu" without one is a UsageError."""

    def describe_device(device):
        """The device, in words, for config.json and the closing line."""

    def to_device(net, device):
        """The net on `device` (its parameters and batch-norm statistics); returns the net."""

    def convert_to_tensor(x, device=None):
        """A NumPy array laid out as LAYOUT -> a tensor of the same dtype on `device` (default: the CPU)."""

    def convert_to_numpy(x):
        """A tensor -> a NumPy array."""

    def forward(net, X, training=False):
        """net(X), recording nothing for gradients, with batch norm on batch
        statistics (training) or running statistics (inference); the net's mode is kept."""

    def synchronize(device):
        """Wait until the work queued on `device` is done, so that a timer
        (common.bench) measures whole steps: a GPU, and MXNet's engine even on
        the CPU, run ahead of Python."""

    def versions():
        """{library: version} for config.json."""


class model:
    """The nets, built from common.spec."""

    BN_EPSILON = "1e-5, set explicitly"
    BN_MOMENTUM = "the framework's form of 0.1 new / 0.9 old"
    LEAKY_SLOPE = "0.2"

    class G_block:
        """ConvTranspose -> BatchNorm -> ReLU, in the framework's own signature from the book."""

    class D_block:
        """Conv -> BatchNorm -> LeakyReLU(0.2), in the framework's own signature from the book."""

    class Generator:
        """The framework's sequential container of G's layers; `role` "G" and `spec`."""

        def __init__(self, spec, *layers):
            ...

    class Discriminator:
        """The framework's sequential container of D's layers; `role` "D" and `spec`."""

        def __init__(self, spec, *layers):
            ...

    def build_generator(spec, dtype="float32"):
        """G as in the book, with the framework's own initial weights; load canonical ones after."""

    def build_discriminator(spec, dtype="float32"):
        """D as in the book, with the framework's own initial weights; load canonical ones after."""

    def layer_outputs(net, X):
        """The output of every spec layer of `net` on X, in inference mode, in order."""

    def count_params(net):
        """Trainable parameters (not batch norm's running statistics)."""

    def main(argv=None):
        """`python -m dcgan_<fw>.model`: each layer's output shape."""


class weights:
    """Canonical weights (docs/design.md §6) in and out of the nets."""

    def spec_layers(net):
        """(conv, batch_norm or None) for each layer of the spec, in order."""

    def load_canonical(net, arrays):
        """Copy canonical arrays into `net`, exactly, after validating them; returns `net`."""

    def export_canonical(net):
        """The net's canonical arrays, as NumPy."""

    def parameters(net):
        """(canonical key, trainable parameter) pairs, in spec order."""

    def canonical_gradients(net, gradients):
        """Gradients in the order of parameters(net) -> {canonical key: NumPy array in canonical layout}."""


class distributed:
    """Scaling out on the framework's own engine (docs/design.md §13): PyTorch's
    DDP under torchrun, a tf.distribute strategy, Gluon's multi-device Trainer."""

    def setup(config):
        """A context manager: the common.distributed.Replicas this process trains on (its world of
        processes, its devices, the scope to build in), from how it was launched and --devices,
        --strategy, --sync-bn; what the framework cannot do is a UsageError. Plainly launched: one device."""

    def replicate(net, replicas):
        """The net as the step trains it across the replicas (DDP's wrapper; the Keras model, its batch
        norm synchronized with --sync-bn; the Gluon net); the net itself still samples and saves."""

    def mean_across(metrics, replicas):
        """The step's metrics as the global batch's: reduced over the processes or devices."""


class train:
    """The step of docs/design.md §8, the loop, and `python -m dcgan_<fw>.train`."""

    def make_optimizers(G, D, lr_G, lr_D, epsilon=ADAM_EPSILON):
        """(opt_G, opt_D): Adam, beta1 0.5, epsilon set explicitly."""

    def loss(logits, y):
        """BCE on logits, mean over the batch; logits and y have shape (batch,)."""

    def discriminator_loss(D, X, fake):
        """(loss_D, real_logits, fake_logits): 1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], two passes."""

    def generator_loss(D, fake):
        """BCE(D(fake), 1)."""

    def train_step(G, D, opt_G, opt_D, X, Z):
        """One step: D, then G through the same fake; {loss_D, loss_G, d_real, d_fake} as 0-d tensors."""

    def compile_step(G, D, opt_G, opt_D, precision="fp32", replicas=None):
        """train_step over these nets and optimizers as a function of (X, Z), compiled as the framework compiles;
        precision "bf16" (mixed) where the backend supports it, else a UsageError naming the backend;
        replicas (distributed.setup): the step of this process's devices, its metrics the global batch's."""

    def losses_and_gradients(G, D, X, Z):
        """({loss_D, loss_G} floats, canonical gradients of loss_D wrt D and loss_G wrt G), nothing updated."""

    def save_checkpoint(directory, G, D, opt_G, opt_D):
        """Write the framework-native state of nets and optimizers into `directory`."""

    def load_checkpoint(directory, G, D, opt_G, opt_D):
        """Read what save_checkpoint wrote into these nets and optimizers."""

    def train(config, progress=None, callback=None):
        """Train as `config` says, in the order: open the run, set up the replicas (devices), build + load,
        place, optimizers, compile, resume, start, loop; returns the summary."""

    def main(argv=None):
        """`python -m dcgan_<fw>.train`."""


class sample:
    """`python -m dcgan_<fw>.sample` (common.sampling does the work)."""

    def main(argv=None):
        """Sample canonical weights with this backend."""


class score:
    """`python -m dcgan_<fw>.score` (common.scoring does the work)."""

    def main(argv=None):
        """python -m dcgan_<fw>.score: D's probability that each image is real."""


class book:
    """The book's own code for the chapter, kept as the benchmark's reference (common.bench);
    nothing trains with it. Its blocks and update functions are the book's, verbatim."""

    BOOK_LR = "the book's learning rate for this framework"

    def try_gpu(i=0):
        """The book's d2l.try_gpu."""

    class G_block:
        """The book's."""

    class D_block:
        """The book's."""

    def update_D():
        """The book's, in its own signature."""

    def update_G():
        """The book's, in its own signature."""

    def book_nets(n_G=64, n_D=64, latent_dim=100, *, device=None):
        """(net_G, net_D), the book's 64x64 nets, initialised as its train does."""

    def book_step(batch_size=64, n_G=64, n_D=64, latent_dim=100, lr=None, seed=0, *, device=None):
        """A callable running one step of the book's train loop on random data, synced."""


# -- the check ---------------------------------------------------------------------------

def public(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """(name, node) of the public top-level definitions, in order."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            out.append((node.name, node))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.isupper() and not target.id.startswith("_"):
                    out.append((target.id, node))
    return out


def signature(node: ast.AST) -> str | None:
    """A function's (or a class's __init__'s) parameters: names, kinds and defaults, as written."""
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        return None if init is None else signature(init)
    if not isinstance(node, ast.FunctionDef):
        return None
    a = node.args
    plain = a.posonlyargs + a.args
    defaults = [None] * (len(plain) - len(a.defaults)) + list(a.defaults)
    parts = [p.arg + ("" if d is None else "=" + ast.unparse(d)) for p, d in zip(plain, defaults)]
    if a.vararg:
        parts.append("*" + a.vararg.arg)
    elif a.kwonlyargs:
        parts.append("*")
    parts += [p.arg + ("" if d is None else "=" + ast.unparse(d)) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        parts.append("**" + a.kwarg.arg)
    return f"({', '.join(parts)})"


def contract() -> dict[str, list[tuple[str, ast.AST]]]:
    """module -> the contract's (name, node) list, from this file's source."""
    tree = ast.parse(Path(__file__).read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    return {m: public(ast.Module(body=classes[m].body, type_ignores=[])) for m in MODULES}


def check(package_dir: Path) -> list[str]:
    """Every way the backend in `package_dir` departs from the contract, one line each."""
    problems = []
    if not (package_dir / "compat.py").exists():
        problems.append(f"{package_dir.name}/compat.py is missing")
    for module, expected in contract().items():
        path = package_dir / f"{module}.py"
        where = f"{package_dir.name}/{module}.py"
        if not path.exists():
            problems.append(f"{where} is missing")
            continue
        actual = public(ast.parse(path.read_text()))
        names, wanted = [n for n, _ in actual], [n for n, _ in expected]
        problems += [f"{where}: {n} is missing" for n in wanted if n not in names]
        problems += [f"{where}: {n} is public but not in the contract (make it private, or add it to "
                     f"common/contract.py and every backend)" for n in names if n not in wanted]
        common_order = [n for n in names if n in wanted]
        if common_order != [n for n in wanted if n in names]:
            problems.append(f"{where}: public names in another order than the contract's: {', '.join(common_order)}")
        nodes = dict(actual)
        for name, node in expected:
            if name in nodes and (module, name) not in OWN_SIGNATURE:
                want, got = signature(node), signature(nodes[name])
                if want != got:
                    problems.append(f"{where}: {name}{got or ''} differs from the contract's {name}{want or ''}")
    return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    packages = argv or [fw.package for fw in FRAMEWORKS.values()]
    problems = [p for package in packages for p in check(ROOT / package)]
    for p in problems:
        print(p)
    print(f"{len(problems)} difference(s) from the backend contract" if problems
          else f"{', '.join(packages)}: every module follows the backend contract")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
