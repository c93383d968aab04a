"""`mpbench list` and `mpbench env`: what can run here, and on what machine."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table


def bundled_suites() -> list[Path]:
    """The suites in ./suites (the repository's bundled suites when run from a checkout)."""
    local = Path("suites")
    return sorted(local.glob("*.yaml")) if local.is_dir() else []


@click.command("list")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Device to check availability against.")
def list_cmd(device: str) -> None:
    """List precision recipes (with availability here), models, profilers and suites.

    \b
    Example:
      mpbench list
    """
    from mpbench.config.model_sizes import MODEL_SIZES
    from mpbench.precision import RECIPES, get_recipe
    from mpbench.profilers import PROFILERS
    from mpbench.train import resolve_device

    dev = resolve_device(device)
    console = Console()
    recipes = Table(title=f"precision recipes (availability on {dev})")
    for col in ("recipe", "family", "what it does", "available here"):
        recipes.add_column(col)
    for name in RECIPES:
        recipe = get_recipe(name)
        reason = recipe.check(dev)
        recipes.add_row(name, recipe.family, recipe.summary, "yes" if reason is None else f"no: {reason}")
    console.print(recipes)
    models = Table(title="models")
    for col in ("model", "arch", "layers", "heads", "d_model", "ffn", "max seq"):
        models.add_column(col)
    for name, cfg in MODEL_SIZES.items():
        models.add_row(name, cfg.arch, str(cfg.n_layer), str(cfg.n_head), str(cfg.n_embd),
                       str(cfg.ffn_dim), str(cfg.block_size))
    console.print(models)
    if PROFILERS:
        profs = Table(title="profilers")
        profs.add_column("profiler")
        profs.add_column("what it measures")
        for name, cls in PROFILERS.items():
            profs.add_row(name, cls.summary)
        console.print(profs)
    suites = bundled_suites()
    console.print("suites: " + (", ".join(str(p) for p in suites) if suites else
                                "none in ./suites (run from the mpbench checkout to see the bundled ones)"))


@click.command("env")
@click.option("--json", "json_path", is_flag=False, flag_value="-", default=None,
              type=click.Path(path_type=Path), metavar="[PATH]",
              help="Write the card as JSON to PATH (alone, or PATH '-': to stdout).")
def env(json_path: Path | None) -> None:
    """Print this machine's environment card (CPU ISA, GPU, driver, versions).

    \b
    Examples:
      mpbench env --json
      mpbench env --json card.json
    """
    import torch

    from mpbench.results.env import cpu_16bit_note, environment_card

    card = environment_card()
    data = card.model_dump(mode="json")
    if json_path is not None and str(json_path) != "-":
        from mpbench.results.output import write_output

        write_output(json_path, json.dumps(data, indent=2) + "\n", "--json")
        click.echo(f"wrote {json_path}")
        return
    if json_path is not None:
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    table = Table(title="environment", show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                table.add_row(f"{key}.{sub}", json.dumps(v) if isinstance(v, dict | list) else str(v))
        else:
            table.add_row(key, str(value))
    console.print(table)
    console.print(cpu_16bit_note(card.cpu), soft_wrap=True)
    if not torch.cuda.is_available():
        console.print("No CUDA GPU visible: GPU recipes (tf32, fp8) are skipped with their reason.")


COMMANDS = [list_cmd, env]
