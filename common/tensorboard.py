"""Opt-in TensorBoard logging for a run: a callback (docs/design.md §9) that
writes the same tags whichever framework trained.

    from common.tensorboard import TensorBoard
    callbacks.append(TensorBoard("runs/tb/torch"))   # then: tensorboard --logdir runs/tb

Lay the directories out as `<dir>/<framework>` (runs/tb/torch, runs/tb/tf,
runs/tb/mx): TensorBoard shows each directory as one run, so the three
frameworks' curves sit side by side under the same tags. Each event file's
name also ends in the framework (`events.out.tfevents.<time>.<host>.<pid>.<n>.torch`),
and a `framework` text tag says it too.

What is written, and at which step:

    loss/D, loss/G            scalars of each metrics line (on_log), at line["step"]
    D/real, D/fake            the line's d_real, d_fake: mean sigmoid D(x) on real and generated images
    examples_per_sec          the line's speed (left out when it is not finite)
    quality/swd               the image-quality numbers, on the lines that measured them
    quality/diversity         (common.quality): SWD to the real images (lower is better), the
    quality/contrast          samples' diversity and contrast relative to the data's, and for
    quality/judge_recognised  the built-in shapes the judge's share recognised and its Frechet
    quality/judge_fd          distance
    samples                   image: the 3x7 grid of G on the fixed noise (on_epoch_end), at run.step
    config                    text: the JSON of run.config.to_dict(), at the first hook, at run.step
    framework                 text: run.framework, with the config

SCALARS maps a line's keys to tags, and is the one list: a line's other keys
(kind, epoch, judge_kinds) are not scalars to plot, and a key a line lacks, or
whose value is not a finite number (None, a dict), is skipped. Add a metric
there to log it.

Resuming: a resumed run appends a new event file to the same directory and
logs from its start step. It first writes a SessionLog START at the step
after the checkpoint's: TensorBoard's event accumulator (purge_orphaned_data,
on by default) then drops what the run before logged past its checkpoint
(the steps metrics.jsonl drops too), so the curves go on without a zig-zag.

Framework-free and dependency-free: the event files are TFRecords of
`tensorboard` Event protos, encoded here (protobuf's wire format, CRC-32C
framing), with Pillow (already a dependency) for the PNG. tensorboardX is not
used: importing it imports PyTorch (`tensorboardX.writer` tries
`import torch` at import time), which a TensorFlow or MXNet run must not load
(the import-order hazard of test_imports.py), and would cost seconds.
Each hook's records are flushed to the file when it returns, so a run that
stops without on_train_end (a second Ctrl-C, a crash) loses nothing
already logged.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import socket
import struct
import textwrap
import time
from pathlib import Path

import numpy as np

from common.callbacks import SAMPLE_COLS, SAMPLE_ROWS, Callback
from common.errors import UsageError
from common.files import write_error

# A metrics line's key -> its scalar tag. Every line carries the first five;
# the quality measures (common.quality.Evaluator) only the lines that measured them.
SCALARS = {
    "loss_D": "loss/D",
    "loss_G": "loss/G",
    "d_real": "D/real",
    "d_fake": "D/fake",
    "examples_per_sec": "examples_per_sec",
    "swd": "quality/swd",
    "diversity": "quality/diversity",
    "contrast": "quality/contrast",
    "judge_recognised": "quality/judge_recognised",
    "judge_fd": "quality/judge_fd",
}
SAMPLES_TAG, CONFIG_TAG, FRAMEWORK_TAG = "samples", "config", "framework"
FILE_VERSION = "brain.Event:2"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_opened = itertools.count()  # two writers in one process, one second: distinct, ordered file names


class TensorBoard(Callback):
    """Writes a run's metrics, sample grids and config as TensorBoard events
    into `log_dir` (created at the first hook). See the module's docstring
    for the tags; `path` is the event file being written (None before the
    first hook and after on_train_end)."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir).expanduser()
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise UsageError(f"--tensorboard {self.log_dir} is a file; name a directory for the event files")
        self.path, self._file = None, None

    # -- the hooks ----------------------------------------------------------------

    def on_epoch_begin(self, run, epoch, start):
        self._open(run)

    def on_log(self, run, line):
        self._open(run)
        values = [_scalar_value(tag, float(line[key])) for key, tag in SCALARS.items()
                  if _is_number(line.get(key)) and _fits_float32(float(line[key]))]
        if values:
            self._write(_event(int(line["step"]), summary=b"".join(values)))
        self._flush()

    def on_epoch_end(self, run, epoch, samples):
        from common.viz import grid

        self._open(run)
        image = grid(np.asarray(samples, np.uint8), SAMPLE_ROWS, SAMPLE_COLS)
        self._write(_event(run.step, summary=_image_value(SAMPLES_TAG, image)))
        self._flush()

    def on_train_end(self, run, summary):
        self.close()

    def close(self) -> None:
        """Flush and close the event file; a later hook starts a new one."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError as e:
                raise write_error(self.path, e) from None
            finally:
                self._file, self.path = None, None

    # -- the file -----------------------------------------------------------------

    def _open(self, run) -> None:
        """At the first hook: a new event file, then the restart mark and the
        run's config and framework, at its start step."""
        if self._file is not None:
            return
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}."
                f"{next(_opened)}.{run.framework}")
        path = self.log_dir / name
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "xb")
        except OSError as e:
            raise write_error(path, e) from None
        self.path = path
        start = int(run.step)
        self._write(_event(0, file_version=FILE_VERSION.encode()))
        # Everything after the step resumed from (0: a fresh run, all of it) was
        # logged by an earlier invocation past its checkpoint: TensorBoard drops it.
        self._write(_event(start + 1 if start else 0, session_log=_field_varint(1, 1)))  # status START
        config = json.dumps(run.config.to_dict(), indent=2, sort_keys=True)
        # Indented four spaces: a Markdown code block in TensorBoard, and still JSON.
        self._write(_event(start, summary=_text_value(CONFIG_TAG, textwrap.indent(config, "    "))
                           + _text_value(FRAMEWORK_TAG, str(run.framework))))
        self._flush()

    def _write(self, event: bytes) -> None:
        header = struct.pack("<Q", len(event))
        record = header + struct.pack("<I", masked_crc32c(header)) + event + struct.pack("<I", masked_crc32c(event))
        try:
            self._file.write(record)
        except OSError as e:
            raise write_error(self.path, e) from None

    def _flush(self) -> None:
        try:
            self._file.flush()
        except OSError as e:
            raise write_error(self.path, e) from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fits_float32(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= _FLOAT32_MAX


# -- TFRecord framing: length, masked CRC-32C of it, data, masked CRC-32C of it ---------

def _crc32c_table() -> tuple:
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
        table.append(n)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
    crc, table = 0xFFFFFFFF, _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# -- protobuf wire format, the few fields of tensorboard's Event that are written -------
#
# Event {double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
#        SessionLog session_log = 7}
# Summary {repeated Value value = 1}
# Value {string tag = 1; float simple_value = 2; Image image = 4; TensorProto tensor = 8;
#        SummaryMetadata metadata = 9}
# Image {int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4}
# SummaryMetadata {PluginData plugin_data = 1 {string plugin_name = 1; bytes content = 2};
#                  DataClass data_class = 4}
# TensorProto {DataType dtype = 1; TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8}
# SessionLog {SessionStatus status = 1}

DT_STRING, DATA_CLASS_TENSOR = 7, 2
COLORSPACE = {1: 1, 3: 3, 4: 4}  # channels -> Summary.Image colorspace (grey, RGB, RGBA)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative int64 is its two's complement
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _event(step: int, *, summary: bytes = None, file_version: bytes = None, session_log: bytes = None) -> bytes:
    out = _varint(1 << 3 | 1) + struct.pack("<d", time.time()) + _field_varint(2, step)
    if file_version is not None:
        out += _field_bytes(3, file_version)
    if summary is not None:
        out += _field_bytes(5, summary)
    if session_log is not None:
        out += _field_bytes(7, session_log)
    return out


def _value(tag: str, body: bytes) -> bytes:
    """One Summary.value entry (Summary's field 1)."""
    return _field_bytes(1, _field_bytes(1, tag.encode()) + body)


def _scalar_value(tag: str, value: float) -> bytes:
    return _value(tag, _varint(2 << 3 | 5) + struct.pack("<f", value))


def _image_value(tag: str, image: np.ndarray) -> bytes:
    from PIL import Image

    height, width, channels = image.shape
    png = io.BytesIO()
    Image.fromarray(image[..., 0] if channels == 1 else image).save(png, format="PNG")
    body = (_field_varint(1, height) + _field_varint(2, width) + _field_varint(3, COLORSPACE[channels])
            + _field_bytes(4, png.getvalue()))
    return _value(tag, _field_bytes(4, body))


def _text_value(tag: str, text: str) -> bytes:
    """The text plugin's form: a scalar string tensor, plugin_name "text"."""
    metadata = _field_bytes(1, _field_bytes(1, b"text")) + _field_varint(4, DATA_CLASS_TENSOR)
    tensor = _field_varint(1, DT_STRING) + _field_bytes(2, b"") + _field_bytes(8, text.encode())
    return _value(tag, _field_bytes(9, metadata) + _field_bytes(8, tensor))
