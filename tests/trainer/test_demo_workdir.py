"""`demo --workdir`: a directory the demo made is reused from scratch; anyone else's is left alone."""

from __future__ import annotations

import pytest

from monitor.errors import UsageError
from trainer.demo import WORKDIR_MARK, prepare_workdir, write_inspect_config


def fill_like_a_demo(work):
    (work / "twitchwatch.db").write_bytes(b"old")
    (work / "data" / "models").mkdir(parents=True)
    (work / "data" / "models" / "ACTIVE").write_text("old-model")


def test_a_new_or_empty_directory_becomes_the_demos(tmp_path):
    new = tmp_path / "a" / "demo"
    prepare_workdir(new)
    assert [p.name for p in new.iterdir()] == [WORKDIR_MARK]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_workdir(empty)
    assert (empty / WORKDIR_MARK).is_file()


def test_a_directory_the_demo_made_starts_over_keeping_what_else_is_there(tmp_path):
    work = tmp_path / "demo"
    prepare_workdir(work)
    fill_like_a_demo(work)
    (work / "notes.txt").write_text("mine")
    prepare_workdir(work)
    assert sorted(p.name for p in work.iterdir()) == sorted([WORKDIR_MARK, "notes.txt"])


def test_a_directory_an_older_demo_left_is_known_by_its_config(tmp_path):
    from monitor.config import load_config, replace

    work = tmp_path / "demo"
    work.mkdir()
    fill_like_a_demo(work)
    cfg = replace(load_config(environ={}), storage={"database_url": f"sqlite:///{work / 'twitchwatch.db'}",
                                                    "data_dir": str(work / "data")})
    write_inspect_config(cfg, work / "twitchwatch.toml")
    prepare_workdir(work)
    assert not (work / "data").exists() and not (work / "twitchwatch.db").exists()


def test_a_non_empty_directory_it_did_not_make_is_refused_and_untouched(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    fill_like_a_demo(work)
    (work / "twitchwatch.toml").write_text("[storage]\n")  # someone's own config, not the demo's
    with pytest.raises(UsageError, match="not empty and was not made by the demo"):
        prepare_workdir(work)
    assert (work / "twitchwatch.db").read_bytes() == b"old"
    assert (work / "data" / "models" / "ACTIVE").read_text() == "old-model"
    assert not (work / WORKDIR_MARK).exists()


def test_demo_refuses_such_a_workdir_before_starting_anything(cli, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    code, out, err = cli("demo", "--workdir", str(tmp_path))
    assert code == 2 and out == ""
    assert f"--workdir {tmp_path} is not empty" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
