import json
import os
import subprocess
import sys


from tests.conftest import grid_clip


def test_atvg_evaluate_writes_a_valid_report(shared_data, untrained_model, tmp_path):
    report_path = tmp_path / "report.json"
    silent = os.path.join(shared_data, "wild", "edtalk_mouth_source.mp4")
    command = [sys.executable, "-m", "atvg_tf.cli", "evaluate", grid_clip(shared_data), grid_clip(shared_data, "bbal7s"),
               silent, "--model", untrained_model, "--report", str(report_path), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "static_baseline" in result.stdout and "LMD" in result.stdout
    report = json.loads(report_path.read_text())
    assert [row["clip"] for row in report["clips"]] == ["bbaf4p.mpg", "bbal7s.mpg"]
    assert report["skipped"][0]["reason"].endswith("evaluation needs the clip's sound.")
    for key in ("model", "static_baseline", "ground_truth_landmarks"):
        for metric in ("lmd", "ssim", "psnr", "psnr_legacy"):
            assert isinstance(report[key][metric], float)
        assert report[key]["lmd_failed_frames"] >= 0
    row = report["clips"][0]
    assert row["frames"] == 74  # 75 frames, the identity frame not scored
    # The static baseline is the real first frame: close to the clip, but not equal to it.
    assert 0.5 < report["static_baseline"]["ssim"] < 1.0 and report["static_baseline"]["psnr"] > 20
    assert report["static_baseline"]["lmd"] > 0.2  # GRID speakers do move their lips


def test_evaluate_rejects_a_missing_model_folder(shared_data, tmp_path):
    command = [sys.executable, "-m", "atvg_tf.cli", "evaluate", grid_clip(shared_data), "--model", str(tmp_path),
               "--report", str(tmp_path / "r.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "is not a model folder" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r.json").exists()
