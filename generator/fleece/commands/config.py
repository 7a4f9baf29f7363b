"""``fleece config``: the command line of fleece.config."""

from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from fleece.config.operations import ConfigRun, ImportResult

if TYPE_CHECKING:
    from fleece.config.edit import Answer


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
    noted: set[str] = set()

    def note(message: str) -> None:
        if message not in noted:  # once per command, whatever reads it twice
            noted.add(message)
            click.echo(f"Note: {message}", err=True)

    ctx.obj = ConfigRun(
        config=config_path,
        environments=environments_path or Path("environments.yml"),
        environments_given=environments_path is not None,
        notify=note,
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
    if result.migrated:
        click.echo(
            "Every secret is now bound to its stage and key path "
            "(it was in fleece 1.x's format).",
            err=True,
        )
    for module in result.modules:
        click.echo(f"Re-rendered {module}.", err=True)


@command.command("import")
@click.argument("source", default="-", type=click.File("rb"))
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Accept input without stages or values even when config.yml has some "
    "(empties config.yml).",
)
@click.pass_obj
def import_(run: ConfigRun, source: IO[bytes], allow_empty: bool) -> None:
    """Write config.yml from the open format (YAML or JSON) in SOURCE (default:
    stdin), encrypting every :encrypt: value; unchanged secrets keep their
    ciphertext. Recorded fleece_config.py modules are re-rendered.

    Empty input, comments only, or a document without stages: or config:
    never replaces a config.yml that has values (exit 2), unless --allow-empty.
    """
    from fleece.config.formats import MAX_BYTES, decode_text
    from fleece.config.operations import import_config

    name = "<stdin>" if source.name in ("-", "<stdin>") else source.name
    text = decode_text(source.read(MAX_BYTES + 1), name)
    _report(import_config(run, text, name, allow_empty), run.config)


@command.command("export")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@click.pass_obj
def export(run: ConfigRun, as_json: bool) -> None:
    """Print config.yml in the open format, secrets decrypted (:encrypt:VALUE)."""
    from fleece.config.operations import export_config

    click.echo(export_config(run, as_json), nl=False)


@command.command("migrate")
@click.pass_obj
def migrate(run: ConfigRun) -> None:
    """Rewrite a config.yml made by fleece 1.x so that every secret is bound to
    its stage and key path (values unchanged), in one atomic write."""
    from fleece.config.operations import migrate_config

    result = migrate_config(run)
    if not result.changed:
        click.echo(f"{run.config} has no fleece 1.x secret: nothing to do.", err=True)
        return
    _report(result, run.config)


@command.command("edit")
@click.option("--json", "as_json", is_flag=True, help="Edit JSON instead of YAML.")
@click.option(
    "--editor",
    metavar="CMD",
    help="Editor command, e.g. 'code --wait' [default: $FLEECE_EDITOR, "
    "$VISUAL, $EDITOR, vi]. Run without a shell.",
)
@click.option(
    "--resume",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Continue an edit that fleece kept after a failed import.",
)
@click.pass_obj
def edit(
    run: ConfigRun, as_json: bool, editor: str | None, resume: Path | None
) -> None:
    """Edit the open format in an editor, then import it.

    The plaintext sits in a private temp folder, removed when the edit ends
    and on any signal. If your text does not import, you may re-open the
    editor on it; if the import fails otherwise (KMS, credentials), your text
    is kept and the error says how to --resume.
    """
    from fleece.config.edit import edit_config, editor_command

    def ask(message: str) -> "Answer":
        click.echo(f"Error: {message}", err=True)
        try:
            reopen = click.confirm(
                "Re-open the editor on your text?", default=True, err=True
            )
        except click.Abort as abort:
            # click turns both Ctrl-C and the end of stdin into Abort.
            if isinstance(abort.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None  # the plaintext goes
            return "keep"  # no answer on standard input
        return "reopen" if reopen else "abandon"

    result = edit_config(run, editor_command(editor), as_json, ask, resume)
    _report(result, run.config)


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
    run: ConfigRun,
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
                run, stage, prefix, ssm_kms_key, prune, dry_run
            ),
            nl=False,
        )
        if dry_run:
            click.echo("Dry run: nothing was written.", err=True)
        return
    if output is not None:
        recorded = operations.render_module_file(run, stage, output)
        note = (
            "import and edit keep it current"
            if recorded
            else "outside the service, so not kept current"
        )
        click.echo(f"Wrote {output} for stage {stage} ({note}).", err=True)
        return
    click.echo(operations.render_config(run, stage, fmt), nl=False)  # type: ignore[arg-type]


@command.command("diff")
@click.argument("other", default="HEAD", metavar="[REVISION_OR_FILE]")
@click.option(
    "--show-secrets", is_flag=True, help="Show secret values instead of <hidden>."
)
@click.pass_obj
def diff(run: ConfigRun, other: str, show_secrets: bool) -> None:
    """Show what changed between REVISION_OR_FILE (default: HEAD) and the
    working config.yml, in the open format; secrets are hidden unless
    --show-secrets (a changed secret shows as <hidden, changed>)."""
    from fleece.config.operations import diff_config

    text = diff_config(run, other, show_secrets)
    click.echo(text or "No differences.", nl=not text or not text.endswith("\n"))


@command.command("forget")
@click.argument("stage")
@click.pass_obj
def forget(run: ConfigRun, stage: str) -> None:
    """Stop keeping STAGE's fleece_config.py modules current (before removing
    the stage): src/fleece_config.py goes back to the empty stub, another
    module file is deleted, and .fleece/settings.yml no longer lists them."""
    from fleece.config.operations import forget_modules
    from fleece.service.layout import SETTINGS_FILE

    for path, what in forget_modules(run, stage):
        click.echo(f"{path}: {what}; removed from {SETTINGS_FILE}.", err=True)
