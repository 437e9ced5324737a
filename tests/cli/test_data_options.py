"""The data specs and data-file errors through the command line (one line, exit 2)."""

import json

import pytest

from elbokit.cli import main


@pytest.mark.parametrize("spec, n_features", [("breast-cancer", 30), ("wine", 13),
                                              ("diabetes", 10), ("iris", 4)])
def test_builtin_tables_work_as_data(tmp_path, spec, n_features):
    out = tmp_path / spec
    assert main(["fit", "pca", "--data", spec, "--latent", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_features"] == n_features
    assert json.loads((out / "run.json").read_text())["image_shape"] is None
    assert main(["evaluate", str(out), "--data", spec]) == 0


@pytest.mark.parametrize("content, argv, message", [
    (b"0x10,1\n3,4\n5,6\n", [], "'0x10' at line 1, column 1"),
    ("Gr\xf6\xdfe,b\n1,2\n3,4\n".encode("latin-1"), [], "line 1 is not valid UTF-8"),
    (b"a,b\n1," + b"9" * 200_000 + b"\n3,4\n", [], "field limit"),
    (b"a,b\n1,\n3,4\n5,6\n", [], "missing value '' at line 2, column 2"),
    (b"a,b\n1,2\n3,4\n", ["--seed", "-1"], "--seed must be an integer in [0, "),
])
def test_bad_csv_files_are_one_line_with_exit_code_2(tmp_path, capsys, content, argv,
                                                      message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    out = tmp_path / "o"
    assert main(["fit", "pca", "--data", str(path), "--latent", "1", "--out", str(out)]
                + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_missing_csv_cells_are_accepted_by_vbpca(tmp_path):
    path = tmp_path / "m.csv"
    rows = [f"{i},{2 * i + (i % 3)},{'' if i == 4 else i % 5}" for i in range(30)]
    path.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    assert main(["fit", "vbpca", "--data", str(path), "--max-latent", "2", "--max-iter", "50",
                 "--out", str(tmp_path / "v")]) == 0
