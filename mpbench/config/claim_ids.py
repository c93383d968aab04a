"""The claim ids of ../shared/CLAIMS.md, so suites can name the claims they target."""

CLAIM_IDS: tuple[str, ...] = (
    "speedup-amp",
    "speedup-range",
    "gemm-tensor-core",
    "bandwidth-halving",
    "fp8-2x",
    "alignment",
    "memory-halving",
    "adam-16-bytes",
    "larger-batch",
    "quality-parity",
    "bf16-no-scaling",
    "dynamic-scaling",
    "fp16-range",
    "checkpointing-tradeoff",
    "comm-halving",
    "cost-savings",
    "bf16-hardware",
)
