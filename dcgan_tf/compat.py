"""Import TensorFlow quietly; every module of this backend imports `tf` and
`keras` from here and never imports tensorflow directly.

TensorFlow 2.21 writes a few lines of C++ logging to stderr while it loads
("All log messages before absl::InitializeLog()...", oneDNN and CUDA notices)
that TF_CPP_MIN_LOG_LEVEL does not reach, and more when it first looks for
devices ("failed call to cuInit" on a machine without a GPU). They would bury the one-line errors
and the progress bar of this project's commands, so file descriptor 2 is
pointed at a temporary file for the import and device discovery only; if the import fails, what was
captured is written back to stderr. Set TF_CPP_MIN_LOG_LEVEL=0 to see it all.

Keras 3 must run on TensorFlow here: KERAS_BACKEND is set before keras loads.
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"


def _import_quietly():
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
            tensorflow.config.list_physical_devices()  # device discovery logs too (cuInit on CPU-only hosts)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow


tf = _import_quietly()
keras = tf.keras

__all__ = ["tf", "keras"]
