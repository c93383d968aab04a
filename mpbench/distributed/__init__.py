"""Distributed training through PyTorch's own engine: torchrun, DDP and FSDP2.

Light on purpose: the suite schema imports `mpbench.distributed.config`, so nothing here
may import torch.distributed at package import time.
"""
