import re

from ..conftest import run_script


def test_quick_demo_runs_every_step_and_reuses_its_results(tmp_path):
    out = tmp_path / "demo"
    first = run_script("scripts/demo.py", "--out", str(out), "--quick", "--device", "cpu")
    assert first.returncode == 0, first.stderr[-2000:]
    assert re.search(r"MNIST-M acc = [01]\.\d{4} \(correct/total = \d+/500\)", first.stdout)
    assert re.search(r"SVHN acc = [01]\.\d{4} \(correct/total = \d+/500\)", first.stdout)
    for name in (
        "pb1/mnistm_grid.png",
        "pb1/svhn_reverse_process.png",
        "pb2/eta_grid.png",
        "pb2/interpolation_slerp.png",
        "pb2/interpolation_lerp.png",
    ):
        assert (out / "figures" / name).is_file(), name
    assert len(list((out / "pb1_outputs" / "svhn").glob("*.png"))) == 500
    # the demo ends with the report: its path printed, the grader's numbers on it, PB3 marked missing
    page = out / "report" / "index.html"
    assert first.stdout.rstrip().endswith(f"{page}  (and report.md next to it)") and page.is_file()
    report = (out / "report" / "report.md").read_text()
    mnistm_acc = re.search(r"MNIST-M acc = ([01]\.\d{4})", first.stdout).group(1)
    assert f"| MNIST-M | {mnistm_acc} |" in report and "![MNIST-M: rows: digits 0-9" in report
    assert "### CLIP zero-shot accuracy, five right and five wrong cases *(missing)*" in report

    model = out / "pb1" / "model.safetensors"
    before = model.read_bytes()
    second = run_script("scripts/demo.py", "--out", str(out), "--quick", "--device", "cpu")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing the PB1 model" in second.stdout and model.read_bytes() == before
