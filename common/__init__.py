"""Framework-free parts shared by the three backends: spec, weights, data, CLI, tools.

Nothing under `common` imports PyTorch, TensorFlow or MXNet.
"""
