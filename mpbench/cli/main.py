"""The `mpbench` command group. User errors become one line on stderr and exit code 2."""

from __future__ import annotations

import sys
from typing import Any

import click

import mpbench
from mpbench.errors import UserError


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from mpbench.cli import bench, comm, export, gate, history, info, report, run, show

    for module in (run, info, show, report, bench, gate, history, export, comm):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="mpbench")
