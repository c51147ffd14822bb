"""Hostile values from Helix (a login or a clip id of ../../etc) never leave data_dir, and `check` refuses them."""

from __future__ import annotations

import os


def test_hostile_login_and_clip_id_from_helix_build_no_path_outside_data_dir(command_world):
    root = command_world.root
    data = command_world.data_dir.resolve()
    outside = [p for p in root.rglob("*") if not p.resolve().is_relative_to(data)
               and p.resolve() != data and p.name not in ("twitchwatch.toml",)]
    assert not [p for p in outside if p != command_world.data_dir], outside
    # Nothing anywhere under the world is named after the hostile value's parts.
    assert not [p for p in root.rglob("etc*")]
    for path in data.rglob("*"):
        assert ".." not in path.relative_to(data).parts
        assert not path.is_symlink()
    # The hostile items were served, and dropped with one line each.
    assert "dropped 1 invalid item(s) (first: user_login is not a Twitch login)" in command_world.logs
    assert "dropped 1 invalid item(s) (first: id is not a clip id)" in command_world.logs


def test_check_of_a_login_that_is_not_a_twitch_login_exits_1_with_one_clear_line(command_world):
    code, out = command_world.outputs["check hostile"]
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == ["twitchwatch: error: '../../etc' is not a Twitch login (1 to 25 of a-z, 0-9 and _)"]


def test_no_file_was_written_next_to_the_world(command_world):
    siblings = set(os.listdir(command_world.root.parent))
    assert not [name for name in siblings if name.startswith("etc")]
