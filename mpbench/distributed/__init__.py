"""Distributed training through PyTorch's own engine: torchrun, DDP and FSDP2.

Light on purpose: nothing here may import torch.distributed at package import time
(the suite's `parallel:` schema is data in `mpbench.config.parallel`).
"""
