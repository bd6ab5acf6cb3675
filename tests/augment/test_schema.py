"""Protocol validation: every mistake gets one clear, located message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bioaug.augment import Protocol, load_protocol, parse_protocol, protocol_from_dict
from bioaug.errors import ProtocolError

GOOD = """\
bioaug_protocol: 1
name: test
description: a test protocol
views:
  - crop_size: 16
    steps:
      - random_resized_crop: {scale: [0.5, 1.0]}
      - rotate90: {p: 1.0}
      - flip: {horizontal: true, vertical: true, p: 0.5}
      - stain_jitter: {brightness: 0.2, contrast: 0.2, per_channel: true, p: 0.8}
  - same_as: 0
"""


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    return info.value.format()


def swap(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_good_protocol_parses_with_defaults_and_same_as() -> None:
    p = parse_protocol(GOOD, "good.yaml")
    assert isinstance(p, Protocol)
    assert p.name == "test" and p.n_views == 2 and p.crop_sizes == [16, 16]
    assert p.views[1].same_as == 0
    assert [s.op for s in p.views[1].steps] == [s.op for s in p.views[0].steps]
    sj = p.views[0].steps[3].params
    assert sj.brightness == (0.8, 1.2) and sj.gamma == (1.0, 1.0)
    d = p.to_dict()
    assert d["views"][1] == {"same_as": 0}
    assert d["views"][0]["steps"][0]["random_resized_crop"]["ratio"] == [0.75, 4 / 3]
    assert p.text == GOOD


def test_to_yaml_round_trips() -> None:
    p = parse_protocol(GOOD, "good.yaml")
    again = parse_protocol(p.to_yaml(), "again.yaml")
    assert again.to_dict() == p.to_dict()


def test_protocol_from_dict_and_with_crop_size() -> None:
    p = parse_protocol(GOOD)
    q = protocol_from_dict(p.to_dict(), source="<dict>")
    assert q.to_dict() == p.to_dict()
    assert p.with_crop_size(32).crop_sizes == [32, 32]


@pytest.mark.parametrize(("old", "new", "expected"), [
    # unknown op, with did-you-mean, at its line
    ("- rotate90: {p: 1.0}", "- rotate_90: {p: 1.0}",
     "x.yaml:8: views[0].steps[1].rotate_90: unknown op 'rotate_90' (did you mean 'rotate90'?)"),
    # unknown parameter
    ("{brightness: 0.2, contrast", "{brightnes: 0.2, contrast",
     "x.yaml:10: views[0].steps[3].stain_jitter.brightnes: unknown parameter 'brightnes' "
     "(did you mean 'brightness'?)"),
    # wrong type
    ("horizontal: true", "horizontal: sometimes",
     "x.yaml:9: views[0].steps[2].flip.horizontal: must be true or false, got the text "
     "'sometimes'"),
    ("{scale: [0.5, 1.0]}", "{scale: big}",
     "views[0].steps[0].random_resized_crop.scale: must be a range [low, high], got the text"),
    # out of range
    ("brightness: 0.2", "brightness: 1.5",
     "x.yaml:10: views[0].steps[3].stain_jitter.brightness: must be in [0, 1], got 1.5"),
    # p outside [0, 1]
    ("vertical: true, p: 0.5", "vertical: true, p: 1.5",
     "x.yaml:9: views[0].steps[2].flip.p: must be in [0, 1], got 1.5"),
    ("per_channel: true, p: 0.8", "per_channel: true, p: -0.1",
     "views[0].steps[3].stain_jitter.p: must be in [0, 1], got -0.1"),
    # a range given backwards
    ("{scale: [0.5, 1.0]}", "{scale: [1.0, 0.5]}",
     "x.yaml:7: views[0].steps[0].random_resized_crop.scale: range is backwards: [1, 0.5]"),
    # same_as pointing nowhere / at itself / at another same_as
    ("- same_as: 0", "- same_as: 3",
     "x.yaml:11: views[1].same_as: points nowhere: views[3] does not exist (there are 2 views"),
    ("- same_as: 0", "- same_as: 1", "x.yaml:11: views[1].same_as: points at itself"),
    ("- same_as: 0", "- same_as: 0\n  - same_as: 1",
     "x.yaml:12: views[2].same_as: points at views[1], which is itself a same_as view; point "
     "at views[0] directly"),
    ("- same_as: 0", "- same_as: zero", "views[1].same_as: must be the index of another view"),
    # missing version / future version
    ("bioaug_protocol: 1\n", "",
     "x.yaml: missing the format version: put `bioaug_protocol: 1` at the top"),
    ("bioaug_protocol: 1\n", "bioaug_protocol: 2\n",
     "x.yaml:1: bioaug_protocol: format version 2 is newer than this bioaug reads"),
    ("bioaug_protocol: 1\n", "bioaug_protocol: one\n",
     "x.yaml:1: bioaug_protocol: must be the integer 1"),
    # view-level problems
    ("  - crop_size: 16\n", "  - crop_size: 0\n", "x.yaml:5: views[0].crop_size: must be in"),
    ("  - crop_size: 16\n", "  - crop_size: 16.5\n", "views[0].crop_size: must be an integer"),
    ("name: test\n", "name: test\ncrop: 5\n", "x.yaml:3: crop: unknown key 'crop'"),
    ("views:\n", "view:\n", "unknown key 'view' (did you mean 'views'?)"),
    ("- rotate90: {p: 1.0}", "- rotate90: {p: 1.0}\n      - flip: {p: 0.5}\n        vertical: true",
     "x.yaml:9: views[0].steps[2]: a step has exactly one op, got 2 keys (flip, vertical)"),
    ("- rotate90: {p: 1.0}", "- rotate90: {p: 1.0", "YAML syntax error"),
    ("- rotate90: {p: 1.0}", "- rotate90: 0.5",
     "views[0].steps[1].rotate90: parameters of rotate90 must be a mapping"),
    ("- rotate90: {p: 1.0}", "- {rotate90: {}, flip: {}}",
     "views[0].steps[1]: a step has exactly one op, got 2 keys"),
])
def test_bad_input_message(tmp_path: Path, old: str, new: str, expected: str) -> None:
    message = error_of(tmp_path, swap(old, new))
    assert expected in message, message
    assert "Traceback" not in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "bioaug_protocol: 1\nviews: [\n  {crop_size: 3\n")
    assert message.startswith(f"{tmp_path / 'x.yaml'}:")
    assert "YAML syntax error" in message
    line = int(message.split(":")[1])
    assert 2 <= line <= 4


def test_empty_file(tmp_path: Path) -> None:
    assert "the protocol is empty" in error_of(tmp_path, "")
    assert "the protocol is empty" in error_of(tmp_path, "# only a comment\n\n")


def test_non_yaml_and_binary_files(tmp_path: Path) -> None:
    assert "not a protocol: expected a YAML mapping" in error_of(
        tmp_path, "This is a README, not a protocol.\n")
    assert "not a protocol" in error_of(tmp_path, "- a\n- list\n")
    png = tmp_path / "picture.yaml"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ProtocolError, match="binary file"):
        load_protocol(png)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ProtocolError, match="not UTF-8"):
        load_protocol(latin)


def test_unsupported_channel_count_for_declared_channels(tmp_path: Path) -> None:
    text = GOOD.replace("description: a test protocol\n",
                        "description: x\nchannels: [DAPI]\n").replace(
        "- rotate90: {p: 1.0}", "- color_jitter: {p: 0.8}")
    message = error_of(tmp_path, text)
    assert "views[0].steps[1].color_jitter: color_jitter supports exactly 3 channels (RGB), " \
           "but the protocol declares 1 channel" in message


def test_several_problems_are_reported_together_each_with_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("brightness: 0.2", "brightness: 1.5").replace(
        "vertical: true, p: 0.5", "vertical: true, p: 2")
    path = write(tmp_path, text)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    message = info.value.format()
    assert message.startswith(f"2 problems in {path}")
    assert f"{path}:9: views[0].steps[2].flip.p: must be in [0, 1], got 2" in message
    assert f"{path}:10: views[0].steps[3].stain_jitter.brightness: must be in [0, 1]" in message
    assert [line for line, _, _ in info.value.problems] == [9, 10]


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("name: test\n", "name: test\nname: again\n"))
    assert "x.yaml:3: name: key 'name' appears twice (lines 2 and 3)" in message


def test_unknown_file_and_unknown_shipped_name() -> None:
    with pytest.raises(ProtocolError, match="no such protocol file"):
        load_protocol("missing/protocol.yaml")
    with pytest.raises(ProtocolError, match="unknown protocol 'bbbc021-expret' "
                                           r"\(did you mean 'bbbc021-expert'\?\)"):
        load_protocol("bbbc021-expret")


def test_safe_loader_refuses_python_objects(tmp_path: Path) -> None:
    message = error_of(tmp_path, "bioaug_protocol: !!python/object/apply:os.system ['true']\n")
    assert "YAML syntax error" in message


def test_numbers_yaml_reads_as_text_get_a_hint(tmp_path: Path) -> None:
    message = error_of(tmp_path, swap("{scale: [0.5, 1.0]}", "{scale: [0.5, 1.0], p: '0.5'}"))
    assert "p: must be in [0, 1]" not in message
    assert "got the text '0.5' (quoted, so it is text; write 0.5 without quotes)" in message
    message = error_of(tmp_path, swap("brightness: 0.2", "brightness: 2e-1"))
    assert "YAML needs a dot in exponent notation" in message


# -- multi-crop: `count: N` ------------------------------------------------------------------
MULTI = """\
bioaug_protocol: 1
name: multi
views:
  - crop_size: 48
    count: 2
    steps:
      - random_resized_crop: {scale: [0.4, 1.0]}
  - crop_size: 24
    count: 6
    steps:
      - random_resized_crop: {scale: [0.05, 0.4]}
  - same_as: 1
    count: 2
"""


def test_count_makes_several_views_and_round_trips() -> None:
    p = parse_protocol(MULTI, "m.yaml")
    assert [v.count for v in p.views] == [2, 6, 2] and p.n_views == 10
    assert p.crop_sizes == [48, 48] + [24] * 8
    d = p.to_dict()["views"]
    assert d[0]["count"] == 2 and d[2] == {"same_as": 1, "count": 2}
    assert parse_protocol(p.to_yaml()).to_dict() == p.to_dict()
    assert p.with_crop_size(32).crop_sizes == [32] * 10
    # count 1 is the default and is not written out
    assert "count" not in parse_protocol(GOOD).to_dict()["views"][0]


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    count: 6\n", "    count: 0\n",
     "m.yaml:9: views[1].count: must be in [1, 64] (views drawn with this recipe), got 0"),
    ("    count: 2\n    steps", "    count: two\n    steps",
     "m.yaml:5: views[0].count: must be the number of views to draw with this recipe, an "
     "integer in [1, 64]; got text 'two'"),
    ("    count: 6\n", "    count: 2.5\n", "views[1].count: must be the number of views"),
    ("    count: 6\n", "    cont: 6\n",
     "m.yaml:9: views[1].cont: unknown view key 'cont' (did you mean 'count'?)"),
    ("  - same_as: 1\n    count: 2\n", "  - same_as: 1\n    count: 100\n",
     "m.yaml:13: views[2].count: must be in [1, 64]"),
    ("{scale: [0.05, 0.4]}", "{scale: [0.4, 0.05]}",
     "m.yaml:11: views[1].steps[0].random_resized_crop.scale: range is backwards"),
])
def test_count_errors_name_the_key_path(tmp_path: Path, old: str, new: str,
                                        expected: str) -> None:
    assert old in MULTI
    path = tmp_path / "m.yaml"
    path.write_text(MULTI.replace(old, new))
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    message = info.value.format()
    assert expected in message, message


NAMED = """\
bioaug_protocol: 1
name: flow
channels: [Brightfield, DNA, Darkfield]
views:
  - crop_size: 8
    steps:
      - channel_dropout: {channels: [brightfield, Darkfield], max_dropped: 2, p: 0.9}
  - same_as: 0
"""


def test_channel_names_resolve_case_blind_and_build_to_indices() -> None:
    import torch

    from bioaug.augment import build_pipeline

    protocol = parse_protocol(NAMED, "flow.yaml")
    op = build_pipeline(protocol, n_channels=3).views[0].ops[0]
    assert op.selected_channels("channels", 3) == [0, 2]
    views = build_pipeline(protocol, n_channels=3)(
        torch.rand(500, 3, 8, 8) * 0.9 + 0.05, generator=torch.Generator().manual_seed(0))
    blank = (views[0] == 0).flatten(2).all(2)
    assert not bool(blank[:, 1].any()) and bool(blank[:, 0].any()) and bool(blank[:, 2].any())


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("Darkfield], max", "Darkfeld], max", "flow.yaml:7: views[0].steps[0].channel_dropout.channels: "
                                "unknown channel 'Darkfeld' (did you mean 'Darkfield'?); "
                                "the channels are: Brightfield, DNA, Darkfield"),
    ("[brightfield, Darkfield]", "[0, 3]", "channel index 3 is out of range: the data has 3 "
                                           "channels (0 to 2)"),
])
def test_channel_selection_errors_name_the_line(old: str, new: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_protocol(NAMED.replace(old, new), "flow.yaml")
    assert expected in str(err.value)


def test_channel_names_without_declared_channels_fail_when_built() -> None:
    from bioaug.augment import build_pipeline

    text = NAMED.replace("channels: [Brightfield, DNA, Darkfield]\n", "")
    protocol = parse_protocol(text, "flow.yaml")  # nothing to check names against yet
    with pytest.raises(ProtocolError) as err:
        build_pipeline(protocol, n_channels=3)
    assert "views[0].steps[0].channel_dropout.channels: channel 'brightfield' is a name, " \
           "but the protocol declares no channel names" in str(err.value)
    op = build_pipeline(protocol, n_channels=3, channel_names=["Brightfield", "DNA",
                                                                "Darkfield"]).views[0].ops[0]
    assert op.selected_channels("channels", 3) == [0, 2]
