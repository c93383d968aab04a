"""The HTML report and the Markdown summary: numbers and verdicts on the page, validity,
no external resources, escaping, several result sets, the CLI, a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import html5lib
import pytest
from click.testing import CliRunner
from fixture_records import (
    bench_record,
    gemm_row,
    gpu_env,
    memory_profile,
    numerics,
    record,
    write_results,
)

from mpbench.cli.main import cli
from mpbench.report import write_report

H100 = gpu_env()
CHROMIUM = Path("/usr/bin/chromium")
SEEDS = (0, 1, 2)


def gpu_results(tmp: Path, bf16_ms: float = 40.0, name: str = "gpu", suite: str = "fixture",
                description: str = "fixture suite", model: str = "gpt-tiny") -> Path:
    n = 1_000_000
    recs = []
    fp32_eval, bf16_eval = (2.00, 2.02, 1.98), (2.004, 2.017, 1.983)
    for s in SEEDS:
        recs.append(record("fp32", s, step_ms=100, eval_loss=fp32_eval[s], peak_bytes=1000 * 2**20, env=H100, suite=suite,
                           description=description, model=model, n_params=n,
                           claims=["speedup-amp", "memory-halving"],
                           profiler_results={"memory": memory_profile(n, 8_000_000)}))
        recs.append(record("bf16", s, step_ms=bf16_ms, peak_bytes=450 * 2**20, env=H100,
                           eval_loss=bf16_eval[s],
                           suite=suite, description=description, model=model, n_params=n,
                           profiler_results={"memory": memory_profile(n, 4_000_000)}))
    recs.append(record("fp8-te", 0, env=H100, status="skipped", suite=suite, model=model,
                       reason="TransformerEngine is not installed"))
    bench = [bench_record("gemm", [gemm_row(d, 8192, t) for d, t in
                                   (("fp32", 50.0), ("bf16", 700.0), ("fp16", 690.0))], H100)]
    return write_results(tmp / name, recs, bench)


def parse(html: str) -> object:
    """Strict HTML5 parse: any parse error raises."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)


def claim_row(tree: object, claim_id: str) -> list[str]:
    """The verdict table row of a claim: each cell's class and text."""
    for tr in tree.iter("tr"):  # type: ignore[attr-defined]
        cells = tr.findall("td")
        if cells and "".join(cells[0].itertext()).strip().startswith(claim_id):
            return [f"{td.get('class')}|{''.join(td.itertext())}" for td in cells]
    raise AssertionError(f"no row for {claim_id}")


def table_row(tree: object, *first: str) -> list[str]:
    """The first table row whose leading cells are `first`."""
    for tr in tree.iter("tr"):  # type: ignore[attr-defined]
        cells = ["".join(td.itertext()) for td in tr.findall("td")]
        if cells[: len(first)] == list(first):
            return cells
    raise AssertionError(f"no row {first}")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("report")
    out = write_report([gpu_results(tmp)], tmp / "report.html")
    return out.read_text(encoding="utf-8"), out


@pytest.mark.unit
def test_page_shows_the_verdicts_and_numbers_of_the_records(page: tuple[str, Path]) -> None:
    html, _ = page
    tree = parse(html)
    amp = claim_row(tree, "speedup-amp")
    assert "v-holds" in amp[1] and "2.5" in amp[1]  # bf16 at 40 ms vs fp32 at 100 ms
    assert "2-3x speedups" in amp[2] and "003" in amp[2]
    mem = claim_row(tree, "memory-halving")
    assert "v-holds" in mem[1] and "0.45×" in mem[1]
    assert "v-holds" in claim_row(tree, "adam-16-bytes")[1]
    assert "v-na" in claim_row(tree, "fp8-2x")[1] or "v-nm" in claim_row(tree, "fp8-2x")[1]
    assert "v-holds" in claim_row(tree, "quality-parity")[1]  # TOST-equivalent eval losses
    assert "not applicable" in claim_row(tree, "bf16-hardware")[1]  # H100 is Ampere or newer
    assert "14.0" in claim_row(tree, "gemm-tensor-core")[1]  # 700 / 50 TFLOP/s
    # the throughput table: 8 x 64 tokens per step in ~100 ms and ~40 ms, the speedup with its CI
    fp32, bf16 = table_row(tree, "gpt-tiny", "fp32"), table_row(tree, "gpt-tiny", "bf16")
    assert float(fp32[4].replace(",", "")) == pytest.approx(512 / 0.1, rel=0.02)
    assert float(bf16[4].replace(",", "")) == pytest.approx(512 / 0.04, rel=0.02)
    speedup = re.fullmatch(r"(\d\.\d\d)× \[(\d\.\d\d), (\d\.\d\d)\]", bf16[6])
    assert speedup and float(speedup.group(1)) == pytest.approx(2.5, rel=0.03)
    assert float(speedup.group(2)) <= float(speedup.group(1)) <= float(speedup.group(3))
    assert "TransformerEngine is not installed" in html  # the skipped run and its reason
    assert "1000.0 MiB" in html  # fp32 peak
    assert html.count("<svg") >= 4  # throughput, memory, GEMM ceiling, loss curves


@pytest.mark.unit
def test_sections_say_what_is_not_measured(page: tuple[str, Path]) -> None:
    html, _ = page
    assert "Not measured: energy per token" in html and "profilers: [nvml]" in html
    assert "Not measured: the largest batch per precision" in html
    assert "profilers: [max_batch]" in html
    assert "profilers: [numerics]" in html


@pytest.mark.unit
def test_page_is_valid_html5_and_self_contained(page: tuple[str, Path]) -> None:
    html, out = page
    parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and "<link" not in html and "url(http" not in html
    assert html.count("<script") == 1  # the small sort script, nothing else
    assert out.stat().st_mode & 0o044  # readable by others: a page to share


@pytest.mark.unit
def test_user_strings_are_escaped(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    res = gpu_results(tmp_path, suite=f"s{evil}", description='<img src=x onerror="alert(2)">',
                      model="<b>m</b>")
    html = write_report([res], tmp_path / "r.html").read_text(encoding="utf-8")
    parse(html)
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>m</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    assert "&lt;b&gt;m&lt;/b&gt;" in html  # also inside the SVG plots' labels
    assert html.count("<script") == 1
    md = write_report([res], tmp_path / "r.md", "md").read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;" in md


@pytest.mark.unit
def test_several_result_sets_side_by_side(tmp_path: Path) -> None:
    before = gpu_results(tmp_path, name="before")
    after = gpu_results(tmp_path, bf16_ms=44.0, name="after")
    html = write_report([before, after], tmp_path / "r.html").read_text(encoding="utf-8")
    tree = parse(html)
    heads = ["".join(th.itertext()) for th in tree.iter("th")]
    assert "before" in heads and "after" in heads  # one verdict column per result set
    assert 'id="comparison"' in html and "after / before [95% CI]" in html
    ratio = re.search(r"(0\.9\d)× \[0\.\d\d, 0\.\d\d\]", html)  # bf16: 40 ms -> 44 ms
    assert ratio and float(ratio.group(1)) == pytest.approx(40 / 44, abs=0.02)


@pytest.mark.unit
def test_markdown_summary_is_the_verdict_table(tmp_path: Path) -> None:
    out = write_report([gpu_results(tmp_path)], tmp_path / "r.md", "md")
    md = out.read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == 17
    amp = next(r for r in rows if r.startswith("| `speedup-amp`"))
    assert "holds" in amp and "2.5" in amp and "003" in amp


@pytest.mark.unit
def test_cli_report_and_its_errors(tmp_path: Path) -> None:
    res = gpu_results(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(res), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    result = runner.invoke(cli, ["report", str(res), "--format", "md"])
    assert result.exit_code == 0 and (res / "report.md").is_file()
    result = runner.invoke(cli, ["report", str(res), "--format", "md", "-o", "-"])
    assert result.exit_code == 0 and "| `speedup-amp` |" in result.output  # for CI summaries
    result = runner.invoke(cli, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "results not found" in result.output
    result = runner.invoke(cli, ["report", str(res), "-o", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output


@pytest.mark.integration
def test_run_writes_a_report_from_real_runs(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.yaml"
    suite.write_text("name: tiny\nmodels: [gpt-tiny]\nprecisions: [fp32, bf16]\n"
                     "train: {batch_size: 2, seq_len: 16, steps: 3, warmup_steps: 1, "
                     "eval_batches: 1}\ndata: {source: synthetic, vocab_size: 32}\n", "utf-8")
    out = tmp_path / "res"
    result = CliRunner().invoke(cli, ["run", str(suite), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text(encoding="utf-8")
    parse(html)
    assert "speedup-amp" in html and "gpt-tiny" in html


@pytest.mark.integration
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)")
def test_a_real_browser_loads_the_page(page: tuple[str, Path], tmp_path: Path) -> None:
    _, out = page
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([str(CHROMIUM), *flags, "--window-size=1280,2400", f"--screenshot={shot}",
                    out.as_uri()], check=True, capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, badges and plots, not a blank page
    dom = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", out.as_uri()], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert 'tabindex="0"' in dom  # the sort script ran and made the headers focusable
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.mark.unit
def test_rendering_200_records(benchmark, tmp_path: Path) -> None:
    """Target: under 5 s on a 2-core CPU (run with --benchmark-enable to time it)."""
    recs = []
    for m in ("gpt-tiny", "gpt-mini", "gpt2-small", "gpt2-medium", "llama-tiny"):
        for p in ("fp32", "bf16", "fp16", "fp16-noscale"):
            for s in range(10):
                recs.append(record(p, s, model=m, step_ms=100 if p == "fp32" else 60,
                                   eval_loss=2.0 + 0.01 * s, n_params=1_000_000, profiler_results={
                                       "memory": memory_profile(1_000_000, 4_000_000),
                                       "numerics": numerics(loss_scale=[[0, 65536.0]],
                                                            skipped_steps=[])}))
    assert len(recs) == 200
    res = write_results(tmp_path / "big", recs)
    out = benchmark(write_report, [res], tmp_path / "big.html")
    html = out.read_text(encoding="utf-8")
    assert html.count('<tr>') > 200 and "llama-tiny" in html
