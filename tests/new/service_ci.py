"""What a generated service's CI runs: its workflow's steps, its README's checks."""

import re

import yaml

WORKFLOW = ".github/workflows/ci.yml"


def readme_checks(readme: str) -> list[str]:
    """The commands of the README's "Checks" section, comments left out."""
    section = readme.split("\n### Checks\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the Checks section holds no sh block"
    commands = [line.split(" #", 1)[0].strip() for line in block[1].splitlines()]
    return [command for command in commands if command]


def workflow_commands(workflow: str) -> list[str]:
    """The ``run`` commands of every step of every job, in order."""
    document = yaml.safe_load(workflow)
    return [
        step["run"].strip()
        for job in document["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]
