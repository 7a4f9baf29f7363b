"""Lambda's size limits: only the unzipped one is hard; the zipped one is for
direct uploads, while the generated template deploys the zip through S3."""

import os

import pytest

from fleece.build.artifact import check_limits
from fleece.build.ziparchive import ZipSummary
from fleece.errors import FleeceError
from tests.builds.build_support import Fleece, IndexServer, MakeService

MB = 1024 * 1024


def summary(zipped_mb: float, unzipped_mb: float) -> ZipSummary:
    return ZipSummary(1, int(zipped_mb * MB), int(unzipped_mb * MB), "0" * 64)


def test_past_50_mb_zipped_the_build_warns_and_writes_the_zip(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("")
    # Random bytes do not compress: past 50 MB zipped, far from 250 unzipped.
    (service / "src" / "model.bin").write_bytes(os.urandom(51 * MB))

    code, out, err = fleece("build", str(service))

    assert code == 0
    assert err.startswith("Warning: the zip is 51.")
    assert "zipped, past Lambda's 50.0 MB limit of a direct upload" in err
    assert "deploy it through S3 (sam deploy does)" in err
    assert err.count("\n") == 1
    assert out.startswith("Built ")
    assert (service / "dist" / "lambda_function.zip").stat().st_size > 50 * MB


def test_small_zips_get_no_warning() -> None:
    assert check_limits(summary(10, 100)) == []


def test_near_the_unzipped_limit_the_build_warns() -> None:
    [warning] = check_limits(summary(30, 210))

    assert warning == "the zip is 210.0 MB unzipped, near Lambda's 250.0 MB limit"


def test_near_both_limits_both_warnings_are_given() -> None:
    warnings = check_limits(summary(55, 240))

    assert [w.split(",")[0] for w in warnings] == [
        "the zip is 240.0 MB unzipped",
        "the zip is 55.0 MB zipped",
    ]


def test_past_250_mb_unzipped_the_build_fails_whatever_the_zipped_size() -> None:
    with pytest.raises(FleeceError, match=r"251\.0 MB unzipped, past Lambda's 250"):
        check_limits(summary(1, 251))


def test_the_hard_limit_is_at_250_mb_not_above() -> None:
    assert check_limits(summary(1, 250)) != []  # near, not past
