"""DCGAN in PyTorch (NCHW). Modules: model (G_block, D_block, nets), weights (canonical npz)."""
