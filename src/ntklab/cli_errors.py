"""The command line's one-line error: what a user can fix, printed as ``error: ...``."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A one-line error for the user (exit code 2)."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)
