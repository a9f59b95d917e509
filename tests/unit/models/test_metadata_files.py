"""Model metadata in both vocabularies, target text, and reading model files within limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coinfleet.errors import ModelLoadError
from coinfleet.models.bundle import read_bundle
from coinfleet.models.files import artifact_beside, detect_file_format, read_limited
from coinfleet.models.metadata import (
    SIDECAR_MAX_BYTES,
    ModelMeta,
    flag_metadata,
    parse_metadata,
    parse_target_text,
    read_sidecar,
    safe_name,
)
from coinfleet.targets import TargetSpec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("up 10% in 5m", TargetSpec(kind="change", direction="up", change_percent=10, horizon_seconds=300)),
        (
            "down 2.5 % 90s",
            TargetSpec(kind="change", direction="down", change_percent=2.5, horizon_seconds=90),
        ),
        (
            "price_close > 0.0001 at 1h",
            TargetSpec(
                kind="classic", variable="price_close", operator=">", value=1e-4, horizon_seconds=3600
            ),
        ),
    ],
)
def test_target_text(text: str, expected: TargetSpec) -> None:
    assert parse_target_text(text) == expected
    assert parse_target_text(expected.describe()) == expected  # what `models list` prints reads back


def test_target_text_that_cannot_be_read_says_how_to_write_it() -> None:
    with pytest.raises(ValueError, match="up 10% in 5m"):
        parse_target_text("moon soon")


def test_predecessor_fields_as_they_are() -> None:
    meta = parse_metadata(
        {
            "id": 7,
            "model_id": 3,
            "custom_name": "my model (v2)",
            "model_type": "random_forest",
            "features": '["price_change_1", "phase"]',
            "phases": [1, 3],
            "target_variable": "price_close",
            "future_minutes": 5,
            "price_change_percent": "-10.0000",
            "target_direction": "down",
            "training_f1": "0.5100",
            "confusion_matrix": {"tp": 3},
            "params": {"n_estimators": 100},
            "alert_threshold": "0.75",
        }
    )
    assert meta.name == "my-model-v2"
    assert meta.algorithm == "random_forest"
    assert meta.features == ("price_change_1", "phase")
    assert meta.phases == [1, 3]
    assert meta.target == TargetSpec(kind="change", direction="down", change_percent=10, horizon_seconds=300)
    assert meta.metrics == {
        "training_f1": 0.51,
        "confusion_matrix": {"tp": 3},
        "params": {"n_estimators": 100},
    }
    assert meta.alert_threshold == 0.75


def test_predecessor_classic_target_needs_a_horizon() -> None:
    classic = {"target_variable": "market_cap_close", "target_operator": ">", "target_value": 50}
    assert parse_metadata({**classic, "future_minutes": 10}).target == TargetSpec(
        kind="classic", variable="market_cap_close", operator=">", value=50, horizon_seconds=600
    )
    with pytest.raises(ModelLoadError, match="future_minutes"):
        parse_metadata(classic)


def test_flags_win_over_the_sidecar(tmp_path: Path) -> None:
    sidecar = tmp_path / "m.meta.toml"
    sidecar.write_text('features = ["phase"]\ntarget = "up 5% in 1m"\nalgorithm = "xgboost"\n')
    meta = read_sidecar(sidecar).merged(flag_metadata(target="down 3% in 2m", features="phase,rows_seen"))
    assert meta.features == ("phase", "rows_seen")
    assert meta.target == TargetSpec(kind="change", direction="down", change_percent=3, horizon_seconds=120)
    assert meta.algorithm == "xgboost"
    assert ModelMeta().merged(ModelMeta()) == ModelMeta()


def test_bad_flags_and_sidecars_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="invalid option"):
        flag_metadata(target="sideways")
    broken = tmp_path / "m.meta.json"
    broken.write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read model metadata"):
        read_sidecar(broken)


def test_a_sidecar_is_read_only_from_a_regular_file_under_its_limit(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a regular file"):
        read_sidecar(Path("/dev/zero"))  # never read without end
    huge = tmp_path / "m.meta.json"
    huge.write_text(json.dumps({"features": ["phase"], "notes": "x" * SIDECAR_MAX_BYTES}))
    with pytest.raises(ModelLoadError, match="larger than the limit of 1 MB"):
        read_sidecar(huge)


def test_safe_name() -> None:
    assert safe_name("  Pump Finder / v2 ") == "Pump-Finder-v2"
    assert safe_name("???") == "model"
    assert len(safe_name("x" * 200)) == 64


def test_formats_by_content_and_suffix() -> None:
    assert detect_file_format("model.json", b"\x80\x04...") == "pickle"  # a pickle whatever its name
    assert detect_file_format("model.joblib", b"x") == "pickle"
    assert detect_file_format("m.ubj", b"{") == "xgboost-json"
    with pytest.raises(ModelLoadError, match="--format"):
        detect_file_format("model.bin", b"{")


def test_files_have_a_size_limit_and_must_be_regular(tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * 2048)
    assert len(read_limited(big, 2048)) == 2048
    with pytest.raises(ModelLoadError, match="larger than the limit"):
        read_limited(big, 1024)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        read_limited(Path("/dev/zero"))
    with pytest.raises(ModelLoadError, match="not a regular file"):
        read_limited(tmp_path)


def _bundle(folder: Path, artifact: str) -> Path:
    meta = {
        "name": "b",
        "algorithm": "xgboost",
        "format": "xgboost-json",
        "artifact": artifact,
        "features": ["phase"],
        "target": {"kind": "change", "direction": "up", "change_percent": 5, "horizon_seconds": 60},
    }
    path = folder / "b.model.json"
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("artifact", ["../secret.json", "/etc/passwd", "/dev/zero", "sub/b.json", "..", ""])
def test_a_bundle_artifact_must_lie_beside_it(tmp_path: Path, artifact: str) -> None:
    with pytest.raises(ModelLoadError, match="beside the bundle"):
        read_bundle(_bundle(tmp_path, artifact))


def test_an_artifact_linking_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    folder = tmp_path / "bundle"
    folder.mkdir()
    os.symlink(outside, folder / "b.json")
    with pytest.raises(ModelLoadError, match="links outside"):
        artifact_beside(_bundle(folder, "b.json"), "b.json")
