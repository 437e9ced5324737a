"""The HTML report: self-contained, every image loads, no console errors (headless
Chromium when it is installed; `apt-get install chromium`)."""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from elbokit.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = ("<script>window.addEventListener('load',function(){var imgs=[].slice.call("
         "document.images);var bad=imgs.filter(function(i){return !(i.complete&&"
         "i.naturalWidth>0)});var d=document.createElement('div');d.id='elbokit-check';"
         "d.textContent='images '+imgs.length+' broken '+bad.length;"
         "document.body.appendChild(d);});</script>")


def render(html_path: Path):
    """Load a page in headless Chromium; return (n_images, n_broken, console_lines)."""
    probe_path = html_path.with_name("probe_" + html_path.name)
    probe_path.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", "--virtual-time-budget=5000", "--dump-dom", probe_path.as_uri()],
            capture_output=True, text=True, timeout=120)
    match = re.search(r'id="elbokit-check">images (\d+) broken (\d+)<', result.stdout)
    assert match, f"page did not finish loading: {result.stderr[-2000:]}"
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    return int(match.group(1)), int(match.group(2)), console


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--vae-epochs", "2", "--k", "10",
                 "--no-report"]) == 0
    assert main(["report", str(out)]) == 0
    return out / "report.html"


def test_report_is_self_contained(demo_report):
    text = demo_report.read_text()
    assert "<img" in text and "data:image/png;base64," in text
    # no network and no local files: every src is inline data
    assert not re.search(r'src="(?!data:)', text)
    assert not re.search(r"https?://", text)
    for kind in ("pca", "ppca", "fa", "linear-ae", "vae"):
        assert f">{kind} (" in text


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                    "(apt-get install chromium); the browser check is skipped")
def test_report_renders_in_chromium(demo_report, tmp_path):
    n_images, n_broken, console = render(demo_report)
    assert n_images >= 5 * 6 and n_broken == 0 and console == []
    # the probe itself must catch a broken image and a console error (negative control)
    control = tmp_path / "control.html"
    control.write_text("<html><body><img src='data:image/png;base64,AAAA'>"
                       "<script>console.error('boom')</script></body></html>")
    n_images, n_broken, console = render(control)
    assert (n_images, n_broken) == (1, 1) and any("boom" in line for line in console)


def test_report_on_missing_directory_is_a_clean_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
