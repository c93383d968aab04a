"""The `mpbench` command group. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

import mpbench
from mpbench.errors import UserError

# Every command, with the module that defines it and the line `mpbench --help` shows for it.
# Modules are imported only when their command runs, so `mpbench --help` imports no torch;
# tests/test_cli_startup.py checks this table against the modules' COMMANDS.
COMMANDS: dict[str, tuple[str, str]] = {
    "advise": ("mpbench.cli.advise",
               "Time each linear layer under a recipe, advise which to convert, optionally "
               "verify by training."),
    "bench": ("mpbench.cli.bench",
              "Measure GEMM TFLOP/s per dtype, the alignment penalty and 16-bit bandwidth gains."),
    "bench-comm": ("mpbench.cli.comm",
                   "Time all-reduce, reduce-scatter and all-gather per dtype and message size."),
    "env": ("mpbench.cli.info",
            "Print this machine's environment card (CPU ISA, GPU, driver, versions)."),
    "explain": ("mpbench.cli.explain",
                "Where each recipe's step time went against its baseline (a waterfall)."),
    "export": ("mpbench.cli.report", "Write RESULTS in another tool's format."),
    "fingerprint": ("mpbench.cli.fingerprint",
                    "Numerics fingerprints: record one per recipe, compare against a baseline."),
    "gate": ("mpbench.cli.gate",
             "Compare CURRENT results with a baseline; exit 1 on a regression, 2 on bad input."),
    "history": ("mpbench.cli.history",
                "Trend and change points over a series of results directories (oldest first "
                "by start time); a directory holding results directories counts as all of "
                "them."),
    "launch": ("mpbench.cli.launch",
               "Run SUITE across nodes: a Slurm job, a Kubernetes TrainJob, or this node's "
               "torchrun."),
    "list": ("mpbench.cli.info",
             "List precision recipes (with availability here), models, profilers and suites."),
    "report": ("mpbench.cli.report",
               "Write a report comparing one or more results directories side by side."),
    "run": ("mpbench.cli.run",
            "Train and measure every run of SUITE (a YAML file); store one record per run."),
    "scaling": ("mpbench.cli.comm", "Tokens/s per device and scaling efficiency across world sizes."),
    "show": ("mpbench.cli.summary", "Print the summary table of a results directory."),
}


class CommandGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module = importlib.import_module(COMMANDS[cmd_name][0])
        for command in module.COMMANDS:
            self.add_command(command)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1] if name in COMMANDS
                 else self.commands[name].get_short_help_str(80))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mpbench.__version__, prog_name="mpbench")
def cli() -> None:
    """Measure what each training precision buys on this machine.

    \b
    Examples:
      mpbench run suites/gpt.yaml          # train, measure, store, summarise
      mpbench show reports/gpt-20261123-1200
      mpbench list                         # recipes, models, suites, availability
      mpbench env                          # this machine's environment card
    """


def main() -> None:
    cli(prog_name="mpbench")
