"""Obstacles are found before the first write: one line each, nothing written."""

import json
import os
import shutil
from pathlib import Path

from .scenario import V2, FleeceCli, commit_all, git, read_tree


def test_a_folder_where_the_template_adds_a_file_stops_the_update_before_any_write(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / "events/sqs.json").mkdir()
    (old_service / "events/sqs.json/mine.json").write_text("{}\n")
    commit_all(old_service, "a folder of mine")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert result.stderr == (
        "Error: events/sqs.json: a folder is where the template has this file "
        "(move it, then run fleece update again)\n"
    )
    assert read_tree(old_service) == before
    assert git(old_service, "status", "--porcelain") == ""


def test_a_file_where_the_template_has_a_folder_stops_the_update(
    old_service: Path, fleece: FleeceCli
) -> None:
    shutil.rmtree(old_service / "events")
    (old_service / "events").write_text("not a folder\n")
    commit_all(old_service, "events is a file")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert (
        "Error: events/ping.json: events is a file where the template has a folder"
        in (result.stderr)
    )
    assert "events/sqs.json: events is a file" in result.stderr
    assert read_tree(old_service) == before


def test_a_special_file_in_the_way_is_an_obstacle_for_check_too(
    old_service: Path, fleece: FleeceCli
) -> None:
    git(old_service, "rm", "--quiet", "template.yaml")
    commit_all(old_service, "template.yaml goes")
    os.mkfifo(old_service / "template.yaml")

    result = fleece("update", str(old_service), "--template", str(V2))
    check = fleece("check", str(old_service), "--template", str(V2), "--json")

    assert result.code == 2
    assert "Error: template.yaml: not a regular file" in result.stderr
    findings = json.loads(check.stdout)["findings"]
    assert {
        "path": "template.yaml",
        "kind": "obstacle",
        "message": "not a regular file: update cannot merge into it",
        "blocks_update": True,
    } in findings
