"""Training in every backend: outputs, resume, learning, sampling across
frameworks, and one-line errors for bad input. CLIs run in-process (their
`main(argv)`), except where a real signal needs a real process."""

import copy
import json

import numpy as np
import pytest
from PIL import Image

import common.run
from common.cli import config_argv
from common.config import TrainConfig
from common.errors import UsageError
from common.rundir import read_metrics
from common.sampling import generate, sample_noise
from common.weights import load_weights
from helpers import BACKENDS, QUICKEST, one_line_error, run_main, snapshot

SMALL = dict(image_size=16, n_G=16, n_D=8, num_images=256, batch_size=32, lr=0.0005, seed=3,
             log_every=3, eval_samples=128)  # 8 steps per epoch


def small_config(out, **overrides) -> TrainConfig:
    return TrainConfig().replace(**{**SMALL, "epochs": 2, "out": str(out), **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each backend trained once for 2 epochs (16 steps); reused by several tests."""
    runs = {}
    for name, b in BACKENDS.items():
        out = tmp_path_factory.mktemp(f"run-{name}")
        summary = b.train.train(small_config(out), progress=False)
        runs[name] = (out, summary)
    return runs


def test_a_run_writes_every_output(fw, trained):
    out, summary = trained[fw]
    assert summary["step"] == 16 and not summary["interrupted"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["framework"] == fw and saved["config"]["lr"] == 0.0005
    assert TrainConfig.from_dict(saved["config"]) == small_config(out)
    assert {"python", "numpy"} <= saved["versions"].keys() and len(saved["versions"]) >= 4
    lines = read_metrics(out)
    assert [(m["kind"], m["step"]) for m in lines] == [
        ("step", 3), ("step", 6), ("epoch", 8), ("step", 9), ("step", 12), ("step", 15), ("epoch", 16)]
    for m in lines:
        assert {"step", "epoch", "loss_D", "loss_G", "d_real", "d_fake", "examples_per_sec"} <= m.keys()
        assert all(np.isfinite(m[k]) for k in ("loss_D", "loss_G", "d_real", "d_fake"))
        # every epoch end measures image quality (the judge too: the data is shapes); a step line only logs
        assert ({"swd", "diversity", "contrast", "judge_recognised", "judge_fd"} <= m.keys()) is (m["kind"] == "epoch")
        assert m["kind"] != "epoch" or 0 < m["swd"] < 1000
    for epoch in (1, 2):
        with Image.open(out / "samples" / f"epoch_{epoch:03d}.png") as img:
            assert img.size == (4 * (7 * 18 + 2), 4 * (3 * 18 + 2))  # 3x7 grid of 16px, shown 4x
    with Image.open(out / "losses.png") as img:
        assert img.size[0] > 100
    progress = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert progress["step"] == 16 and len(list((out / "checkpoint").iterdir())) >= 2
    arrays, spec = load_weights(out / "generator.npz", nets=("G",))
    assert spec == small_config(out).spec and set(k[0] for k in arrays) == {"G"}
    arrays, spec = load_weights(out / "discriminator.npz", nets=("D",))  # both nets, for any framework
    assert spec == small_config(out).spec and set(k[0] for k in arrays) == {"D"}
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporaries left


@pytest.mark.cross_framework
def test_same_seed_same_start_in_every_framework(trained):
    # Same weights, noise and batches: the first logged losses agree closely
    # (the parity tests bound them exactly; here a loose sanity check).
    first = {name: read_metrics(out)[0] for name, (out, _) in trained.items()}
    values = np.array([[m["loss_D"], m["loss_G"], m["d_real"], m["d_fake"]] for m in first.values()])
    assert np.ptp(values, axis=0).max() < 1e-3, first


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(fw, trained, tmp_path):
    b, (straight, _) = BACKENDS[fw], trained[fw]
    # Without the quality measure (the straight run had it): measuring must not change training.
    b.train.train(small_config(tmp_path, max_steps=5, eval=False), progress=False)  # stops mid-epoch 1
    assert json.loads((tmp_path / "checkpoint" / "progress.json").read_text())["step"] == 5
    summary = b.train.train(small_config(tmp_path, resume=True, eval=False), progress=False)
    assert summary["step"] == 16
    expected, _ = load_weights(straight / "generator.npz")
    resumed, _ = load_weights(tmp_path / "generator.npz")
    for key in expected:  # float32 on the CPU: the same operations give the same bits, or nearly
        np.testing.assert_allclose(resumed[key], expected[key], rtol=0, atol=1e-6, err_msg=key)
    a, r = read_metrics(straight), read_metrics(tmp_path)
    assert a[-1]["step"] == r[-1]["step"] == 16
    assert abs(a[-1]["loss_G"] - r[-1]["loss_G"]) < 1e-5


# -- learning, not just running -----------------------------------------------------

def learned(out) -> bool:
    """D tells real from fake at the end, and its loss fell from the start."""
    lines = read_metrics(out)
    return lines[-1]["d_real"] > lines[-1]["d_fake"] + 0.1 and lines[-1]["loss_D"] < lines[0]["loss_D"] - 0.05


@pytest.mark.slow
@pytest.mark.parametrize("sabotage", [False, True], ids=["correct", "swapped-labels"])
def test_learning_is_measured(fw, tmp_path, monkeypatch, sabotage):
    b = BACKENDS[fw]
    if sabotage:  # the classic bug: real and fake labels swapped everywhere
        real_loss = b.train.loss
        monkeypatch.setattr(b.train, "loss", lambda logits, y: real_loss(logits, 1 - y))
    config = TrainConfig().replace(**{**SMALL, "n_G": 8, "num_images": 512, "batch_size": 32,
                                      "lr": 0.002, "epochs": 3, "log_every": 4, "eval": False, "out": str(tmp_path)})
    b.train.train(config, progress=False)
    assert learned(tmp_path) is (not sabotage), read_metrics(tmp_path)[-1]


@pytest.mark.slow
def test_a_short_run_on_shapes_lowers_its_swd(tmp_path):
    # One framework (the quality measure is common code; the other tests show the three train
    # alike): 96 steps at 16x16, measured every 16. Measured on shapes-v3, seed 3, MXNet (the
    # QUICKEST where installed): 269 -> 85 in 9.3 s; at lr 0.001 and 192 steps 273 -> 94 in 16.6 s.
    if QUICKEST is None:
        pytest.skip("no framework installed")
    fw = QUICKEST
    config = TrainConfig().replace(image_size=16, n_G=32, n_D=32, num_images=1024, batch_size=64, lr=0.002,
                                   epochs=6, seed=3, eval_samples=256, out=str(tmp_path))
    BACKENDS[fw].train.train(config, progress=False)
    swd = [m["swd"] for m in read_metrics(tmp_path)]
    assert len(swd) == 6 and swd[0] > 200  # after 16 steps: far from the data (uniform noise ~227 at 16x16)
    assert swd[-1] < 0.6 * swd[0] and swd[-1] < 130, swd


@pytest.mark.slow
def test_bf16_trains_in_pytorch_and_tensorflow_and_is_one_line_in_mxnet(fw, tmp_path, capsys, monkeypatch):
    bf16 = small_config(tmp_path / "bf16", precision="bf16", max_steps=3, log_every=1, eval=False)
    monkeypatch.setattr(common.run, "native_bf16", lambda: False)  # a CPU that emulates bfloat16
    if fw == "mx":
        code = run_main(BACKENDS[fw].train.main, config_argv(bf16) + ["--out", bf16.out, "--no-progress"])
        one_line_error(capsys, 2, code, "--precision bf16 is not supported by the")
        assert not (tmp_path / "bf16").exists()  # refused before anything was written
        return
    fp32 = bf16.replace(precision="fp32", out=str(tmp_path / "fp32"))
    summaries = [BACKENDS[fw].train.train(config, progress=False) for config in (bf16, fp32)]
    # bf16 on a CPU without bfloat16 instructions is warned of, once, and recorded; fp32 is not
    assert [[w["kind"] for w in s["warnings"]] for s in summaries] == [["bf16_emulated"], []]
    assert capsys.readouterr().err.count("warning: --precision bf16 on a CPU without bfloat16") == 1
    a, b = read_metrics(bf16.out), read_metrics(fp32.out)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["config"]["precision"] == "bf16"
    # The same start: step 1's losses differ by bfloat16 rounding only (measured: loss_D 1.6e-4
    # PyTorch, 0.9e-4 TensorFlow; loss_G 1.0e-3 and 1.5e-4). loss_G is taken against D after its
    # update: PyTorch's autocast cache, left on, gave G the bfloat16 copies of D's weights from
    # before it (loss_G 0.15 off here, 2.2 at widths 16).
    assert 0 < abs(a[0]["loss_D"] - b[0]["loss_D"]) < 0.005 and abs(a[0]["loss_G"] - b[0]["loss_G"]) < 0.01
    assert all(np.isfinite(m["loss_G"]) for m in a)


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert common.run.native_bf16(str(cpuinfo)) is False  # AVX2 only: emulated
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert common.run.native_bf16(str(cpuinfo)) is True
    cpuinfo.write_text("processor\t: 0\n")  # no flags line (another architecture's format)
    assert common.run.native_bf16(str(cpuinfo)) is None
    assert common.run.native_bf16(str(tmp_path / "missing")) is None


def test_the_cpu_model_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9454 48-Core Processor\n")
    assert common.run.cpu_model(str(cpuinfo)) == "AMD EPYC 9454 48-Core Processor"
    assert common.run.cpu_model(str(tmp_path / "missing"))  # elsewhere: what platform says, never empty


def optimizer_rate(fw, opt) -> float:
    """The learning rate a framework's optimizer holds (each keeps it its own way)."""
    if fw == "torch":
        return opt.param_groups[0]["lr"]
    if fw == "tf":
        return float(opt.learning_rate.numpy())
    return opt.learning_rate  # a Gluon Trainer


@pytest.mark.slow
def test_separate_learning_rates_reach_the_optimizers(fw, tmp_path, monkeypatch):
    b = BACKENDS[fw]
    made = []
    real = b.train.make_optimizers

    def make_optimizers(G, D, lr_G, lr_D, *rest):
        made.append(real(G, D, lr_G, lr_D, *rest))
        return made[-1]

    monkeypatch.setattr(b.train, "make_optimizers", make_optimizers)
    config = small_config(tmp_path / "run", lr=0.002, lr_G=0.0003, max_steps=1, eval=False)  # --lr-g, and --lr for D
    run_main(b.train.main, config_argv(config) + ["--out", config.out, "--no-progress"])
    (opt_G, opt_D), = made
    assert optimizer_rate(fw, opt_G) == pytest.approx(0.0003) and optimizer_rate(fw, opt_D) == pytest.approx(0.002)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (saved["lr"], saved["lr_G"], saved["lr_D"]) == (0.002, 0.0003, None)
    # --resume checks them as part of the config: another rate for D is another run
    code = run_main(b.train.main, config_argv(config.replace(lr_D=0.001)) + ["--out", config.out, "--resume"])
    assert code == 2


# Each backend's switch for a net's weight gradients: (its state per parameter, the state when frozen).
GRADIENT_SWITCH = {"torch": (lambda net: [p.requires_grad for p in net.parameters()], False),
                   "mx": (lambda net: [p.grad_req for p in net.collect_params().values()], "null")}


@pytest.mark.parametrize("name", [n for n in GRADIENT_SWITCH if n in BACKENDS])
def test_the_g_step_computes_no_weight_gradients_for_d(name, monkeypatch):
    """loss_G's backward reaches G through D without D's weight gradients, which
    the G step would throw away (TensorFlow's tape is asked for G's alone)."""
    from common.spec import ModelSpec
    from common.weights import init_weights
    b, (switches, frozen) = BACKENDS[name], GRADIENT_SWITCH[name]
    spec = ModelSpec(n_G=8, n_D=8, image_size=16)
    G, D = b.generator(spec, init_weights(spec, 0)), b.discriminator(spec, init_weights(spec, 1))
    opt_G, opt_D = b.train.make_optimizers(G, D, 0.001, 0.001)
    step = b.train.compile_step(G, D, opt_G, opt_D)
    before, during = switches(D), []
    real = b.train.generator_loss

    def generator_loss(D_, fake):  # D's switches as the G step sees them
        during.append(switches(D))
        return real(D_, fake)

    monkeypatch.setattr(b.train, "generator_loss", generator_loss)
    weight_gradients = []  # PyTorch: one per D parameter and backward that computes it
    if name == "torch":
        for p in D.parameters():
            p.register_hook(lambda g: weight_gradients.append(1))
    X = b.to_tensor(np.zeros(spec.input_shape("D", 4, "NCHW"), np.float32))
    Z = b.to_tensor(sample_noise(0, 4, spec.latent_dim))
    for _ in range(2):
        metrics = step(X, Z)
    assert all(np.isfinite(float(b.to_numpy(v))) for v in metrics.values())
    assert switches(D) == before  # restored after each step: BN's statistics keep grad_req "null" in Gluon
    assert during == [[frozen] * len(before)] * 2  # D frozen for the G step, in each step
    if name == "torch":
        assert len(weight_gradients) == 2 * len(before)  # the D step's, in each of the two steps


needs_torch = pytest.mark.skipif("torch" not in BACKENDS, reason="PyTorch is not installed")


@needs_torch
@pytest.mark.parametrize("transposed,stride,padding,size", [
    (False, 2, 1, (8, 9)), (True, 2, 1, (4, 5)), (False, 1, 0, (4, 4)), (True, 1, 0, (1, 2))],
    ids=["conv", "transposed", "conv-to-1x1", "transposed-from-1x1"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_pytorch_weight_gradient_as_one_matrix_product_is_the_convolutions_own(
        transposed, stride, padding, size, channels_last):
    """bf16 on the CPU computes small maps' weight gradients as one matrix
    product (dcgan_torch.train._GemmWeightGradient): the same output and
    gradients as PyTorch's convolution, to float64 rounding."""
    import torch
    from dcgan_torch.train import _GemmWeightGradient
    torch.manual_seed(0)
    F = torch.nn.functional
    X = torch.randn(3, 6, *size, dtype=torch.float64)
    W = torch.randn(*((6, 5) if transposed else (5, 6)), 4, 4, dtype=torch.float64)
    if channels_last:
        X, W = X.contiguous(memory_format=torch.channels_last), W.contiguous(memory_format=torch.channels_last)
    X.requires_grad_(True), W.requires_grad_(True)
    Y = (F.conv_transpose2d if transposed else F.conv2d)(X, W, stride=stride, padding=padding)
    dY = torch.randn_like(Y)
    expected = torch.autograd.grad(Y, (X, W), dY)
    Y2 = _GemmWeightGradient.apply(X, W, transposed, stride, padding)
    torch.testing.assert_close(Y2, Y, rtol=0, atol=0)
    for got, want in zip(torch.autograd.grad(Y2, (X, W), dY), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    dW, = torch.autograd.grad(_GemmWeightGradient.apply(X.detach(), W, transposed, stride, padding), (W,), dY)
    torch.testing.assert_close(dW, expected[1], rtol=1e-12, atol=1e-12)  # no input gradient asked for


@pytest.fixture
def gemm_calls(monkeypatch):
    """The weight shape of every call to dcgan_torch.train._GemmWeightGradient, in order."""
    import dcgan_torch.train as train
    real, calls = train._GemmWeightGradient, []

    class Recorder:
        @staticmethod
        def apply(X, W, *args):
            calls.append(tuple(W.shape))
            return real.apply(X, W, *args)

    monkeypatch.setattr(train, "_GemmWeightGradient", Recorder)
    return calls


@needs_torch
def test_pytorch_bf16_takes_the_matrix_product_for_the_4x4_maps_only(gemm_calls):
    """Under --precision bf16 on the CPU, the layers whose weight gradient sums
    over a 4x4 map or less (at 16x16: G's first two, D's last two) go through
    _GemmWeightGradient, in every pass; fp32 goes through none. The gradients
    agree with autocast's own to bfloat16 rounding."""
    import torch
    import dcgan_torch.train as train
    from common.spec import ModelSpec
    from common.weights import init_weights
    b, spec, calls = BACKENDS["torch"], ModelSpec(n_G=16, n_D=8, image_size=16), gemm_calls
    X = b.to_tensor(np.random.default_rng(0).uniform(-1, 1, spec.input_shape("D", 8, "NCHW")).astype(np.float32))
    Z = b.to_tensor(sample_noise(0, 8, spec.latent_dim))

    def nets():
        return b.generator(spec, init_weights(spec, 0)), b.discriminator(spec, init_weights(spec, 1))

    for precision in ("fp32", "bf16"):
        G, D = nets()
        calls.clear()
        train.compile_step(G, D, *b.train.make_optimizers(G, D, 0.001, 0.001), precision)(X, Z)
        small = [(l.in_channels, l.out_channels) for l in spec.generator_layers()[:2]]  # (in, out, k, k)
        small += [(l.out_channels, l.in_channels) for l in spec.discriminator_layers()[-2:]]  # (out, in, k, k)
        expected = {} if precision == "fp32" else {(*s, 4, 4): n for s, n in zip(small, (1, 1, 3, 3))}
        assert {shape: calls.count(shape) for shape in calls} == expected  # D: real, fake, then the G step

    def gradients(gemm):
        G, D = nets()
        if gemm:
            train._gemm_small_map_weight_gradients(G, D)
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            return train.losses_and_gradients(G, D, X, Z)

    (losses, got), (want_losses, want) = gradients(True), gradients(False)
    assert calls and losses == want_losses
    for name in want:
        error = np.linalg.norm(got[name] - want[name]) / np.linalg.norm(want[name])
        assert error < 0.02, (name, error)  # bfloat16 carries 8 bits: ~0.004 per rounding


@needs_torch
def test_pytorch_small_map_route_leaves_everything_else_to_the_module(gemm_calls):
    """The route is taken once however often it is given, and only for a
    float32/bfloat16 batch under bfloat16 autocast: float64, float16 autocast
    and ConvTranspose2d's output_size get the module's own forward."""
    import torch
    import dcgan_torch.train as train
    conv, calls = torch.nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), gemm_calls
    own = copy.deepcopy(conv)
    train._gemm_small_map_weight_gradients(conv)
    train._gemm_small_map_weight_gradients(conv)
    assert conv.forward.func is train._small_map_forward and conv.forward.args[1].__self__ is conv  # wrapped once
    X = torch.randn(2, 8, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        assert conv(X).dtype == own(X).dtype == torch.bfloat16 and calls == [(8, 4, 4, 4)]
        assert conv(X, output_size=[9, 9]).shape == own(X, output_size=[9, 9]).shape == (2, 4, 9, 9)
        conv.double(), own.double()
        assert conv(X.double()).dtype == own(X.double()).dtype
        conv.float(), own.float()
    with torch.autocast("cpu", dtype=torch.float16):
        assert conv(X).dtype == own(X).dtype == torch.float16
    assert calls == [(8, 4, 4, 4)]


needs_tf = pytest.mark.skipif("tf" not in BACKENDS, reason="TensorFlow is not installed")


@needs_tf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tensorflow_fused_batch_norm_is_keras_own(dtype):
    """dcgan_tf.model._BatchNormalization trains through TensorFlow's fused
    kernel (float32) and otherwise is Keras's layer: the same outputs,
    gradients and moving statistics as keras.layers.BatchNormalization, to
    float32 rounding (float64 takes Keras's own ops: exactly)."""
    from dcgan_tf.compat import keras, tf
    from dcgan_tf.model import BN_EPSILON, BN_MOMENTUM, _BatchNormalization
    rng = np.random.default_rng(0)
    X = tf.constant(rng.normal(0.3, 2.0, (16, 5, 5, 6)), dtype)
    dY = tf.constant(rng.normal(0.0, 1.0, X.shape), dtype)
    layers = [cls(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)
              for cls in (_BatchNormalization, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.build(X.shape)
        for i, v in enumerate((layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)):
            v.assign(np.random.default_rng(i).uniform(0.5, 1.5, 6))
    got = []
    for layer in layers:
        with tf.GradientTape() as tape:
            tape.watch(X)
            Y = layer(X, training=True)
        grads = tape.gradient(Y, [X, layer.gamma, layer.beta], output_gradients=dY)
        got.append([Y, *grads, layer.moving_mean, layer.moving_variance, layer(X, training=False)])
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=0, atol=0)
    for fused, own in zip(*got):
        np.testing.assert_allclose(np.asarray(fused), np.asarray(own), **tol)


@needs_tf
def test_tensorflow_step_runs_the_fused_kernel_in_float32_and_bf16():
    """The speed path is the one taken: the compiled step's graph holds
    FusedBatchNormV3 and its gradient in float32 and bf16, and Keras's own
    ops in float64 (the fused kernel has no float64)."""
    from common.spec import ModelSpec
    from common.weights import init_weights
    from dcgan_tf import train
    from dcgan_tf.compat import tf
    b, spec = BACKENDS["tf"], ModelSpec(n_G=8, n_D=8, image_size=16)
    for dtype, precision in (("float32", "fp32"), ("float32", "bf16"), ("float64", "fp32")):
        G, D = b.generator(spec, init_weights(spec, 0), dtype), b.discriminator(spec, init_weights(spec, 1), dtype)
        step = train.compile_step(G, D, *train.make_optimizers(G, D, 0.001, 0.001), precision)
        X, Z = tf.zeros((4, 16, 16, 3), dtype), tf.zeros((4, 1, 1, spec.latent_dim), dtype)
        ops = {op.type for op in step.get_concrete_function(X, Z).graph.get_operations()}
        fused = {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops
        assert fused == (dtype == "float32"), (dtype, precision, sorted(o for o in ops if "Norm" in o))


def test_bf16_needs_float32():
    with pytest.raises(UsageError, match="bf16 needs --dtype float32"):
        TrainConfig().replace(precision="bf16", dtype="float64")


# -- sampling across frameworks ------------------------------------------------------

SAMPLE_ATOL = 1e-4  # inference-mode G on the same weights: float32 kernels differ by ~1e-7


@pytest.mark.cross_framework
def test_every_framework_samples_every_generator_npz(trained):
    Z = sample_noise(7, 6, small_config("x").spec.latent_dim)
    for source, (out, _) in trained.items():
        arrays, spec = load_weights(out / "generator.npz", nets=("G",))
        images = {name: generate(b, b.generator(spec, arrays), Z) for name, b in BACKENDS.items()}
        ref = images[source]
        assert ref.shape == (6, 3, 16, 16) and np.abs(ref).max() > 0.01  # not blank
        for name, y in images.items():
            np.testing.assert_allclose(y, ref, rtol=0, atol=SAMPLE_ATOL, err_msg=f"{name} on {source}'s weights")


def test_sample_cli_writes_grid_npy_and_walks(fw, trained, tmp_path, capsys):
    source = next(iter(trained))
    npz = trained[source][0] / "generator.npz"
    sample = lambda *a: BACKENDS[fw].sample.main(["--weights", str(npz), *map(str, a)])
    assert sample("--num", 10, "--seed", 1, "--out", tmp_path / "g.png", "--npy", tmp_path / "s.npy") == 0
    images = np.load(tmp_path / "s.npy")
    assert images.dtype == np.float32 and images.shape == (10, 3, 16, 16)
    assert images.min() >= -1 and images.max() <= 1
    with Image.open(tmp_path / "g.png") as img:
        assert img.size == (4 * (4 * 18 + 2), 4 * (3 * 18 + 2))  # 10 images: 4 columns, 3 rows
    # Same seed, same images: compare with the adapter's own generate().
    arrays, spec = load_weights(npz)
    b = BACKENDS[fw]
    expected = generate(b, b.generator(spec, arrays), sample_noise(1, 10, spec.latent_dim))
    np.testing.assert_allclose(images, expected, rtol=0, atol=SAMPLE_ATOL)
    assert sample("--num", 2, "--interpolate", 5, "--out", tmp_path / "w.png", "--npy", tmp_path / "w.npy") == 0
    w = np.load(tmp_path / "w.npy")
    assert w.shape == (10, 3, 16, 16)
    # A walk moves smoothly: neighbours differ less than its two ends do.
    step = np.abs(w[1] - w[0]).mean()
    assert step < np.abs(w[4] - w[0]).mean()
    assert "10 images from" in capsys.readouterr().out


# -- bad input: one line, status 2, nothing touched --------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--lr", "-1"], "lr must be a finite number > 0"),
    (["--lr", "inf"], "lr must be a finite number > 0"),
    (["--lr-d", "nan"], "lr_D must be a finite number > 0"),
    (["--seed", "-1"], "seed must be a non-negative integer"),
    (["--image-size", "48"], "image_size must be a power of two"),
    (["--data", "cifar"], "invalid choice: 'cifar'"),
    (["--data", "folder"], "--data folder needs --data-dir"),
    (["--data-dir", "."], "--data-dir is read only with --data folder"),
    (["--data", "folder", "--data-dir", "/nonexistent/dir"], "--data-dir /nonexistent/dir is not a directory"),
    (["--data", "pokemon", "--data-url", "some/plain/path"], "--data-url must be a URL"),
    (["--resume"], "holds no run to resume"),
    (["--batch-size", "64", "--num-images", "10"], "larger than the dataset"),
])
def test_bad_training_input(fw, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    one_line_error(capsys, 2, run_main(BACKENDS[fw].train.main, ["--out", out, *args]), message)
    assert not out.exists()


def test_out_with_another_run_is_refused_and_untouched(fw, trained, capsys):
    out = trained[fw][0]
    before = snapshot(out)
    train = BACKENDS[fw].train.main
    one_line_error(capsys, 2, train(["--out", str(out), "--image-size", "32", "--lr", "0.001"]),
                   "holds a run with a different config")
    one_line_error(capsys, 2, train(["--out", str(out), "--image-size", "64", "--n-g", "16", "--n-d", "8",
                                     "--resume"]), "--resume:")
    assert snapshot(out) == before


def test_bad_weights_for_sample(fw, tmp_path, trained, capsys):
    good = (trained[next(iter(trained))][0] / "generator.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 3])
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    for name, message in (("cut.npz", "not a readable .npz"), ("foreign.npz", "not a canonical DCGAN"),
                          ("absent.npz", "no such file")):
        code = BACKENDS[fw].sample.main(["--weights", str(tmp_path / name), "--out", str(tmp_path / "g.png")])
        one_line_error(capsys, 2, code, message)
    assert not (tmp_path / "g.png").exists()
