import json
import shutil

from harness.cli import main


def test_check_data_passes_on_the_mini_split(ucf_mini, capsys):
    assert main(["check-data", "--dataset", "ucf101", "--data-root", str(ucf_mini), "--no-progress"]) == 0
    assert "64 items listed, 64 decoded" in capsys.readouterr().out


def test_check_data_reports_planted_faults_precisely(ucf_mini, tmp_path, capsys):
    root = tmp_path / "ucf"
    shutil.copytree(ucf_mini, root)
    missing = root / "UCF-101" / "Biking" / "v_Biking_g08_c01.avi"
    missing.unlink()
    truncated = root / "UCF-101" / "Hammering" / "v_Hammering_g01_c02.avi"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    split = root / "ucfTrainTestlist" / "trainlist01.txt"
    split.write_bytes(split.read_bytes() + b"Biking/not a valid line\r\n")
    out = tmp_path / "report.json"
    assert main(["check-data", "--dataset", "ucf101", "--data-root", str(root), "--no-progress",
                 "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    errors = [r["error"] for r in report["rejected"]]
    assert any(str(missing) in e and "missing" in e for e in errors)
    n_lines = len(split.read_bytes().splitlines())
    assert any(f"{split}:{n_lines}" in e for e in errors)
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]
    assert main(["check-data", "--task", "ucf101-recon", "--data-root", str(root), "--no-progress",
                 "--strict"]) == 2
