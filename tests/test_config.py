from pathlib import Path

import pytest

from dashboard.config import ConfigError, load_settings, parse_bool, parse_size


def test_defaults_without_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    # Relative defaults are resolved once, against the working directory (issue 11: "runs/runs/demo").
    assert s.runs_roots == (tmp_path / "runs",)
    assert s.data_dir == tmp_path / ".vlmlab"
    assert not s.allow_pickle and not s.trust_remote_code


def test_relative_roots_become_absolute_against_the_working_directory(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={"VLMLAB_RUNS_ROOT": "runs:other/../more", "VLMLAB_DATA_DIR": "data"})
    assert s.runs_roots == (tmp_path / "runs", tmp_path / "more")
    assert s.data_dir == tmp_path / "data"


def test_environment_values_are_parsed():
    s = load_settings(env={
        "VLMLAB_RUNS_ROOT": "/a:/b",
        "VLMLAB_DATA_DIR": "/tmp/x",
        "VLMLAB_MEMORY_BUDGET": "4GiB",
        "VLMLAB_DEVICE": "cuda:1",
        "VLMLAB_ALLOW_PICKLE": "yes",
        "VLMLAB_TRUST_REMOTE_CODE": "0",
        "VLMLAB_MAX_IMAGE_PIXELS": "1000",
    })
    assert s.runs_roots == (Path("/a"), Path("/b"))
    assert s.data_dir == Path("/tmp/x")
    assert s.memory_budget == "4GiB"
    assert s.device == "cuda:1"
    assert s.allow_pickle is True and s.trust_remote_code is False
    assert s.max_image_pixels == 1000


def test_environment_wins_over_secrets():
    s = load_settings(env={"VLMLAB_DEVICE": "cpu"}, secrets={"VLMLAB_DEVICE": "cuda", "VLMLAB_DATA_DIR": "/s"})
    assert s.device == "cpu"
    assert s.data_dir == Path("/s")


@pytest.mark.parametrize(("name", "value"), [
    ("VLMLAB_MEMORY_BUDGET", "lots"),
    ("VLMLAB_MEMORY_BUDGET", "-1"),
    ("VLMLAB_DEVICE", "tpu"),
    ("VLMLAB_ALLOW_PICKLE", "maybe"),
    ("VLMLAB_MAX_IMAGE_PIXELS", "many"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(env={name: value})


def test_parse_helpers():
    assert parse_size("512MB") == 512 * 10**6
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("1024") == 1024
    assert parse_bool("On") is True and parse_bool("off") is False


def test_log_level() -> None:
    assert load_settings(env={}).log_level == "WARNING"
    assert load_settings(env={"VLMLAB_LOG_LEVEL": " debug "}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="VLMLAB_LOG_LEVEL"):
        load_settings(env={"VLMLAB_LOG_LEVEL": "loud"})
