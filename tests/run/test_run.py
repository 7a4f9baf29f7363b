"""`fleece run`: a command with the credentials of an account, environment or stage."""

import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from fleece.aws.environments import load_environments
from fleece.aws.session import session_for_environment
from tests.run.run_support import FakeRackspace, Fleece, faws_keys

CHILD = """\
import json, os, sys
names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
         "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"]
with open(os.environ["CHILD_REPORT"], "w") as report:
    json.dump({"argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names}},
              report)
sys.exit(int(os.environ.get("CHILD_EXIT", "0")))
"""


@pytest.fixture
def child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A command that reports its argv and AWS variables to a file."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    monkeypatch.setenv("CHILD_REPORT", str(tmp_path / "report.json"))
    return [sys.executable, str(script)]


def report(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    return data


ALICE = ("-u", "alice", "-k", "alice-api-key")


def test_account_gets_faws_credentials_in_the_child_environment_only(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "would-shadow-the-credentials")

    code, out, err = fleece("run", *ALICE, "-a", "111111111111", "--", *child)

    assert code == 0
    keys = faws_keys("111111111111")
    assert report(tmp_path)["env"] == {
        "AWS_ACCESS_KEY_ID": keys["accessKeyId"],
        "AWS_SECRET_ACCESS_KEY": keys["secretAccessKey"],
        "AWS_SESSION_TOKEN": keys["sessionToken"],
        "AWS_PROFILE": None,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for secret in (*keys.values(), "alice-api-key", "token-of-alice"):
        assert secret not in out + err


def test_arguments_reach_the_command_exactly_as_given(
    rackspace: FakeRackspace, child: list[str], fleece: Fleece, tmp_path: Path
) -> None:
    arguments = [
        "it's",
        'say "hi"',
        "two  spaces",
        "$HOME",
        "`date`",
        "a;b|c&&d",
        "*",
        "",
        "--flag=value",
        "-k",
    ]

    code, _, _ = fleece("run", *ALICE, "-a", "111111111111", *child, *arguments)

    assert code == 0
    assert report(tmp_path)["argv"] == arguments


def test_the_command_exit_code_is_fleeces(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHILD_EXIT", "7")

    code, _, err = fleece("run", *ALICE, "-a", "111111111111", "--", *child)

    assert (code, err) == (7, "")


def test_role_is_assumed_with_sts_on_top_of_faws(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
    environments_file: Path,
) -> None:
    code, _, _ = fleece(
        "run", *ALICE, "-c", str(environments_file), "-e", "production", *child
    )

    assert code == 0
    env = report(tmp_path)["env"]
    assert env["AWS_ACCESS_KEY_ID"] != faws_keys("333333333333")["accessKeyId"]
    identity = boto3.client(
        "sts",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    ).get_caller_identity()
    assert identity["Arn"] == (
        "arn:aws:sts::333333333333:assumed-role/DeployRole/fleece"
    )


def test_role_flag_overrides_the_environment(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
) -> None:
    code, _, _ = fleece("run", *ALICE, "-a", "222222222222", "-r", "Auditor", *child)

    assert code == 0
    env = report(tmp_path)["env"]
    identity = boto3.client(
        "sts",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    ).get_caller_identity()
    assert ":assumed-role/Auditor/" in identity["Arn"]


def test_login_comes_from_the_variables_the_environment_names(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    environments_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEV_RS_USER", "bob")
    monkeypatch.setenv("DEV_RS_KEY", "bob-api-key")
    monkeypatch.setenv("RS_USERNAME", "alice")
    monkeypatch.setenv("RS_API_KEY", "alice-api-key")

    code, _, _ = fleece("run", "-c", str(environments_file), "-e", "dev", *child)

    assert code == 0
    assert rackspace.identity_users() == ["bob"]


def test_flags_win_over_every_variable(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    environments_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEV_RS_USER", "bob")
    monkeypatch.setenv("DEV_RS_KEY", "bob-api-key")

    code, _, _ = fleece(
        "run", *ALICE, "-c", str(environments_file), "-e", "dev", *child
    )

    assert code == 0
    assert rackspace.identity_users() == ["alice"]


def test_rs_username_and_rs_api_key_are_the_last_resort(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    environments_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RS_USERNAME", "alice")
    monkeypatch.setenv("RS_API_KEY", "alice-api-key")

    code, _, _ = fleece("run", "-c", str(environments_file), "-e", "dev", *child)

    assert code == 0
    assert rackspace.identity_users() == ["alice"]


def test_stage_is_matched_by_name_then_by_regex(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
    environments_file: Path,
) -> None:
    expected = {
        "feature-42": ("111111111111", None),
        "qa": ("222222222222", "eu-west-1"),  # /.*/ -> staging, with its region
    }
    for stage, (account, region) in expected.items():
        code, _, _ = fleece(
            "run", *ALICE, "-c", str(environments_file), "-s", stage, *child
        )
        assert code == 0
        env = report(tmp_path)["env"]
        assert env["AWS_ACCESS_KEY_ID"] == faws_keys(account)["accessKeyId"]
        assert env["AWS_REGION"] == (region or "us-east-1")


def profile_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_id: str, role: str = ""
) -> Path:
    """environments.yml with one environment, dev, on the AWS profile dev-sso
    (key ``key_id``, region us-west-2); the AWS config file is made to hold it."""
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile dev-sso]\n"
        f"aws_access_key_id = {key_id}\n"
        "aws_secret_access_key = profile-secret\n"
        "region = us-west-2\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    environments = tmp_path / "profile-environments.yml"
    environments.write_text(
        "environments:\n"
        "  - name: dev\n"
        "    account: '444444444444'\n"
        "    profile: dev-sso\n" + (f"    role: {role}\n" if role else "")
    )
    return environments


def test_profile_environment_needs_no_rackspace(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environments = profile_environments(
        tmp_path, monkeypatch, "AKIAPROFILEKEY000001", role="Developer"
    )

    code, _, err = fleece("run", "-c", str(environments), "-e", "dev", *child)

    assert (code, err) == (0, "")
    assert rackspace.calls == []
    env = report(tmp_path)["env"]
    assert env["AWS_ACCESS_KEY_ID"] not in ("AKIAPROFILEKEY000001", "testing")
    assert env["AWS_SESSION_TOKEN"]


def test_the_profile_s_region_reaches_the_command(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environments = profile_environments(tmp_path, monkeypatch, "AKIAPROFILEKEY000002")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)

    code, _, err = fleece("run", "-c", str(environments), "-e", "dev", *child)

    assert (code, err) == (0, "")
    env = report(tmp_path)["env"]
    assert env["AWS_PROFILE"] is None  # the credentials are given, not the profile
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAPROFILEKEY000002"
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("us-west-2",) * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-a", "111111111111", "-e", "dev"],
            "--account and --environment cannot be used together",
        ),
        (["-e", "dev", "-s", "prod"], "--environment and --stage cannot be used"),
        ([], "give the target: --account, --environment or --stage"),
        (["-e", "nope"], "unknown environment 'nope'"),
        (["-a", "12345"], "--account '12345' is not a 12-digit AWS account id"),
        (
            ["-e", "dev"],
            "missing Rackspace credentials for dev: pass --username and --apikey, "
            "or set DEV_RS_USER and DEV_RS_KEY (or RS_USERNAME and RS_API_KEY)",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    environments_file: Path,
    args: list[str],
    message: str,
) -> None:
    code, out, err = fleece("run", "-c", str(environments_file), *args, *child)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err, err
    assert rackspace.calls == []


def test_unknown_stage_exits_2(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
) -> None:
    environments = tmp_path / "envs.yml"
    environments.write_text(
        "environments:\n  - {name: dev, account: '111111111111'}\n"
        "stages:\n  /dev-.*/: dev\n"
    )

    code, _, err = fleece("run", *ALICE, "-c", str(environments), "-s", "prod", *child)

    assert code == 2
    assert "unknown stage 'prod'" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: &a [x, x]\nb: &b [*a, *a]\nenvironments: [*b]\n",
            "alias *a is not allowed",
        ),
        (
            "environments:\n  - {name: dev, account: '1'}\n" "environments: []\n",
            "duplicate key",
        ),
        ("environments: [" * 200 + "]" * 200 + "\n", "nest"),
    ],
    ids=["alias", "duplicate-key", "deep"],
)
def test_a_hostile_environments_file_is_one_line_and_no_call(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    environments = tmp_path / "envs.yml"
    environments.write_text(text)

    code, out, err = fleece("run", *ALICE, "-c", str(environments), "-s", "dev", *child)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err and str(environments) in err, err
    assert rackspace.calls == []


def test_identity_401_is_one_clear_line_without_the_key(
    rackspace: FakeRackspace, child: list[str], fleece: Fleece
) -> None:
    code, out, err = fleece(
        "run", "-u", "alice", "-k", "wrong-key", "-a", "111111111111", *child
    )

    assert (code, out) == (2, "")
    assert err == (
        "Error: Rackspace identity refused user 'alice' (401 Unauthorized): "
        "check the username and API key\n"
    )


def test_faws_401_names_the_account(
    rackspace: FakeRackspace, child: list[str], fleece: Fleece
) -> None:
    code, _, err = fleece(
        "run", "-u", "bob", "-k", "bob-api-key", "-a", "333333333333", *child
    )

    assert code == 2
    assert err.startswith(
        "Error: Rackspace FAWS refused credentials for account 333333333333 "
        "(401 Unauthorized)"
    )
    assert "token-of-bob" not in err


def test_unreachable_identity_is_exit_1(
    rackspace: FakeRackspace,
    child: list[str],
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEECE_RACKSPACE_IDENTITY_URL", "http://127.0.0.1:9")

    code, _, err = fleece("run", *ALICE, "-a", "111111111111", *child)

    assert code == 1
    assert err.startswith("Error: could not reach Rackspace identity at ")
    assert "alice-api-key" not in err


def test_a_command_that_is_not_found_exits_127_with_a_hint(
    rackspace: FakeRackspace, fleece: Fleece
) -> None:
    code, _, err = fleece("run", *ALICE, "-a", "111111111111", "aws s3 ls")

    assert code == 127
    assert "command not found: 'aws s3 ls'" in err
    assert "uses no shell" in err


def test_fleece_config_gets_rackspace_credentials_through_the_same_path(
    rackspace: FakeRackspace,
    environments_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEV_RS_USER", "bob")
    monkeypatch.setenv("DEV_RS_KEY", "bob-api-key")
    dev = load_environments(environments_file).get("dev")

    credentials = session_for_environment(dev).get_credentials()

    assert credentials is not None
    assert credentials.access_key == faws_keys("111111111111")["accessKeyId"]


def test_without_rackspace_login_config_keeps_the_standard_chain(
    rackspace: FakeRackspace, environments_file: Path
) -> None:
    staging = load_environments(environments_file).get("staging")

    credentials = session_for_environment(staging).get_credentials()

    assert credentials is not None and credentials.access_key == "testing"
    assert rackspace.calls == []
