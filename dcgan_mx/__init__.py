"""DCGAN in MXNet Gluon (NCHW). Modules: model (G_block, D_block, nets), weights (canonical npz),
compat (imports MXNet 1.9.1 on NumPy 1.26)."""
