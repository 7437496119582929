"""Train the DCGAN in PyTorch: the step of docs/design.md §8, the loop, main.

    python -m dcgan_torch.train --data shapes --image-size 32 --epochs 5

The same steps, in the same order and under the same names, are in
dcgan_tf/train.py and dcgan_mx/train.py (the contract: docs/design.md §3).
"""

from __future__ import annotations

import contextlib
import functools
import math

from common.cli import train_main
from common.config import ADAM_EPSILON, BETA1, BETA2, TrainConfig
from common.run import Run
from common.weights import init_weights
from dcgan_torch.compat import load_dynamo, torch
from dcgan_torch.core import LAYOUT, convert_to_numpy, convert_to_tensor, forward, to_device, versions
from dcgan_torch.distributed import mean_across, replicate, setup
from dcgan_torch.model import build_discriminator, build_generator, count_params
from dcgan_torch.weights import canonical_gradients, export_canonical, load_canonical, parameters

load_dynamo()  # before any optimizer exists; see compat.py


def make_optimizers(G, D, lr_G: float, lr_D: float, epsilon: float = ADAM_EPSILON):
    """Adam with the DCGAN betas; epsilon set explicitly (docs/design.md §5)."""
    opt_G = torch.optim.Adam(G.parameters(), lr=lr_G, betas=(BETA1, BETA2), eps=epsilon)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr_D, betas=(BETA1, BETA2), eps=epsilon)
    return opt_G, opt_D


def _fold_epsilon(opt) -> None:
    """Make the coming Adam step add epsilon where Keras and Gluon do.

    PyTorch divides by sqrt(v / (1 - beta2^t)) + eps; Keras and Gluon fold the
    bias correction into the step size and divide by sqrt(v) + eps. With
    eps_t = eps / sqrt(1 - beta2^t) PyTorch's update is theirs, exactly.
    """
    for group in opt.param_groups:
        epsilon = group.setdefault("epsilon", group["eps"])  # the configured value, kept on first use
        state = opt.state.get(group["params"][0], {})
        t = int(state["step"]) + 1 if "step" in state else 1
        group["eps"] = epsilon / math.sqrt(1 - group["betas"][1] ** t)


def loss(logits, y):
    """BCE on logits, mean over the batch."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)


def discriminator_loss(D, X, fake):
    """1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], real and fake in separate passes
    (separate batch statistics); also returns the two logit vectors."""
    real_logits = D(X).reshape(-1)
    fake_logits = D(fake).reshape(-1)
    loss_D = (loss(real_logits, torch.ones_like(real_logits))
              + loss(fake_logits, torch.zeros_like(fake_logits))) / 2
    return loss_D, real_logits, fake_logits


def generator_loss(D, fake):
    """BCE(D(fake), 1): G is rewarded when D calls its images real."""
    fake_logits = D(fake).reshape(-1)
    return loss(fake_logits, torch.ones_like(fake_logits))


@contextlib.contextmanager
def _frozen(net):
    """Inside, backward computes no gradients for `net`'s own weights, only
    through it: the G step needs the gradient of loss_G with respect to G's
    output, not D's weight gradients, which it would throw away (TensorFlow's
    tape is asked for G's alone). Measured on the 2-core CPU at 64x64, widths
    64, batch 64: 1.09-1.14x the step (README, Performance)."""
    net.requires_grad_(False)
    try:
        yield
    finally:
        net.requires_grad_(True)


_SMALL_MAP = 4  # the largest map (height and width) whose bfloat16 weight gradient is one matrix product


def _patches(X, kernel: int, stride: int, padding: int, size) -> "torch.Tensor":
    """The matrix of im2col: one row per position of a (kernel, stride,
    padding) convolution's output map of `size`, holding X's window there
    (columns in (ky, kx, channel) order), for X in any memory format."""
    Xp = torch.nn.functional.pad(X, (padding,) * 4).permute(0, 2, 3, 1).contiguous()  # NHWC in memory
    n, h, w, c = Xp.stride()
    windows = Xp.as_strided((X.shape[0], *size, kernel, kernel, X.shape[1]), (n, stride * h, stride * w, h, w, c))
    return windows.reshape(-1, kernel * kernel * X.shape[1])


class _GemmWeightGradient(torch.autograd.Function):
    """A convolution or transposed convolution (no bias, groups or dilation)
    whose backward computes the weight gradient as one matrix product, the
    output gradient's rows against the input's patches. oneDNN's own bfloat16
    weight gradient is slow where a map is small: on the 2-core AMX CPU, D's
    8x8 -> 4x4 layer at 64x64 took 29 ms against 7.3 ms this way, while at
    32x32 -> 16x16 oneDNN's was the faster (6.3 against 24 ms). The forward
    pass and the input gradient are PyTorch's own."""

    @staticmethod
    def forward(ctx, X, W, transposed: bool, stride: int, padding: int):
        ctx.save_for_backward(X, W)
        ctx.layer = transposed, stride, padding
        conv = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
        return conv(X, W, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, dY):
        X, W = ctx.saved_tensors
        transposed, stride, padding = ctx.layer
        dY = dY.contiguous(memory_format=torch.channels_last)
        dX = dW = None
        if ctx.needs_input_grad[0]:
            dX = torch.ops.aten.convolution_backward(dY, X, W, None, [stride] * 2, [padding] * 2, [1, 1], transposed,
                                                     [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            # A transposed convolution's weight gradient is that of the convolution from its output to its input.
            source, target = (dY, X) if transposed else (X, dY)
            k = W.shape[-1]
            rows = target.permute(0, 2, 3, 1).reshape(-1, target.shape[1])
            dW = (rows.t() @ _patches(source, k, stride, padding, target.shape[2:]))
            dW = dW.reshape(target.shape[1], k, k, source.shape[1]).permute(0, 3, 1, 2)
        return dX, dW, None, None, None


def _small_map_forward(conv, forward, X, *args, **kwargs):
    """conv(X), through _GemmWeightGradient under bfloat16 autocast on the CPU
    when X is a float32 or bfloat16 batch and the map its weight gradient sums
    over (a convolution's output, a transposed convolution's input) is at most
    _SMALL_MAP on each side; anything else (an output_size, other dtypes,
    unbatched input) is the module's own forward."""
    if (args or kwargs or X.dim() != 4 or X.dtype not in (torch.float32, torch.bfloat16)
            or not torch.is_autocast_enabled("cpu") or torch.get_autocast_dtype("cpu") != torch.bfloat16):
        return forward(X, *args, **kwargs)
    transposed = isinstance(conv, torch.nn.ConvTranspose2d)
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    summed = X.shape[2:] if transposed else [(n + 2 * p - k) // s + 1 for n in X.shape[2:]]
    if max(summed) > _SMALL_MAP:
        return forward(X)
    with torch.autocast("cpu", enabled=False):
        return _GemmWeightGradient.apply(X.to(torch.bfloat16), conv.weight.to(torch.bfloat16), transposed, s, p)


def _gemm_small_map_weight_gradients(*nets) -> None:
    """Give the nets' plain square convolutions _small_map_forward (in place;
    once, however often it is called). Measured with --precision bf16 on the
    2-core CPU at 64x64, widths 64: the step 1.16x as fast (README, Performance)."""
    for conv in (m for net in nets for m in net.modules()):
        plain = (isinstance(conv, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and conv.bias is None
                 and conv.groups == 1 and conv.padding_mode == "zeros" and set(conv.dilation) == {1}
                 and set(getattr(conv, "output_padding", (0,))) == {0} and len(set(conv.kernel_size)) == 1
                 and len(set(conv.stride)) == 1 and len(set(conv.padding)) == 1)
        if plain and "forward" not in vars(conv):
            conv.forward = functools.partial(_small_map_forward, conv, conv.forward)


def train_step(G, D, opt_G, opt_D, X, Z):
    """One step of docs/design.md §8; returns loss_D, loss_G, d_real, d_fake as 0-d tensors."""
    fake = G(Z)
    # (1) Update D, with G's output held fixed.
    opt_D.zero_grad(set_to_none=True)
    loss_D, real_logits, fake_logits = discriminator_loss(D, X, fake.detach())
    loss_D.backward()
    _fold_epsilon(opt_D)
    opt_D.step()
    # (2) Update G through the same fake, with the updated D.
    opt_G.zero_grad(set_to_none=True)
    with _frozen(D):
        loss_G = generator_loss(D, fake)
        loss_G.backward()
    _fold_epsilon(opt_G)
    opt_G.step()
    with torch.no_grad():
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
                "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}


def compile_step(G, D, opt_G, opt_D, precision: str = "fp32", replicas=None):
    """train_step over these nets and optimizers, as a function of (X, Z).

    PyTorch runs it eagerly, with the nets' weights and the batch in the
    channels-last memory format, the layout oneDNN's and cuDNN's convolutions
    prefer (measured on a 2-core AVX-512 CPU: 1.15x the step of NCHW-contiguous
    tensors; README, Performance). The values, shapes and NCHW indexing are
    unchanged. precision "bf16" runs the step under autocast: convolutions in
    bfloat16, weights, batch norm, losses and Adam in float32, with autocast's
    cache of bfloat16 weight copies off: it would hand the G step the copies of
    D's weights from before D's update (the cache does not see in-place updates;
    measured: step 1's loss_G 0.74 instead of 2.94), and G would train against
    a stale D. D's weights are cast again in each pass. On the CPU, bf16 also
    computes the weight gradients of the layers with a 4x4 map as one matrix
    product each (_GemmWeightGradient: oneDNN's are slow there). The nets stay in
    training mode (a module's default; core.forward restores it after sampling).
    Under torchrun (replicas from distributed.setup) the step trains
    DistributedDataParallel wrappers of the nets on this process's shard of
    the batch, and returns the metrics averaged over the processes.
    """
    G.to(memory_format=torch.channels_last)  # in place: the optimizers keep the same parameters
    D.to(memory_format=torch.channels_last)
    device = next(G.parameters()).device.type
    if precision == "bf16" and device == "cpu":
        _gemm_small_map_weight_gradients(G, D)
    G_, D_ = (replicate(G, replicas), replicate(D, replicas)) if replicas else (G, D)

    def step(X, Z):
        X = X.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False):
            metrics = train_step(G_, D_, opt_G, opt_D, X, Z)
        return mean_across(metrics, replicas) if replicas else metrics
    return step


def losses_and_gradients(G, D, X, Z):
    """What the step computes before it updates anything: the losses, and the
    gradients of loss_D with respect to D and of loss_G with respect to G,
    keyed canonically. For the parity checks; nothing is updated but BN's
    running statistics."""
    fake = G(Z)
    loss_D, _, _ = discriminator_loss(D, X, fake.detach())
    loss_G = generator_loss(D, fake)
    grads_D = torch.autograd.grad(loss_D, [p for _, p in parameters(D)])
    grads_G = torch.autograd.grad(loss_G, [p for _, p in parameters(G)])
    return ({"loss_D": loss_D.item(), "loss_G": loss_G.item()},
            {**canonical_gradients(D, grads_D), **canonical_gradients(G, grads_G)})


def save_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    torch.save({"G": G.state_dict(), "D": D.state_dict(),
                "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict()}, directory / "state.pt")


def load_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    state = torch.load(directory / "state.pt", map_location=next(G.parameters()).device, weights_only=True)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    opt_G.load_state_dict(state["opt_G"])
    opt_D.load_state_dict(state["opt_D"])


def train(config: TrainConfig, progress=None, callback=None) -> dict:
    """Train as `config` says; callback(epoch, metrics, samples) runs at every epoch end."""
    run = Run.open(config, "torch", LAYOUT, progress, callback)
    with setup(config) as replicas, replicas.scope():
        device, spec, dtype = replicas.device, config.spec, config.dtype
        G = to_device(load_canonical(build_generator(spec, dtype), init_weights(spec, config.seed, ("G",))),
                      replicas.placement)
        D = to_device(load_canonical(build_discriminator(spec, dtype), init_weights(spec, config.seed + 1, ("D",))),
                      replicas.placement)
        opt_G, opt_D = make_optimizers(G, D, *config.learning_rates)
        step = compile_step(G, D, opt_G, opt_D, config.precision, replicas)
        if run.resuming:
            run.restore(load_checkpoint, G, D, opt_G, opt_D)
        run.start(versions(), replicas.description, {"G": count_params(G), "D": count_params(D)},
                  sample=lambda Z: convert_to_numpy(forward(G, convert_to_tensor(Z, device))),
                  save_checkpoint=lambda directory: save_checkpoint(directory, G, D, opt_G, opt_D),
                  export_nets=lambda: {**export_canonical(G), **export_canonical(D)}, world=replicas.world)
        for epoch in run.epochs():
            for X, Z in run.batches(epoch):
                run.step_done(step(convert_to_tensor(X, device), convert_to_tensor(Z, device)))
            run.epoch_done()
        return run.finish()


def main(argv=None) -> int:
    return train_main("torch", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
