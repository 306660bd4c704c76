"""The ``ntklab`` command line: verify, run, presets, status, report.

Each command parses and validates its flags here and calls the library; errors that a user
can fix are printed as one line (``error: ...``) with a non-zero exit code.
"""

from __future__ import annotations

import sys

import click


class UserError(click.ClickException):
    """A one-line error for the user (exit code 2)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ntklab")
def main() -> None:
    """ntklab: test neural tangent kernel theory against real trained networks."""


# ---- verify (issue 2) -------------------------------------------------------------------
# (owned by the core work; replace this block)


# ---- run / presets / status (issue 4) ---------------------------------------------------
# (owned by the study work; replace this block)


# ---- report (issue 5) -------------------------------------------------------------------
# (owned by the report work; replace this block)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
