"""The handlers a service's ``template.yaml`` expects in the code a build makes.

A zip without the module of a function's ``Handler`` deploys fine and fails at
every invocation; ``missing_handlers`` finds that before the zip is written.
It reads the functions of ``template.yaml`` (or ``template.yml``) whose code
is what the build makes: ``CodeUri`` naming the source folder (a ``sam build``
through fleece, ``BuildMethod: makefile``) or the zip (``dist/lambda_function.zip``),
directly or through ``Globals``. Values set with intrinsic functions
(``!Ref``, ``!Sub``) cannot be known before deployment and are not checked.
"""

import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleece.errors import BadInput

__all__ = ["Handler", "missing_handlers", "template_handlers"]

TEMPLATE_NAMES = ("template.yaml", "template.yml")
_FUNCTION_TYPES = ("AWS::Serverless::Function",)


@dataclass(frozen=True)
class Handler:
    """A function's ``Handler`` (``pkg.module.function``) in the template."""

    function: str  # the resource's logical id
    handler: str
    template: str  # the template's file name, for messages

    @property
    def module_files(self) -> tuple[str, ...]:
        """Zip paths of which one must exist for the module to import."""
        module = self.handler.rsplit(".", 1)[0].replace("/", ".")
        path = module.replace(".", "/")
        return (f"{path}.py", f"{path}/__init__.py", f"{path}.pyc")

    def found_in(self, names: Collection[str]) -> bool:
        """True when ``names`` (zip paths) hold the handler's module."""
        if any(name in names for name in self.module_files):
            return True
        stem = self.module_files[0].removesuffix(".py")
        return any(name.startswith(stem + ".") and name.endswith(".so") for name in names)


def template_handlers(service: Path, code: Collection[Path]) -> list[Handler]:
    """The Python handlers of the functions in the service's template whose
    ``CodeUri`` is one of ``code`` (the source folder, the zip); none without
    a template."""
    template = next((service / n for n in TEMPLATE_NAMES if (service / n).is_file()), None)
    if template is None:
        return []
    document = _load(template)
    resources = document.get("Resources")
    globals_ = document.get("Globals")
    defaults = globals_.get("Function") if isinstance(globals_, dict) else None
    defaults = defaults if isinstance(defaults, dict) else {}
    wanted = {os.path.normpath(p.resolve()) for p in code}
    found = []
    for name, resource in _functions(resources):
        properties = {**defaults, **(resource.get("Properties") or {})}
        handler, runtime, uri = (
            properties.get(k) for k in ("Handler", "Runtime", "CodeUri")
        )
        if not (
            isinstance(handler, str)
            and isinstance(runtime, str)
            and runtime.startswith("python")
            and isinstance(uri, str)
            and properties.get("PackageType", "Zip") == "Zip"
        ):
            continue
        if os.path.normpath((template.parent / uri).resolve()) in wanted:
            found.append(Handler(name, handler, template.name))
    return found


def missing_handlers(handlers: Collection[Handler], names: Collection[str]) -> None:
    """A ``BadInput`` naming the first handler whose module ``names`` lack."""
    for handler in handlers:
        if not handler.found_in(names):
            raise BadInput(
                f"the build holds no {handler.module_files[0]} (nor "
                f"{handler.module_files[1]}), the module of {handler.function}'s "
                f"Handler {handler.handler} in {handler.template}: check --exclude "
                "and --source, or the Handler"
            )


def _functions(resources: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(resources, dict):
        return
    for name, resource in resources.items():
        if (
            isinstance(resource, dict)
            and resource.get("Type") in _FUNCTION_TYPES
            and isinstance(resource.get("Properties", {}), dict)
        ):
            yield str(name), resource


def _load(template: Path) -> dict[str, Any]:
    """The template as data; CloudFormation's short tags (``!Ref``) become None."""
    import yaml

    # libyaml's loader, when PyYAML has it, reads a template ten times faster.
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[valid-type,misc]
        pass

    def unknown(loader: object, suffix: str, node: yaml.Node) -> None:
        return None

    _Loader.add_multi_constructor("!", unknown)
    try:
        document = yaml.load(template.read_text(encoding="utf-8"), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise BadInput(f"{template}: not valid YAML{where}") from None
    return document if isinstance(document, dict) else {}
