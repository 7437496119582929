"""TensorBoard logging (common.tensorboard): the event files are read back
record by record (TFRecord framing, each CRC checked) and decoded with
tensorboardX's Event proto, a decoder independent of the writer; where
TensorFlow is installed its own record reader reads them too. The callback is
driven directly with a stand-in run, and by a real short training run in each
installed framework."""

import io
import json
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import common.run
from common.backends import quiet_env
from common.config import TrainConfig
from common.errors import UsageError
from common.rundir import read_metrics
from common.tensorboard import SCALARS, TensorBoard
from common.viz import grid
from helpers import BACKENDS

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2", reason="tensorboardX reads the event files back")
from tensorboardX.record_writer import masked_crc32c  # noqa: E402  (the reader's own CRC, not the writer's)

BASE_TAGS = {"loss/D", "loss/G", "D/real", "D/fake", "examples_per_sec"}
DEFAULT_CALLBACKS = common.run.default_callbacks  # before any test patches it
TINY = dict(image_size=16, n_G=8, n_D=8, num_images=64, batch_size=16, epochs=2, log_every=2, eval_samples=64)  # 4 steps an epoch


# -- reading the events back -----------------------------------------------------------------------

def read_records(path: Path) -> list[bytes]:
    """A TFRecord file's records: 8-byte length, its masked CRC-32C, the data, the data's."""
    data, records, i = path.read_bytes(), [], 0
    while i < len(data):
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8:i + 12])[0] == masked_crc32c(header), f"{path}: header CRC"
        body = data[i + 12:i + 12 + length]
        assert len(body) == length, f"{path}: a record cut short"
        assert struct.unpack("<I", data[i + 12 + length:i + 16 + length])[0] == masked_crc32c(body), f"{path}: CRC"
        records.append(body)
        i += 16 + length
    return records


def event_files(log_dir) -> list[Path]:
    return sorted(Path(log_dir).glob("events.out.tfevents.*"))  # name order: TensorBoard's


def read_events(log_dir) -> list:
    """Every event, file by file in TensorBoard's order, as TensorBoard keeps them: a
    SessionLog START at step s drops what came before it at steps >= s (a restart)."""
    kept = []
    for path in event_files(log_dir):
        events = [event_pb2.Event.FromString(r) for r in read_records(path)]
        assert events[0].file_version == "brain.Event:2"
        for event in events:
            if event.WhichOneof("what") == "session_log" and event.session_log.status == event_pb2.SessionLog.START:
                kept = [e for e in kept if e.step < event.step]
            kept.append(event)
    return kept


def values(events, kind: str) -> dict:
    """tag -> [(step, value)] for one kind of summary value: simple_value, image or tensor."""
    out = {}
    for event in events:
        for v in event.summary.value:
            if v.WhichOneof("value") == kind:
                out.setdefault(v.tag, []).append((event.step, getattr(v, kind)))
    return out


def texts(events) -> dict:
    return {tag: [(step, t.string_val[0].decode()) for step, t in found]
            for tag, found in values(events, "tensor").items()}


def png(image_summary) -> np.ndarray:
    with Image.open(io.BytesIO(image_summary.encoded_image_string)) as img:
        array = np.asarray(img)
    return array[..., None] if array.ndim == 2 else array


def f32(x) -> float:
    return float(np.float32(x))


def stand_in(step=0, framework="torch", **config):
    return types.SimpleNamespace(step=step, framework=framework,
                                 config=TrainConfig().replace(**{**TINY, "seed": 5, **config}))


def line(step, kind="step", **extra):
    rng = np.random.default_rng(step)
    return {"kind": kind, "step": step, "epoch": 1, "loss_D": float(rng.uniform(0, 2)),
            "loss_G": float(rng.uniform(0, 5)), "d_real": float(rng.uniform()), "d_fake": float(rng.uniform()),
            "examples_per_sec": float(rng.uniform(100, 5000)), **extra}


# -- the callback, driven directly ------------------------------------------------------------------

def test_each_line_is_scalars_at_its_step(tmp_path):
    run, board = stand_in(), TensorBoard(tmp_path)
    lines = [line(2), line(4, "epoch", swd=0.125, diversity=0.9, contrast=1.1, judge_recognised=0.5,
                          judge_fd=None, judge_kinds={"circle": 3}),
             line(6, note="words", swd=np.float64(0.0625)), line(8, "epoch", examples_per_sec=float("inf"))]
    board.on_epoch_begin(run, 1, 0)
    for m in lines:
        board.on_log(run, m)
    board.on_train_end(run, {})
    scalars = values(read_events(tmp_path), "simple_value")
    expected = {}
    for m in lines:
        for key, tag in SCALARS.items():
            if isinstance(m.get(key), (float, np.floating)) and np.isfinite(m[key]):
                expected.setdefault(tag, []).append((m["step"], f32(m[key])))
    assert scalars == expected
    assert set(scalars) == BASE_TAGS | {"quality/swd", "quality/diversity", "quality/contrast",
                                        "quality/judge_recognised"}
    assert [s for s, _ in scalars["quality/swd"]] == [4, 6]
    assert [s for s, _ in scalars["examples_per_sec"]] == [2, 4, 6]  # inf left out
    assert board.path is None and len(event_files(tmp_path)) == 1  # closed at on_train_end


@pytest.mark.parametrize("channels", [3, 1])
def test_the_sample_grid_is_one_image_at_the_runs_step(tmp_path, channels):
    run, board = stand_in(step=4), TensorBoard(tmp_path)
    samples = np.random.default_rng(channels).integers(0, 256, (21, 16, 16, channels), dtype=np.uint8)
    board.on_epoch_end(run, 1, samples)
    run.step = 8
    board.on_epoch_end(run, 2, samples[::-1].copy())
    images = values(read_events(tmp_path), "image")
    assert list(images) == ["samples"] and [s for s, _ in images["samples"]] == [4, 8]
    for (_, image), batch in zip(images["samples"], (samples, samples[::-1])):
        expected = grid(batch, 3, 7)
        assert (image.height, image.width) == expected.shape[:2] == (3 * 18 + 2, 7 * 18 + 2)
        assert image.colorspace == channels
        np.testing.assert_array_equal(png(image), expected)  # PNG: exactly the grid


def test_config_and_framework_text_once_at_the_first_hook(tmp_path):
    run, board = stand_in(framework="mx"), TensorBoard(tmp_path / "tb" / "mx")
    board.on_epoch_begin(run, 1, 0)
    board.on_log(run, line(2))
    board.on_epoch_end(run, 1, np.zeros((21, 16, 16, 3), np.uint8))
    board.on_train_end(run, {})
    events = read_events(tmp_path / "tb" / "mx")
    found = texts(events)
    assert set(found) == {"config", "framework"}
    assert found["framework"] == [(0, "mx")]
    [(step, text)] = found["config"]
    assert step == 0 and json.loads(text) == json.loads(json.dumps(run.config.to_dict()))
    assert all(row.startswith("    ") for row in text.splitlines())  # a Markdown code block
    for event in events:
        for v in event.summary.value:
            if v.tag in ("config", "framework"):
                assert v.metadata.plugin_data.plugin_name == "text"
    assert event_files(tmp_path / "tb" / "mx")[0].name.endswith(".mx")


def test_a_resumed_run_appends_a_file_and_replaces_what_came_after_its_checkpoint(tmp_path):
    run, first = stand_in(), TensorBoard(tmp_path)
    for step in (2, 4, 6):  # checkpoint at 4 (the epoch end); 6 logged, then killed
        first.on_log(run, line(step))
    run.step = 4
    first.on_epoch_end(run, 1, np.zeros((21, 16, 16, 3), np.uint8))
    first._file.close()  # killed: no on_train_end

    resumed, second = stand_in(step=4), TensorBoard(tmp_path)
    again = [{**line(6), "loss_D": 9.0}, line(8, "epoch")]
    for m in again:
        second.on_log(resumed, m)
    second.on_train_end(resumed, {})

    files = event_files(tmp_path)
    assert len(files) == 2
    starts = [e for e in map(event_pb2.Event.FromString, read_records(files[1]))
              if e.WhichOneof("what") == "session_log"]
    assert [(e.step, e.session_log.status) for e in starts] == [(5, event_pb2.SessionLog.START)]
    events = read_events(tmp_path)
    assert values(events, "simple_value")["loss/D"] == [(2, f32(line(2)["loss_D"])), (4, f32(line(4)["loss_D"])),
                                                         (6, 9.0), (8, f32(again[1]["loss_D"]))]
    assert [s for s, _ in values(events, "image")["samples"]] == [4]  # the checkpoint's grid is kept
    assert [s for s, _ in texts(events)["config"]] == [0, 4]  # each invocation's, at its start step


def test_a_log_dir_that_cannot_be_one_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        TensorBoard(tmp_path / "file")
    board = TensorBoard(tmp_path / "file" / "below")  # found at the first hook, as one line
    with pytest.raises(UsageError, match="cannot write"):
        board.on_epoch_begin(stand_in(), 1, 0)


def test_writing_imports_no_framework_and_no_tensorboardx(tmp_path):
    code = ("import sys, types, numpy as np\n"
            "from common.config import TrainConfig\nfrom common.tensorboard import TensorBoard\n"
            "run = types.SimpleNamespace(step=0, framework='tf', config=TrainConfig())\n"
            f"board = TensorBoard({str(tmp_path)!r})\n"
            "board.on_log(run, {'step': 1, 'loss_D': 1.0, 'loss_G': 1.0, 'd_real': .5, 'd_fake': .5,"
            " 'examples_per_sec': 1.0})\n"
            "board.on_epoch_end(run, 1, np.zeros((21, 8, 8, 3), np.uint8))\nboard.on_train_end(run, {})\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'mxnet', 'tensorboardX', 'tensorboard')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=quiet_env(),
                          timeout=120, cwd=Path(common.run.__file__).parents[1])
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]
    assert values(read_events(tmp_path), "image")["samples"][0][0] == 0


# -- a real training run in each framework ------------------------------------------------------------

def train_with_board(fw, tmp_path, monkeypatch, **overrides):
    board = tmp_path / "tb" / fw  # through the setting --tensorboard fills
    out = tmp_path / "run"
    config = TrainConfig().replace(**{**TINY, "out": str(out), "tensorboard": str(board), **overrides})
    BACKENDS[fw].train.train(config, progress=False)
    return config, out, board


@pytest.mark.slow
def test_a_training_run_logs_the_same_tags_in_every_framework(fw, tmp_path, monkeypatch):
    config, out, board = train_with_board(fw, tmp_path, monkeypatch)
    lines, events = read_metrics(out), read_events(board)
    assert [m["step"] for m in lines] == [2, 4, 6, 8]
    scalars = values(events, "simple_value")
    carried = {tag for m in lines for key, tag in SCALARS.items()
               if isinstance(m.get(key), float) and np.isfinite(m[key])}
    assert set(scalars) == carried and BASE_TAGS <= carried  # tags from the lines alone, not the framework
    for key, tag in SCALARS.items():
        expected = [(m["step"], f32(m[key])) for m in lines if isinstance(m.get(key), float) and np.isfinite(m[key])]
        assert scalars.get(tag, []) == expected, tag
    images = values(events, "image")["samples"]
    assert [s for s, _ in images] == [4, 8]
    for epoch, (_, image) in enumerate(images, 1):
        with Image.open(out / "samples" / f"epoch_{epoch:03d}.png") as saved:  # SampleGrid's, shown 4x
            shown = np.asarray(saved.convert("RGB"))
        assert (image.height, image.width) == (3 * 18 + 2, 7 * 18 + 2)
        np.testing.assert_array_equal(png(image), shown[::4, ::4])
    found = texts(events)
    assert found["framework"] == [(0, fw)]
    assert json.loads(found["config"][0][1]) == json.loads(json.dumps(config.to_dict()))
    assert event_files(board)[0].name.endswith("." + fw)

    if "tf" in BACKENDS:  # TensorFlow's own record reader and Event proto read the same file
        import tensorflow as tf

        theirs = [(e.step, e.WhichOneof("what"), [v.tag for v in e.summary.value])
                  for e in tf.compat.v1.train.summary_iterator(str(event_files(board)[0]))]
        ours = [(e.step, e.WhichOneof("what"), [v.tag for v in e.summary.value])
                for e in map(event_pb2.Event.FromString, read_records(event_files(board)[0]))]
        assert theirs == ours


@pytest.mark.slow
def test_a_resumed_training_run_logs_on_from_its_checkpoint(tmp_path, monkeypatch):
    if not BACKENDS:
        pytest.skip("no framework installed")
    fw = "mx" if "mx" in BACKENDS else next(iter(BACKENDS))  # the quickest to train, where installed
    train_with_board(fw, tmp_path, monkeypatch, max_steps=3)  # stops mid-epoch 1, checkpoint at 3
    _, out, board = train_with_board(fw, tmp_path, monkeypatch, resume=True)
    assert len(event_files(board)) == 2
    lines, events = read_metrics(out), read_events(board)
    assert [m["step"] for m in lines] == [2, 3, 4, 6, 8]
    assert values(events, "simple_value")["loss/G"] == [(m["step"], f32(m["loss_G"])) for m in lines]
    assert [s for s, _ in values(events, "image")["samples"]] == [3, 4, 8]
