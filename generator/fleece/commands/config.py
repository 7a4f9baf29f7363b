"""``fleece config``: the command line of fleece.config."""

import sys
from pathlib import Path
from typing import IO

import click

from fleece.config.operations import ConfigPaths, ImportResult


@click.group("config")
@click.option(
    "--config",
    "-c",
    "config_path",
    default="config.yml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The closed (encrypted) config file; its folder is the service root.",
)
@click.option(
    "--environments",
    "-e",
    "environments_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The AWS environments file [default: environments.yml; without it, "
    "boto3's standard credentials are used].",
)
@click.pass_context
def command(
    ctx: click.Context, config_path: Path, environments_path: Path | None
) -> None:
    """Manage the KMS-encrypted configuration of a service (config.yml).

    \b
    Typical use:
      fleece config edit                 change values in your editor
      fleece config render dev --python --output src/fleece_config.py
      fleece config diff HEAD            what changed since the last commit
    """
    ctx.obj = ConfigPaths(
        config=config_path,
        environments=environments_path or Path("environments.yml"),
        environments_given=environments_path is not None,
    )


def _report(result: ImportResult, config: Path) -> None:
    if not result.changed:
        click.echo(f"{config} is unchanged.", err=True)
        return
    click.echo(
        f"Wrote {config}: {result.encrypted} secret(s) encrypted, "
        f"{result.kept} unchanged secret(s) kept.",
        err=True,
    )
    for module in result.modules:
        click.echo(f"Re-rendered {module}.", err=True)


@command.command("import")
@click.argument("source", default="-", type=click.File("r", encoding="utf-8"))
@click.pass_obj
def import_(paths: ConfigPaths, source: IO[str]) -> None:
    """Write config.yml from the open format (YAML or JSON) in SOURCE (default:
    stdin), encrypting every :encrypt: value; unchanged secrets keep their
    ciphertext. Recorded fleece_config.py modules are re-rendered."""
    from fleece.config.operations import import_config

    name = "<stdin>" if source.name in ("-", "<stdin>") else source.name
    _report(import_config(paths, source.read(), source=name), paths.config)


@command.command("export")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@click.pass_obj
def export(paths: ConfigPaths, as_json: bool) -> None:
    """Print config.yml in the open format, secrets decrypted (:encrypt:VALUE)."""
    from fleece.config.operations import export_config

    click.echo(export_config(paths, as_json), nl=False)


@command.command("edit")
@click.option("--json", "as_json", is_flag=True, help="Edit JSON instead of YAML.")
@click.option(
    "--editor",
    metavar="CMD",
    help="Editor command, e.g. 'code --wait' [default: $FLEECE_EDITOR, "
    "$VISUAL, $EDITOR, vi]. Run without a shell.",
)
@click.pass_obj
def edit(paths: ConfigPaths, as_json: bool, editor: str | None) -> None:
    """Edit the open format in an editor, then import it.

    The plaintext sits in a private temp folder that is removed afterwards.
    If your text does not import, you may re-open the editor on it.
    """
    from fleece.config.edit import edit_config, editor_command

    def retry(message: str) -> bool:
        click.echo(f"Error: {message}", err=True)
        try:
            return click.confirm(
                "Re-open the editor on your text?", default=True, err=True
            )
        except click.Abort:
            if sys.stdin.isatty():
                raise  # Ctrl-C at the prompt
            return False  # no answer on standard input: abandon the edit, exit 2

    _report(edit_config(paths, editor_command(editor), as_json, retry), paths.config)


@command.command("render")
@click.argument("stage")
@click.option(
    "--yaml", "fmt", flag_value="yaml", default=True, help="Plain YAML (default)."
)
@click.option("--json", "fmt", flag_value="json", help="Plain JSON.")
@click.option(
    "--encrypt",
    "fmt",
    flag_value="encrypt",
    help="The KMS-encrypted payload (chunks, key, digest) as JSON.",
)
@click.option(
    "--python",
    "fmt",
    flag_value="python",
    help="The module fleece_config.py, which decrypts on first use.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --python: write the module here and keep it current on import/edit.",
)
@click.option(
    "--parameter-store",
    "prefix",
    metavar="PREFIX",
    help="Upload one SSM SecureString per value under PREFIX (e.g. /orders/prod).",
)
@click.option(
    "--ssm-kms-key",
    metavar="KEY",
    help="KMS key of the parameters: alias, alias ARN, key ARN or key id "
    "[default: alias/aws/ssm].",
)
@click.option(
    "--prune", is_flag=True, help="Delete parameters under PREFIX the config lacks."
)
@click.option(
    "--dry-run", is_flag=True, help="Print the parameter plan without writing."
)
@click.pass_obj
def render(
    paths: ConfigPaths,
    stage: str,
    fmt: str,
    output: Path | None,
    prefix: str | None,
    ssm_kms_key: str | None,
    prune: bool,
    dry_run: bool,
) -> None:
    """Print (or upload) the config of STAGE, secrets decrypted or re-encrypted.

    STAGE matches stages: by exact name first, then by /regex/ in file order.
    """
    from fleece.config import operations

    if output is not None and fmt != "python":
        raise click.UsageError("--output goes with --python")
    store_only = (ssm_kms_key, prune, dry_run)
    if prefix is None and any(store_only):
        raise click.UsageError(
            "--ssm-kms-key, --prune and --dry-run go with --parameter-store"
        )
    if prefix is not None:
        if fmt != "yaml" or output is not None:
            raise click.UsageError("--parameter-store takes no output format")
        click.echo(
            operations.upload_parameters(
                paths, stage, prefix, ssm_kms_key, prune, dry_run
            ),
            nl=False,
        )
        if dry_run:
            click.echo("Dry run: nothing was written.", err=True)
        return
    if output is not None:
        recorded = operations.render_module_file(paths, stage, output)
        note = (
            "import and edit keep it current"
            if recorded
            else "outside the service, so not kept current"
        )
        click.echo(f"Wrote {output} for stage {stage} ({note}).", err=True)
        return
    click.echo(operations.render_config(paths, stage, fmt), nl=False)  # type: ignore[arg-type]


@command.command("diff")
@click.argument("other", default="HEAD", metavar="[REVISION_OR_FILE]")
@click.option(
    "--show-secrets", is_flag=True, help="Show secret values instead of <hidden>."
)
@click.pass_obj
def diff(paths: ConfigPaths, other: str, show_secrets: bool) -> None:
    """Show what changed between REVISION_OR_FILE (default: HEAD) and the
    working config.yml, in the open format; secrets are hidden unless
    --show-secrets (a changed secret shows as <hidden, changed>)."""
    from fleece.config.operations import diff_config

    text = diff_config(paths, other, show_secrets)
    click.echo(text or "No differences.", nl=not text or not text.endswith("\n"))
