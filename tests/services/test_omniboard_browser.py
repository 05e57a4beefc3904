"""Omniboard in a real browser: a Sacred run stored in MongoDB shows up in the run list.

A tiny `train_model` run is written by the Mongo observer into a fresh database of the session's
mongod; Omniboard is started on a free loopback port for that database; headless Chromium loads
the run list, and both its rendered DOM and Omniboard's JSON API must show that run, completed.
The screenshot is kept as `test-artifacts/omniboard_runs.png`.

Every process is started with a time limit and stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import urllib.request
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest

import services as servers
import train_model
from nnclust.exec.grid import run_in_process
from nnclust.storage import mongo

from .conftest import free_port

pytestmark = pytest.mark.omniboard

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = PROJECT_ROOT / "test-artifacts" / "omniboard_runs.png"

TINY_RUN = {
    "dataset": {"name": "moons", "n_samples": 200},
    "model": {"name": "mlp", "hidden": [8]},
    "epochs": 2,
    "batch_size": 32,
    "progress": False,
    "seed": 1,
}

CHROMIUM_TIMEOUT_S = 60
# Virtual time lets the React app fetch /api data and render before the DOM or screenshot is taken.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # Chromium refuses to start as root without it
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
    "--virtual-time-budget=15000",
]
WINDOW = (1400, 900)


# --------------------------------------------------------------------------- helpers


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"Chromium is not installed (no `chromium` on PATH); install it with `{servers.SYSTEM_DEPS_SCRIPT}`",
        pytrace=False,
    )


def _group_members(pgid: int) -> list[int]:
    """PIDs of the live processes in process group `pgid` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command name: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def run_chromium(args: list[str], user_data_dir: Path) -> tuple[str, str]:
    """Run headless Chromium once in its own session, bounded by CHROMIUM_TIMEOUT_S; (stdout, stderr).

    Chromium starts helper processes (zygote, crashpad); any still there afterwards are killed by PID.
    """
    user_data_dir.mkdir(parents=True, exist_ok=False)
    cmd = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"Chromium did not finish within {CHROMIUM_TIMEOUT_S} s: {cmd}\n{err[-2000:]}")
    finally:
        # The session Chromium started in has the PID of its first process as its group id.
        for pid in _group_members(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, f"Chromium exited with {proc.returncode}: {cmd}\n{err[-2000:]}"
    return out, err


def get_json(url: str):
    # A direct connection: a proxy from the environment must not stand between us and loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        assert response.status == 200, url
        return json.load(response)


class _Page(HTMLParser):
    """The text of a rendered page, and the cells of its ARIA grid (Omniboard's run table).

    fixed-data-table marks rows with role="row" and cells with role="gridcell" or "columnheader";
    the fixed columns (Id) and the scrolling ones (Status, ...) are cell groups of the same row.
    """

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[list[str]]] = []
        self.text: list[str] = []
        self._stack: list[tuple[str, bool]] = []
        self._cell: list[str] | None = None
        self._skip = 0  # inside <script>/<style>/<option>: not page text

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        role = dict(attrs).get("role")
        opens_cell = False
        if role == "row":
            self.rows.append([])
        elif role in ("gridcell", "columnheader") and self.rows and self._cell is None:
            self._cell = []
            self.rows[-1].append(self._cell)
            opens_cell = True
        if tag in ("script", "style", "option", "noscript"):
            self._skip += 1
        self._stack.append((tag, opens_cell))

    def handle_endtag(self, tag):
        if not any(t == tag for t, _ in self._stack):
            return
        while self._stack:
            t, opened_cell = self._stack.pop()
            if opened_cell:
                self._cell = None
            if t in ("script", "style", "option", "noscript"):
                self._skip -= 1
            if t == tag:
                break

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _clean(parts: list[str]) -> str:
    return " ".join("".join(parts).split())  # also folds the &nbsp; Omniboard puts after an id


def run_table(dom: str) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """(column headers, one {header: cell text} per run row, the page's text nodes) of Omniboard's run list."""
    page = _Page()
    page.feed(dom)
    page.close()
    rows = [[_clean(cell) for cell in row] for row in page.rows]
    headers = next((row for row in rows if "Id" in row and "Status" in row), None)
    assert headers is not None, f"no run table header (Id, Status) in the page; grid rows: {rows}"
    body = rows[rows.index(headers) + 1 :]
    assert all(len(row) == len(headers) for row in body), f"ragged run table: {headers} / {body}"
    texts = [t for t in (_clean([part]) for part in page.text) if t]
    return headers, [dict(zip(headers, row)) for row in body], texts


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stored_run(mongod):
    """A finished train_model run, stored by the Mongo observer in a database of its own."""
    db = f"browser_{uuid.uuid4().hex[:12]}"
    run = run_in_process(train_model.ex, [mongo.observer(f"{mongod.url}/{db}")], TINY_RUN)
    assert run.status == "COMPLETED"
    assert isinstance(run._id, int)
    return {"db": db, "id": run._id, "status": run.status}


@pytest.fixture(scope="module")
def board(mongod, stored_run, tmp_path_factory):
    """Omniboard on a free loopback port for the run's database, stopped by its PID at the end."""
    port = free_port()
    handle = servers.start_omniboard(
        mongo_url=mongod.url, db=stored_run["db"], port=port, home=tmp_path_factory.mktemp("omniboard")
    )
    try:
        assert servers.listening_sockets(handle.pid) == [("127.0.0.1", port)]
        yield handle
    finally:
        assert servers.stop_omniboard(handle) is True
    assert not Path(f"/proc/{handle.pid}").exists()


@pytest.fixture(scope="module")
def run_list_path(board, stored_run):
    """Path of the run list of our database: Omniboard serves each database under its own path."""
    databases = get_json(board.url + "/api/v1/databases")
    assert [d["name"] for d in databases] == [stored_run["db"]]
    return databases[0]["path"]  # "/sacred" for the database given with --mu; "/" redirects there


# --------------------------------------------------------------------------- tests


def test_api_lists_the_run(board, stored_run, run_list_path):
    api = f"{board.url}{run_list_path}/api/v1"
    runs = get_json(f"{api}/Runs?select=_id,status")
    assert [(r["_id"], r["status"]) for r in runs] == [(stored_run["id"], "COMPLETED")]
    assert get_json(f"{api}/Runs/count") == {"count": 1}
    assert get_json(f"{api}/Runs/{stored_run['id']}")["experiment"]["name"] == "train_model"


def test_run_list_page_shows_the_run(board, stored_run, run_list_path, tmp_path):
    # The root URL redirects to the run list of the first (here: only) database.
    dom, _ = run_chromium(["--dump-dom", board.url + "/"], tmp_path / "profile")
    headers, rows, texts = run_table(dom)

    assert headers[headers.index("Id") :][:9] == [
        "Id",
        "Experiment Name",
        "Hostname",
        "Format",
        "Command",
        "Start Time",
        "Status",
        "Tags",
        "Notes",
    ]
    # Exactly our run, and nothing else, in the table.
    assert [row["Id"] for row in rows] == [str(stored_run["id"])]
    assert "999" not in [row["Id"] for row in rows]
    (row,) = rows
    assert row["Status"] == "COMPLETED"  # Omniboard shows Sacred's status as stored, upper case
    assert row["Experiment Name"] == "train_model"
    assert row["Format"].startswith("MongoObserver-")
    assert row["Command"] == "main"
    # The page is the run list of our database.
    assert f"default ({stored_run['db']})" in texts  # the database tab in the navigation bar
    assert "1 experiments" in texts, texts  # the run counter above the table
    assert f'href="{run_list_path}"' in dom


def test_run_list_screenshot_is_kept(board, stored_run, tmp_path):
    shot = tmp_path / "omniboard_runs.png"
    run_chromium([f"--screenshot={shot}", board.url + "/"], tmp_path / "profile")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{shot} is not a PNG ({len(data)} bytes)"
    width, height = struct.unpack(">II", data[16:24])  # IHDR: the first chunk, right after the signature
    assert (width, height) == WINDOW
    assert len(data) > 10_000, "screenshot is suspiciously small for a rendered run table"

    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    partial = ARTIFACT.with_name(ARTIFACT.name + ".partial")
    partial.write_bytes(data)
    partial.replace(ARTIFACT)
    assert ARTIFACT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
