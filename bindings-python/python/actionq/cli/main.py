"""The ``actionq`` commands (docs/contract/cli-and-mcp.md#command-line).

click, not argparse: nested commands with their own options, ``--json``
accepted before or after the command, usage errors with exit code 2 and
bash/zsh completion come with it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from actionq import limits
from actionq.cli import render
from actionq.cli.client import DENIED, REFUSED, UNREACHABLE, USAGE, Api, ApiError, NotTheApi, StreamMissing, exit_code

__all__ = ["DEFAULT_URL", "KEY_ENV", "URL_ENV", "cli", "main"]

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where ``actionq-server`` serves by default."""
KEY_ENV = "ACTIONQ_KEY"
"""Environment variable holding the key when ``--key-file`` is not given."""
URL_ENV = "ACTIONQ_URL"
"""Environment variable holding the URL when ``--url`` is not given."""

_FINISHED = {"completed", "failed", "rejected", "cancelled"}
_F = TypeVar("_F", bound=Callable[..., Any])


class _Settings:
    def __init__(self, url: str, key_file: Path | None, as_json: bool) -> None:
        self.url = url
        self.key_file = key_file
        self.as_json = as_json
        self._api: Api | None = None

    def api(self) -> Api:
        if self._api is None:
            if self.key_file is not None:
                key = self.key_file.read_text(encoding="utf-8").strip()
            else:
                key = os.environ.get(KEY_ENV, "").strip()
            if not key:
                _fail(DENIED, f"no key: pass --key-file FILE or set {KEY_ENV}")
            self._api = Api(self.url, key)
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def _fail(code: int, message: str) -> None:
    click.echo(f"actionq: {message}", err=True)
    raise click.exceptions.Exit(code)


class _Group(click.Group):
    """Turns what the server refused, or not reaching it, into the contract's
    exit codes, with the API's code and message on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as e:
            _fail(exit_code(e), str(e))
        except (httpx.TransportError, NotTheApi) as e:
            settings = ctx.find_object(_Settings)
            url = settings.url if settings else "the server"
            _fail(UNREACHABLE, f"cannot reach the actionq API at {url}: {e}")
        except httpx.InvalidURL as e:
            _fail(USAGE, f"--url: {e}")
        finally:
            settings = ctx.find_object(_Settings)
            if settings is not None:
                settings.close()


def _json_option(f: _F) -> _F:
    """``--json`` after the command too (``actionq list --json``)."""

    def remember(ctx: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            ctx.find_object(_Settings).as_json = True  # type: ignore[union-attr]

    return click.option(
        "--json", "as_json", is_flag=True, expose_value=False, callback=remember, help="Print the API's JSON."
    )(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar=URL_ENV, default=DEFAULT_URL, show_default=True, help=f"Server URL (or ${URL_ENV}).")
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"File holding the API key or credential secret (else ${KEY_ENV}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of tables.")
@click.pass_context
def cli(ctx: click.Context, url: str, key_file: Path | None, as_json: bool) -> None:
    """actionq: look at the queue, request actions, approve them."""
    ctx.obj = _Settings(url, key_file, as_json)


def _settings() -> _Settings:
    return click.get_current_context().find_object(_Settings)  # type: ignore[return-value]


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _action_rows(actions: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            str(a["id"]),
            a["status"],
            a["server_id"],
            a["action_type"],
            render.params_text(a.get("params") or {}),
            a["created_by"],
            render.short_time(a["created_at"]),
        ]
        for a in actions
    ]


_ACTION_HEADERS = ["ID", "STATUS", "SERVER", "TYPE", "PARAMS", "BY", "CREATED"]


def _print_actions(actions: list[dict[str, Any]]) -> None:
    if not actions:
        click.echo("no actions")
        return
    click.echo(render.table(_ACTION_HEADERS, _action_rows(actions), flexible=[2, 3, 4, 5]))


def _summary(action: dict[str, Any]) -> str:
    """One line on where an action stands, and why it waits if it does."""
    status = action["status"]
    line = f"action {action['id']} ({action['action_type']} on {action['server_id']}): {status}"
    if status == "pending":
        approvals = action.get("approvals") or []
        line += f", waits for a person's approval ({len(approvals)} so far)"
    elif status == "approved":
        line += f" by {action['approved_by']}"
    elif status == "rejected":
        line += f" by {action['rejected_by']}: {action['rejection_reason']}"
    elif status == "cancelled":
        line += f" by {action['cancelled_by']}"
    return line


def _print_action_result(action: dict[str, Any]) -> None:
    if _settings().as_json:
        _print_json(action)
    else:
        click.echo(_summary(action))


# Servers ----------------------------------------------------------------------


@cli.command()
@_json_option
def servers() -> None:
    """Registered servers."""
    listed = _settings().api().get("/servers")
    if _settings().as_json:
        _print_json(listed)
        return
    rows = [
        [s["id"], s["hostname"] or "-", "paused" if s["is_paused"] else "-", render.short_time(s["paused_at"])]
        for s in listed
    ]
    click.echo(render.table(["ID", "HOSTNAME", "PAUSED", "SINCE"], rows, flexible=[0, 1]) if rows else "no servers")


@cli.command()
@click.argument("server_id", metavar="ID")
@_json_option
def pause(server_id: str) -> None:
    """Pause a server: its new actions wait for a person."""
    server = _settings().api().call("PUT", f"/servers/{server_id}/pause")
    if _settings().as_json:
        _print_json(server)
    else:
        click.echo(f"server {server['id']}: paused")


@cli.command()
@click.argument("server_id", metavar="ID")
@_json_option
def unpause(server_id: str) -> None:
    """Unpause a server: its new actions are approved automatically."""
    server = _settings().api().call("PUT", f"/servers/{server_id}/unpause")
    if _settings().as_json:
        _print_json(server)
    else:
        click.echo(f"server {server['id']}: not paused")


# Actions ----------------------------------------------------------------------


def _all_pages(api: Api, **query: Any) -> Iterator[dict[str, Any]]:
    # Keyset pages: each costs the same however deep (docs/contract/retention.md#keyset-paging).
    before_id = None
    while True:
        page = api.get("/actions", limit=limits.MAX_PAGE_LIMIT, before_id=before_id, **query)
        yield from page["actions"]
        before_id = page["next_before_id"]
        if before_id is None:
            return


@cli.command()
@_json_option
def pending() -> None:
    """Every action that waits for approval, newest first."""
    actions = list(_all_pages(_settings().api(), status="pending"))
    if _settings().as_json:
        _print_json(actions)
    else:
        _print_actions(actions)


@cli.command(name="list")
@click.option("--status", type=click.Choice(limits.ACTION_STATUSES), help="Only actions in this status.")
@click.option("--server", "server_id", metavar="ID", help="Only this server's actions.")
@click.option("--type", "action_type", metavar="TYPE", help="Only this action type.")
@click.option("--limit", type=int, help=f"Page size, 1-{limits.MAX_PAGE_LIMIT} (default {limits.DEFAULT_PAGE_LIMIT}).")
@click.option("--offset", type=int, help="Skip this many (default 0).")
@click.option("--before-id", type=int, metavar="ID", help="The page after this action (a page's next_before_id).")
@_json_option
def list_(
    status: str | None,
    server_id: str | None,
    action_type: str | None,
    limit: int | None,
    offset: int | None,
    before_id: int | None,
) -> None:
    """Actions, newest first, one page."""
    page = _settings().api().get(
        "/actions",
        status=status,
        server_id=server_id,
        action_type=action_type,
        limit=limit,
        offset=offset,
        before_id=before_id,
    )
    if _settings().as_json:
        _print_json(page)
        return
    _print_actions(page["actions"])
    if page["next_before_id"] is not None:
        click.echo(f"{len(page['actions'])} of {page['total']} (--before-id {page['next_before_id']} for more)")


@cli.command()
@click.argument("action_id", metavar="ID", type=int)
@_json_option
def show(action_id: int) -> None:
    """One action, every field."""
    action = _settings().api().get(f"/actions/{action_id}")
    if _settings().as_json:
        _print_json(action)
    else:
        click.echo("\n".join(render.action_lines(action)))


def _param(ctx: click.Context, _: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", ctx=ctx)
        params[name] = value
    return params


@cli.command()
@click.argument("server_id", metavar="SERVER")
@click.argument("action_type", metavar="TYPE")
@click.option("--param", "params", multiple=True, callback=_param, metavar="K=V", help="A parameter (repeatable).")
@_json_option
def request(server_id: str, action_type: str, params: dict[str, str]) -> None:
    """Ask for an action; on a paused server it waits for a person."""
    body: dict[str, Any] = {"server_id": server_id, "action_type": action_type}
    if params:
        body["params"] = params
    _print_action_result(_settings().api().call("POST", "/actions", json=body))


@cli.command()
@click.argument("action_id", metavar="ID", type=int)
@_json_option
def approve(action_id: int) -> None:
    """Approve a pending action."""
    _print_action_result(_settings().api().call("POST", f"/actions/{action_id}/approve"))


@cli.command()
@click.argument("action_id", metavar="ID", type=int)
@click.option("--reason", required=True, help=f"Why (1-{limits.MAX_REASON_CHARS} characters).")
@_json_option
def reject(action_id: int, reason: str) -> None:
    """Reject a pending action."""
    _print_action_result(_settings().api().call("POST", f"/actions/{action_id}/reject", json={"reason": reason}))


@cli.command()
@click.argument("action_id", metavar="ID", type=int)
@_json_option
def cancel(action_id: int) -> None:
    """Cancel an action that has not finished."""
    _print_action_result(_settings().api().call("POST", f"/actions/{action_id}/cancel"))


# Events and output ---------------------------------------------------------------


def _print_event(event: dict[str, Any]) -> None:
    if _settings().as_json:
        click.echo(json.dumps(event, ensure_ascii=False))  # one per line, as a stream is read
    else:
        click.echo(render.event_line(event))


def _follow_events(api: Api, after: int, interval: float) -> None:
    """New events as they come: the server's event stream, else (a server
    without it) ``/events?after=`` every ``interval`` seconds."""
    streaming = True
    while True:
        if streaming:
            try:
                for _, _, event in api.stream("/events/stream", after=after):
                    _print_event(event)
                    after = event["id"]
                continue  # the server closed the stream: resume after the last one
            except StreamMissing:
                streaming = False
        for event in api.get("/events", after=after, limit=limits.MAX_EVENTS_LIMIT):
            _print_event(event)
            after = event["id"]
        time.sleep(interval)


@cli.command()
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), default=20, show_default=True, help="Events to show first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, help="Seconds between polls when the server has no event stream.")
@_json_option
def tail(count: int, follow: bool, interval: float) -> None:
    """The last audit events, oldest first."""
    api = _settings().api()
    last: list[dict[str, Any]] = []
    after = 0
    while True:
        batch = api.get("/events", after=after, limit=limits.MAX_EVENTS_LIMIT)
        last = (last + batch)[-count:] if count else []
        if batch:
            after = batch[-1]["id"]
        if len(batch) < limits.MAX_EVENTS_LIMIT:
            break
    for event in last:
        _print_event(event)
    if follow:
        try:
            _follow_events(api, after, interval)
        except KeyboardInterrupt:
            pass


def _print_chunk(chunk: dict[str, Any]) -> None:
    if _settings().as_json:
        click.echo(json.dumps(chunk, ensure_ascii=False))
        return
    if chunk.get("stdout"):
        click.echo(chunk["stdout"], nl=False)
    if chunk.get("stderr"):
        click.echo(chunk["stderr"], nl=False, err=True)


def _print_final_output(action: dict[str, Any]) -> None:
    if _settings().as_json:
        _print_json({k: action[k] for k in ("id", "status", "exit_code", "stdout", "stderr")})
        return
    if action.get("stdout"):
        click.echo(action["stdout"], nl=not action["stdout"].endswith("\n"))
    if action.get("stderr"):
        click.echo(action["stderr"], nl=not action["stderr"].endswith("\n"), err=True)


@cli.command()
@click.argument("action_id", metavar="ID", type=int)
@click.option("-f", "--follow", is_flag=True, help="Print output as the agent sends it, until the action ends.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, help="Seconds between polls when the server has no output stream.")
@_json_option
def output(action_id: int, follow: bool, interval: float) -> None:
    """What an action printed (stdout to stdout, stderr to stderr)."""
    api = _settings().api()
    if follow:
        try:
            try:
                # Chunks come as `output` messages; `end` carries the finished
                # action, whose reported output may hold more than the chunks
                # (an agent that sends none): that rest is printed then.
                shown = {"stdout": "", "stderr": ""}
                for _, event, data in api.stream(f"/actions/{action_id}/output/stream"):
                    if not isinstance(data, dict):
                        continue
                    if event == "output":
                        _print_chunk(data)
                        for name in shown:
                            shown[name] += data.get(name) or ""
                    elif event == "end":
                        rest = {
                            name: (data.get(name) or "")[len(text):]
                            if (data.get(name) or "").startswith(text)
                            else ""
                            for name, text in shown.items()
                        }
                        if any(rest.values()):
                            _print_chunk(rest)
                return
            except StreamMissing:
                pass
            # A server without live output: wait for the end, then its final output.
            action = api.get(f"/actions/{action_id}")
            while action["status"] not in _FINISHED:
                time.sleep(interval)
                action = api.get(f"/actions/{action_id}")
        except KeyboardInterrupt:
            return
    else:
        action = api.get(f"/actions/{action_id}")
    _print_final_output(action)


# Audit and identity -----------------------------------------------------------


@cli.command()
@_json_option
def verify() -> None:
    """Check the tamper-evident audit chain (admin); exit 1 when it is broken."""
    report = _settings().api().get("/audit/verify")
    bad = report["first_bad_event_id"]
    if _settings().as_json:
        _print_json(report)
    elif bad is None:
        pruned = report.get("pruned_through")
        since = "" if pruned is None else f" after the prune checkpoint (event {pruned})"
        click.echo(f"audit intact: {report['checked']} events verified{since}")
    if bad is not None:
        _fail(REFUSED, f"AUDIT_BROKEN: event {bad} does not verify ({report['checked']} verified before it)")


@cli.command()
@click.option(
    "--before",
    required=True,
    metavar="TIME",
    help="RFC 3339 time (e.g. 2026-01-01T00:00:00Z): finished actions whose last change is before it.",
)
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default stdout).")
def export(before: str, output: Any) -> None:
    """Archive finished actions as JSON Lines, one action with its events per line (admin)."""
    for line in _settings().api().lines("/export", before=before):
        output.write(line + "\n")


@cli.command()
@click.option("--older-than-days", type=click.IntRange(min=0), required=True, help="Age of the last change, in days.")
@_json_option
def prune(older_than_days: int) -> None:
    """Delete finished actions older than that, with their events, keeping the audit checkpoint (admin)."""
    report = _settings().api().call("POST", "/prune", json={"older_than_seconds": older_than_days * 86_400})
    if _settings().as_json:
        _print_json(report)
    else:
        click.echo(f"pruned {report['pruned_actions']} actions; audit checkpoint at event {report['pruned_through']}")


@cli.command()
@_json_option
def whoami() -> None:
    """Who the key belongs to, and its role."""
    me = _settings().api().get("/me")
    if _settings().as_json:
        _print_json(me)
    else:
        scope = f" (server {me['server_id']})" if me.get("server_id") else ""
        click.echo(f"{me['name']}: {me['role']}{scope}")


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(actionq completion bash)"."""
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None
    click.echo(complete(cli, {}, "actionq", "_ACTIONQ_COMPLETE").source())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``actionq`` console script."""
    cli.main(args=argv, prog_name="actionq")


if __name__ == "__main__":
    main()
