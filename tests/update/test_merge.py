"""The pure steps of an update: the merge of one file, and the next answers."""

from fleece.service.conflicts import ConflictRecord, block_lines
from fleece.service.merge import Merged, merge_file
from fleece.service.render import load_template
from fleece.service.state import next_answers
from fleece.service.update import unified_diff

from .scenario import V2

BASE = b"one\ntwo\nthree\nfour\nfive\n"


def test_changes_on_separate_lines_are_both_kept() -> None:
    ours = BASE.replace(b"one", b"ONE")
    theirs = BASE.replace(b"five", b"FIVE")

    merged = merge_file(BASE, ours, theirs, "fleece 2")

    assert merged == Merged(b"ONE\ntwo\nthree\nfour\nFIVE\n", conflict=False)


def test_the_same_line_changed_differently_is_a_labelled_conflict() -> None:
    merged = merge_file(
        BASE, BASE.replace(b"three", b"3"), BASE.replace(b"three", b"III"), "fleece 2"
    )

    assert merged.conflict
    assert merged.data == (
        b"one\ntwo\n<<<<<<< yours\n3\n=======\nIII\n>>>>>>> fleece 2\nfour\nfive\n"
    )


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    changed = BASE.replace(b"two", b"2")

    assert merge_file(BASE, changed, changed, "fleece 2").data == changed


def test_a_file_new_on_both_sides_conflicts_where_they_differ() -> None:
    merged = merge_file(None, b"a\nmine\n", b"a\ntheirs\n", "fleece 2")

    assert merged.conflict
    assert b"mine\n" in merged.data and b"theirs\n" in merged.data


def test_a_binary_file_changed_on_both_sides_keeps_the_users_version() -> None:
    merged = merge_file(b"\0base", b"\0mine", b"\0theirs", "fleece 2")

    assert (merged.data, merged.conflict) == (b"\0mine", True)


def test_a_conflict_block_is_found_by_its_first_line() -> None:
    text = b"a\n<<<<<<< yours\nb\n=======\nc\n>>>>>>> fleece 2\n"

    assert block_lines(text, "<<<<<<< yours", ">>>>>>> fleece 2") == [2]


def test_lone_markers_are_not_a_conflict() -> None:
    setext = b"Title\n=======\n\ntext\n"
    quote = b">>>>>>> fleece 2\n<<<<<<< yours\n"

    assert block_lines(setext, "<<<<<<< yours", ">>>>>>> fleece 2") == []
    assert block_lines(quote, "<<<<<<< yours", ">>>>>>> fleece 2") == []


def test_blocks_with_other_markers_are_not_counted() -> None:
    text = b"<<<<<<< HEAD\na\n=======\nb\n>>>>>>> feature\n"

    assert block_lines(text, "<<<<<<< yours", ">>>>>>> fleece 2") == []


def test_a_record_counts_only_the_blocks_beyond_those_the_file_had() -> None:
    block = b"<<<<<<< yours\na\n=======\nb\n>>>>>>> fleece 2\n"
    record = ConflictRecord("README.md", "<<<<<<< yours", ">>>>>>> fleece 2", 1)

    assert record.remaining(b"example:\n" + block) == []
    assert record.remaining(b"example:\n" + block + b"x\n" + block) == [8]


def test_renamed_question_carries_its_answer_and_unknown_ones_are_dropped() -> None:
    recorded = {"_fleece_version": "1.9.0", "greeting": "Hi", "colour": "red"}

    answers, notes = next_answers(load_template(V2), recorded, ["memory_size=512"])

    assert answers == {"salutation": "Hi", "memory_size": 512}
    assert notes == [
        "answer greeting is now called salutation",
        "answer colour='red' dropped: the v2 template no longer asks it",
    ]


def test_data_wins_over_a_renamed_answer() -> None:
    answers, _ = next_answers(load_template(V2), {"greeting": "Hi"}, ["salutation=Yo"])

    assert answers == {"salutation": "Yo"}


def test_diff_of_a_new_file_starts_at_dev_null() -> None:
    assert unified_diff("a.txt", None, b"x\n") == (
        "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+x\n"
    )


def test_diff_marks_a_missing_final_newline() -> None:
    assert unified_diff("a.txt", b"x\n", b"y") == (
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n\\ No newline at end of file\n"
    )
