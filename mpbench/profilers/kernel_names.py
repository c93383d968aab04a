"""A CUDA kernel's own name, out of the demangled signature a profiler records.

torch.profiler and Nsight give names such as
`void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl(...)::{lambda()#1}, ...>(int, ...)`
or `void split_embedding_codegen_forward_unweighted_kernel<c10::Half, c10::Half, float, ...>(...)`.
Words in the namespaces, template arguments and parameter lists (`c10::Half`, `lambda`,
`flashinfer::`, `vllm::`) say nothing about what the kernel computes, so the rules in
profilers/kernel_rules.py match the function's own name. Two kinds of kernels are named by their
first template argument instead, and are looked through: CUTLASS launchers
(`cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_...>`, `cutlass::device_kernel<
flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<...>>>`) and the cuDNN/CUTLASS variants
of them (`cutlass__5x_cudnn::Kernel<...>`).
"""

from __future__ import annotations

import re

_ANONYMOUS = re.compile(r"\((?:anonymous namespace)\)")
_LAUNCHERS = frozenset({"Kernel", "Kernel2", "device_kernel", "enable_sm90_or_later",
                        "enable_sm80_to_sm89", "enable_sm100_or_later"})
"""Kernels named by their first template argument (CUTLASS device launchers and the
FlashAttention-3 arch guards around them)."""


def _split_template(text: str) -> tuple[str, str, str]:
    """(head, first top-level template argument list, rest) of a signature.

    Angle brackets inside parentheses that sit inside a template argument list are
    comparisons or casts (`std::enable_if<(((8)>(0)))&&...>`), not brackets, so they are
    skipped; the parameter list starts at the first `(` outside every template list.
    """
    depth = parens = 0
    start = -1
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                return text[:i], "", ""
            parens += 1
        elif ch == ")":
            parens = max(parens - 1, 0)
        elif parens:
            continue
        elif ch == "<":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
            if depth == 0:
                return text[:start], text[start + 1:i], text[i + 1:]
    if depth:  # a name cut short inside its template arguments (stored names are capped)
        return text[:start], text[start + 1:], ""
    return text, "", ""


def _parse(text: str) -> tuple[str, str]:
    """(signature without template lists and parameters, the template arguments of the
    kernel's own name). `std::enable_if<...>::type vllm::k<8>(...)` -> (`std::enable_if::type
    vllm::k`, `8`): arguments followed by more name belong to a qualifier, not the kernel."""
    stripped, own_args, rest = "", "", text
    while rest:
        head, args, rest = _split_template(rest)
        stripped += head
        if head or args:
            own_args = args
        if not args:
            break
    return stripped, own_args


def _last_component(text: str) -> str:
    """`void at::native::foo` -> `foo`; `std::enable_if::type vllm::bar` -> `bar`; a bare
    `kernel` keeps its namespace (cuBLAS `internal::gemvx::kernel` -> `gemvx::kernel`)."""
    names = text.strip().split(" ")[-1].split("::")
    return "::".join(names[-2:]) if names[-1] == "kernel" else names[-1]


def _first_argument(args: str) -> str:
    """The first top-level argument of a template argument list."""
    depth = parens = 0
    for i, ch in enumerate(args):
        if ch == "(":
            parens += 1
        elif ch == ")":
            parens = max(parens - 1, 0)
        elif parens:
            continue
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            return args[:i]
    return args


def kernel_identity(name: str) -> str:
    """The kernel's own function name; for a launcher, `launcher inner` (the name of the
    class or function in its first template argument, looked through recursively)."""
    text = _ANONYMOUS.sub("anonymous_namespace", name)
    parts: list[str] = []
    for _ in range(4):  # launchers nest a few deep at most
        stripped, args = _parse(text)
        own = _last_component(stripped)
        parts.append(own)
        if own not in _LAUNCHERS or not args:
            break
        text = _first_argument(args).strip()
    return " ".join(p for p in parts if p)


def kernel_template_args(name: str) -> str:
    """The template arguments of the kernel's own name, for dtype hints where a library
    encodes the element types there (CUTLASS 3 and CuTe GEMMs: `cutlass::bfloat16_t`)."""
    return _parse(_ANONYMOUS.sub("anonymous_namespace", name))[1]
