"""The web dashboard in a real browser (Debian's headless Chromium driven by Selenium): every page loads
with real data in it, the search finds a module, each page is screenshotted under the test's directory,
and the browser console shows no errors."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Corpus, ModvaultFactory
from tests.e2e.test_sumdb_e2e import init_db
from tests.support.gitrepos import download_json, go_env, run_go
from tests.support.upstream_server import TestUpstreamServer

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                   reason="Debian chromium and chromium-driver not installed")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver: object) -> list[dict[str, object]]:
    logs = driver.get_log("browser")  # type: ignore[attr-defined]
    return [e for e in logs if e.get("level") == "SEVERE"]


@needs_browser
def test_dashboard_pages_in_chromium(corpus: Corpus, upstream_a: TestUpstreamServer,
                                     modvault: ModvaultFactory, tmp_path: Path, gohome: Path,
                                     browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    data = tmp_path / "data"
    vkey = init_db(data)
    mv = modvault(upstream_a.url, "--nosumdb", "github.com/acme", data_dir=data)
    env = go_env(gohome, GOPROXY=mv.url)
    proc = run_go(["mod", "download", "-json", "github.com/acme/hello@v1.0.0",
                   "github.com/acme/hello@v1.1.0", "github.com/Acme/Upper@v1.0.0"], cwd=gohome, env=env)
    sums = {f"{d['Path']}@{d['Version']}": d["Sum"] for d in download_json(proc.stdout)}
    httpx.get(mv.url + "/github.com/acme/nothere/@v/v9.9.9.info")  # an error to show
    # The walk of the store that feeds the dashboard runs in the background; /index forces one.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(httpx.get(mv.url + "/index").text.splitlines()) < 3:
        time.sleep(0.2)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    d = browser
    wait = WebDriverWait(d, 20)

    def visit(path: str, name: str) -> None:
        d.get(mv.url + path)  # type: ignore[attr-defined]
        wait.until(ec.presence_of_element_located((By.TAG_NAME, "footer")))
        assert d.save_screenshot(str(shots / f"{name}.png"))  # type: ignore[attr-defined]
        assert _console_errors(d) == [], (path, _console_errors(d))

    # Overview: live numbers arrive from the page's script.
    visit("/", "overview")
    wait.until(lambda drv: drv.find_element(By.ID, "rps").text not in ("", "–"))
    assert d.find_element(By.ID, "store-count").text == "2 / 3"  # type: ignore[attr-defined]
    assert "modvault" in d.title  # type: ignore[attr-defined]
    wait.until(lambda drv: drv.find_element(By.ID, "rps-line").get_attribute("points") != "")
    assert d.save_screenshot(str(shots / "overview-live.png"))  # type: ignore[attr-defined]

    visit("/ui/upstreams", "upstreams")
    table = d.find_element(By.ID, "upstreams").text  # type: ignore[attr-defined]
    assert "127.0.0.1" in table and "closed" in table

    visit("/ui/activity", "activity")
    assert "/github.com/acme/hello/@v/v1.1.0.zip" in d.find_element(By.ID, "fetches").text  # type: ignore[attr-defined]
    assert "v9.9.9.info" in d.find_element(By.ID, "errors").text  # type: ignore[attr-defined]

    # Search from the header box, then follow the result to the module's page.
    box = d.find_element(By.ID, "search")  # type: ignore[attr-defined]
    box.send_keys("hello")
    box.submit()
    wait.until(ec.presence_of_element_located((By.ID, "results")))
    assert d.save_screenshot(str(shots / "search.png"))  # type: ignore[attr-defined]
    assert _console_errors(d) == []
    results = d.find_element(By.ID, "results").text  # type: ignore[attr-defined]
    assert "github.com/acme/hello" in results and "Upper" not in results
    d.find_element(By.LINK_TEXT, "github.com/acme/hello").click()  # type: ignore[attr-defined]
    wait.until(ec.presence_of_element_located((By.ID, "versions")))
    assert d.save_screenshot(str(shots / "module.png"))  # type: ignore[attr-defined]
    assert _console_errors(d) == []
    versions = d.find_element(By.ID, "versions").text  # type: ignore[attr-defined]
    assert "v1.0.0" in versions and "v1.1.0" in versions
    assert str(sums["github.com/acme/hello@v1.1.0"]) in versions  # the go.sum line's hash

    visit("/ui/module/github.com/Acme/Upper", "module-upper")
    visit("/ui/sumdb", "sumdb")
    assert d.find_element(By.ID, "tree-size").text == "2"  # the two acme versions  # type: ignore[attr-defined]
    assert vkey in d.find_element(By.ID, "vkeys").text  # type: ignore[attr-defined]

    for name in ("overview", "overview-live", "upstreams", "activity", "search", "module",
                 "module-upper", "sumdb"):
        png = shots / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name


def test_dashboard_pages_answer_without_a_browser(corpus: Corpus, upstream_a: TestUpstreamServer,
                                                  modvault: ModvaultFactory) -> None:
    mv = modvault(upstream_a.url)
    r = httpx.get(mv.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(mv.url + "/ui/static/dashboard.js").status_code == 200
    assert httpx.get(mv.url + "/ui/static/nope.js").status_code == 404
    missing = httpx.get(mv.url + "/ui/module/github.com/acme/none")
    assert missing.status_code == 404 and len(missing.text.splitlines()) == 1
    hostile = httpx.get(mv.url + "/ui/modules", params={"q": "<script>alert(1)</script>"})
    assert hostile.status_code == 200 and "<script>alert(1)" not in hostile.text
    assert "&lt;script&gt;" in hostile.text
    doc = httpx.get(mv.url + "/ui/api/overview.json").json()
    assert doc["requests"] >= 1 and "uptime" in doc
    assert httpx.post(mv.url + "/").status_code == 405


def _token(data: Path, name: str, role: str) -> str:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "modvault", "token", "create", name, "--role", role,
                           "--data-dir", str(data)], capture_output=True, text=True, check=True)
    return proc.stdout.strip().splitlines()[-1]


def test_dashboard_and_push_refresh_need_their_roles_when_auth_is_on(
        corpus: Corpus, upstream_a: TestUpstreamServer, modvault: ModvaultFactory,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    admin, reader = _token(data, "ops", "admin"), _token(data, "bot", "reader")
    mv = modvault(upstream_a.url, "--auth", "on", data_dir=data)
    assert httpx.get(mv.url + "/").status_code == 401
    as_reader = {"authorization": f"Bearer {reader}"}
    as_admin = {"authorization": f"Bearer {admin}"}
    for path in ("/", "/ui/upstreams", "/ui/modules", "/ui/sumdb", "/ui/api/overview.json"):
        assert httpx.get(mv.url + path, headers=as_reader).status_code == 403, path
        assert httpx.get(mv.url + path, headers=as_admin).status_code == 200, path
    refresh = mv.url + "/api/v1/refresh/github.com/acme/hello"
    assert httpx.post(refresh).status_code == 401
    assert httpx.post(refresh, headers=as_reader).status_code == 403
    r = httpx.post(refresh, headers=as_admin)
    assert r.status_code == 200 and "v1.1.0" in r.json()["Versions"]
    # prewarm sends MODVAULT_TOKEN as a bearer token; without one the server refuses.
    from tests.e2e.test_ops_store import modvault_cli

    ok = modvault_cli("prewarm", "github.com/acme/hello@v1.0.0", "--server", mv.url, "--json",
                      env={"MODVAULT_TOKEN": reader})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    denied = modvault_cli("prewarm", "github.com/acme/hello@v1.0.0", "--server", mv.url,
                          env={"HOME": str(tmp_path)})
    assert denied.returncode == 1 and "401" in denied.stdout
