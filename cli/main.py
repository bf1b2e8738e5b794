"""The ``mdl`` command: registers the subcommands and turns errors into messages and exit codes.

Exit codes: 0 success; 1 an operation failed; 2 bad input (reference, Modelfile, GGUF, usage);
3 authentication failed or access denied; 4 the named model or blob does not exist; 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from mdl.cli import build, imports, index, local, registry, run, serve, transfer, trust
from mdl.cli.console import error
from mdl.spec.errors import MdlError

app = typer.Typer(
    name="mdl",
    help="Build, store, move and serve ML models as OCI artifacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"mdl {version('mdl')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Build, store, move and serve ML models as OCI artifacts."""


build.register(app)
transfer.register(app)
local.register(app)
registry.register(app)
serve.register(app)
run.register(app)
trust.register(app)
imports.register(app)
index.register(app)


def main() -> None:
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting with it.
        code = app(standalone_mode=False, prog_name="mdl")
    except MdlError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: the message and the usage line
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            error(str(exc))
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        error("interrupted")
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
