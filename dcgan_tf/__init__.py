"""DCGAN in TensorFlow/Keras (NHWC). Modules: model (G_block, D_block, nets), weights (canonical npz).

In a process that also uses PyTorch or MXNet, import this package last (README).
"""
