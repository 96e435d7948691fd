"""`morphlake report` through the CLI: the page's content, the legacy vs ONNX agreement, and the page in a real
headless browser (Debian's Chromium driven by Playwright; skipped where no browser is installed)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from morphlake import DEFAULT_MODEL_NAME
from morphlake.embed.build import write_demo_encoder

ROOT = Path(__file__).resolve().parents[1]


def chromium() -> str | None:
    """The system's Chromium ($MORPHLAKE_CHROMIUM, else on PATH); Playwright downloads none."""
    found = os.environ.get("MORPHLAKE_CHROMIUM") or next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    return found


def make_report(cli, lake, output, *args):
    result = cli("report", "--lake", lake, "-o", output, *args)
    assert result.exit_code == 0, result.output
    return result, output.read_text()


def test_report_is_one_self_contained_page(cli, embedded_lake, demo_template, tmp_path):
    result, html = make_report(cli, embedded_lake, tmp_path / "report.html")
    assert f"model {DEFAULT_MODEL_NAME}, 18 embeddings, map of 18 of a 18-row sample, 18 thumbnails" in result.output
    assert f"morphlake report: model {DEFAULT_MODEL_NAME}" in html
    assert "DEMO weights" in html  # which model and data it shows
    assert "18 of 18 df02 rows have an embedding" in html and "10 come from the legacy store, 8 from ONNX" in html
    assert "fitted on a sample of 18 of the 18 df03 rows" in html
    # offline: no external script, style or image; the charts' JS and the thumbnails are in the page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)
    assert len(re.findall(r"data:image/jpeg;base64,", html)) == 18
    assert html.count('class="plotly-graph-div"') == 4  # coverage, map, dimensions, runs (no agreement yet)
    assert "No snip has both a legacy-store row" in html
    assert "20250305_24hpf_lmx1b" in html and "nuisance" in html and "biological" in html
    # the demo's encoder has no state dict: the agreement recipe says what it needs
    assert "This needs the model's trained weights, <code>encoder_reformatted.pt</code>" in html
    assert f"looked in {demo_template / 'models' / 'legacy' / DEFAULT_MODEL_NAME}" in html  # where the runs lead
    assert "install the export extra: pip install &#39;torch&gt;=2.2&#39;" in html
    assert f"morphlake embed --model {DEFAULT_MODEL_NAME}_onnx.onnx --lake {embedded_lake}" in html

    small = tmp_path / "small.html"
    result, html = make_report(cli, embedded_lake, small, "--sample", "10", "--points", "8", "--thumbnails", "3")
    assert "map of 8 of a 10-row sample, 3 thumbnails" in result.output
    assert len(re.findall(r"data:image/jpeg;base64,", html)) == 3


def test_report_compares_the_legacy_store_with_onnx_rows(cli, embedded_lake, demo_template, tmp_path):
    # the same demo weights under a second model name: ONNX rows for every ledger snip, the store's too
    check = write_demo_encoder(tmp_path / "check.onnx", "check_onnx", seed=0)
    assert cli("embed", "--model", check, "--lake", embedded_lake).exit_code == 0
    result, html = make_report(cli, embedded_lake, tmp_path / "report.html")
    assert "10 snips compared with ONNX" in result.output
    assert "10 snips have both a legacy-store row" in html and "(model check_onnx" in html
    smallest = float(re.search(r"Cosine of z_mu: smallest ([0-9.]+)", html).group(1))
    assert smallest > 0.9999  # the demo store was written by the same encoder
    assert html.count('class="plotly-graph-div"') == 5


@pytest.mark.export
def test_the_agreement_recipe_works_as_the_page_writes_it(cli, ingested, encoder_path, tmp_path, monkeypatch):
    """Where the model folder has its state dict, the page's three commands, run as written, give the comparison."""
    torch = pytest.importorskip("torch")
    from morphlake.embed.architecture import EncoderSpec
    from morphlake.embed.build import demo_encoder_weights

    assert cli("embed", "--model", encoder_path, "--lake", ingested).exit_code == 0
    state = encoder_path.parent / "encoder_reformatted.pt"  # in the model folder the lake's runs lead to
    weights = demo_encoder_weights(EncoderSpec(), seed=0)  # the demo encoder's weights, as a state dict
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, state)
    _, html = make_report(cli, ingested, tmp_path / "first.html")
    commands = re.search(r'<pre class="commands">(.*?)</pre>', html, re.S).group(1).replace("&#39;", "'")
    assert "This needs" not in html and str(state) in commands
    monkeypatch.chdir(tmp_path)
    for line in commands.splitlines():
        args = shlex.split(line)
        assert args[0] == "morphlake"
        result = cli(*args[1:])
        assert result.exit_code == 0, result.output
    assert "10 snips compared with ONNX" in result.output
    assert "10 snips have both a legacy-store row" in (tmp_path / "report.html").read_text()


def test_report_refuses_a_model_the_lake_lacks(cli, embedded_lake, tmp_path):
    result = cli("report", "--lake", embedded_lake, "--model-name", "nope", "-o", tmp_path / "r.html")
    assert result.exit_code == 1
    assert "has no embeddings of model nope" in result.stderr and DEFAULT_MODEL_NAME in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_umap_map_needs_its_extra(cli, embedded_lake, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as where the `umap` extra is not installed
    result = cli("report", "--lake", embedded_lake, "--map", "umap", "-o", tmp_path / "r.html")
    assert result.exit_code == 1
    assert (
        "the UMAP map needs umap-learn" in result.stderr
        and "install the umap extra: pip install 'umap-learn>=0.5'" in result.stderr
    )
    assert not (tmp_path / "r.html").exists()


def open_in_browser(page_file, shot_file, *, charts: int, bars: tuple[str, ...], points: int) -> str:
    """Open the page in headless Chromium with every network request blocked; check that it logs no error or
    warning, that every chart draws its marks, and that a click on the map shows the snip; check a screenshot
    of the map for ink in several colours. Returns the click panel's text."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    problems, requests = [], []

    def block(route):
        requests.append(route.request.url)
        route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else block(r))
        page.goto(page_file.as_uri())
        assert page.locator(".plotly-graph-div").count() == charts
        page.wait_for_function(f"window.chartsDrawn === {charts}", timeout=60_000)
        page.set_viewport_size({"width": 640, "height": 1000})  # a narrow window: long commands wrap in their card
        fits = "[...document.querySelectorAll('pre.commands')].map(p => p.scrollWidth <= p.clientWidth)"
        assert all(page.evaluate(fits))
        page.set_viewport_size({"width": 1400, "height": 1000})
        for name in bars:  # every chart drew its marks
            assert page.locator(f"#chart-{name} .barlayer .point").count() > 0, name
        assert page.locator("#chart-map .scatterlayer .point").count() == 2 * points  # two panels
        page.locator("#chart-map .scatterlayer .trace .point").first.click(force=True)
        page.wait_for_function("document.getElementById('snip-body').innerText.startsWith('20')")
        panel = page.locator("#snip-body").inner_html()
        page.locator("#chart-map").screenshot(path=str(shot_file))
        browser.close()
    assert problems == [] and requests == []  # no console errors; nothing fetched from anywhere
    pixels = np.asarray(Image.open(shot_file).convert("RGB")).reshape(-1, 3)
    ink = (pixels < 230).any(axis=1)
    assert 0.01 < ink.mean() < 0.6  # the map is drawn, not blank (and not a solid block)
    coloured = pixels[ink & (np.ptp(pixels, axis=1) > 60)]
    assert len(np.unique(coloured // 32, axis=0)) >= 4  # points in several colours (perturbations, stage scale)
    return panel


needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="no Chromium here (apt-get install chromium; .ci/run installs it)"
)


@needs_chromium
def test_report_draws_in_a_headless_browser(cli, embedded_lake, tmp_path):
    check = write_demo_encoder(tmp_path / "check.onnx", "check_onnx", seed=0)
    assert cli("embed", "--model", check, "--lake", embedded_lake).exit_code == 0
    page_file = tmp_path / "report.html"
    make_report(cli, embedded_lake, page_file)
    bars = ("coverage", "dims", "agreement", "runs")
    panel = open_in_browser(page_file, tmp_path / "map.png", charts=5, bars=bars, points=18)
    assert '<img src="data:image/jpeg;base64,' in panel  # the clicked snip's image


@needs_chromium
def test_the_agreement_recipe_wraps_in_its_card(cli, embedded_lake, tmp_path):
    """No ONNX rows to compare with: the page shows the recipe, whose long commands stay in their card."""
    _, html = make_report(cli, embedded_lake, tmp_path / "report.html")
    assert '<pre class="commands">' in html
    open_in_browser(tmp_path / "report.html", tmp_path / "map.png", charts=4, bars=("coverage", "dims"), points=18)


@needs_chromium
def test_report_on_a_20k_snip_lake_draws_in_a_headless_browser(cli, tmp_path):
    lake = tmp_path / "lake"
    made = subprocess.run(
        [sys.executable, "-m", "benchmarks.synthetic_lake", str(lake), "20000"], cwd=ROOT, capture_output=True
    )
    assert made.returncode == 0, made.stderr
    result, html = make_report(cli, lake, tmp_path / "report.html")
    assert "20000 embeddings, map of 5000 of a 20000-row sample, 300 thumbnails, 10000 snips compared" in result.output
    assert len(html) < 8e6  # bounded: the sample, not the lake, sets the page's size
    bars = ("coverage", "dims", "agreement")  # no run records in a lake written straight as Parquet
    open_in_browser(tmp_path / "report.html", tmp_path / "map.png", charts=4, bars=bars, points=5000)


def test_pca_and_the_explained_shares_on_known_data():
    from morphlake.report.analysis import Sample, block_summary, group_eta2, stage_r2
    from morphlake.report.projection import pca

    rng = np.random.default_rng(0)
    n = 2000
    stage = rng.uniform(24, 48, n)
    pert = rng.choice(["wt", "atf6", "tbxta"], n).tolist()
    z = rng.standard_normal((n, 10)).astype(np.float32) * 0.01
    z[:, 0] += (stage - 36) ** 2 / 100  # nuisance dim 0: a curve in stage (a cubic fits it)
    z[:, 5] += np.array([{"wt": 0.0, "atf6": 1.0, "tbxta": -1.0}[p] for p in pert])  # biological dim 5: perturbation
    r2, eta2 = stage_r2(z, stage), group_eta2(z, pert)
    assert r2[0] > 0.99 and eta2[5] > 0.99 and r2[5] < 0.01 and eta2[0] < 0.01 and r2[3] < 0.01
    sample = Sample(n, [str(i) for i in range(n)], ["e"] * n, perturbation=pert, stage=stage, path=[None] * n, z=z)
    nuisance, bio = block_summary(sample, nuisance_dims=2)
    assert (nuisance["block"], nuisance["dims"], bio["dims"]) == ("nuisance", "0-1", "2-9")
    assert nuisance["stage_r2"] > 0.95 and bio["perturbation_eta2"] > 0.95
    coords, ratio = pca(z)
    centred = z - z.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    assert ratio == pytest.approx(singular[:2] ** 2 / (singular**2).sum(), rel=1e-4)
    assert np.abs(coords[:, 0]).std() > 0 and coords.shape == (n, 2)
