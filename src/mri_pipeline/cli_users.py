"""``mri-pipeline user``: people and scripts who may use the screens and the API."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from mri_pipeline.config import get_settings
from mri_pipeline.domain.access import Role
from mri_pipeline.runtime import build_runtime
from mri_pipeline.services.accounts import AccountError, add_user, set_password

user_app = typer.Typer(help="Users, roles and API tokens.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    return sys.stdin.readline().rstrip("\n")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="user name, e.g. okafor")],
    role: Annotated[Role, typer.Option("--role", help="radiographer, radiologist or admin")],
    radiologist: Annotated[
        str | None, typer.Option("--radiologist", help="their key in the radiologists file")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read a login password from stdin")
    ] = False,
) -> None:
    """Add a user and print their API token (shown once; only its hash is kept)."""
    runtime = build_runtime(get_settings())
    try:
        with runtime.sessions.begin() as session:
            _user, token = add_user(
                session,
                name,
                role,
                runtime.clock(),
                radiologist_key=radiologist,
                password=_password(password_stdin),
            )
    except AccountError as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    console.print(token, highlight=False)


@user_app.command("password")
def user_password(name: Annotated[str, typer.Argument()]) -> None:
    """Set a user's login password, read from stdin."""
    runtime = build_runtime(get_settings())
    try:
        with runtime.sessions.begin() as session:
            set_password(session, name, sys.stdin.readline().rstrip("\n"))
    except AccountError as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    console.print(f"password of {name} set")
