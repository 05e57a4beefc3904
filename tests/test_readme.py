"""Every command and code block of the README and of the docs/ pages works as written:
module paths import without PYTHONPATH, the scripts accept their arguments (checked with
print_config, which resolves and validates the whole config but trains nothing), Python
snippets run in a project folder holding tiny runs, and the pages build with mkdocs."""

import contextlib
import importlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = {p.relative_to(ROOT).as_posix(): p.read_text() for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]}


def joined(text: str) -> str:
    """The text with shell continuation lines joined."""
    return re.sub(r"\\\n\s*", " ", text)


COMMAND = r"python (?:-m [\w.]+|src/\w+\.py)[^`\n#;]*"
# every command of every page, inline or in a block, once: a command shown on two pages is checked once
COMMANDS = sorted({c.strip() for text in PAGES.values() for c in re.findall(f"({COMMAND})", joined(text))})
MODULE_COMMANDS = [c for c in COMMANDS if c.startswith("python -m ")]
SCRIPT_COMMANDS = [c for c in COMMANDS if c.startswith("python src/")]
# (page, language, body) of every fenced block
BLOCKS = [
    (page, lang, body)
    for page, text in PAGES.items()
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
]
PYTHON_BLOCKS = sorted({body for _, lang, body in BLOCKS if lang == "python"})


def shell_commands(body: str) -> list[list[str]]:
    """The commands of a shell block as word lists (continuations joined, `;` split, comments dropped)."""
    commands = []
    for line in joined(body).splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        words: list[str] = []
        for word in [*lexer, ";"]:
            if word == ";":
                commands += [words] if words else []
                words = []
            else:
                words.append(word)
    return commands


SHELL_COMMANDS = [words for _, lang, body in BLOCKS if lang == "bash" for words in shell_commands(body)]
# a command line with Python code: run as written, in a shell, in the project folder
SHELL_SNIPPETS = sorted(
    {
        line.strip()
        for _, lang, body in BLOCKS
        if lang == "bash"
        for line in joined(body).splitlines()
        if re.match(r"^(\w+=\S+ )*python -c ", line.strip())
    }
)


def test_every_code_block_is_of_a_kind_this_test_checks():
    """bash blocks are commands, python blocks snippets, text blocks output or listings."""
    assert BLOCKS and {lang for _, lang, _ in BLOCKS} <= {"bash", "python", "text"}, [
        (page, lang) for page, lang, _ in BLOCKS if lang not in ("bash", "python", "text")
    ]


def test_the_pages_show_commands_of_both_kinds():
    assert len(SCRIPT_COMMANDS) >= 5 and len(MODULE_COMMANDS) >= 2, COMMANDS
    assert len(PYTHON_BLOCKS) >= 3 and SHELL_SNIPPETS


MAKE_TARGETS = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
SOURCE = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))


@pytest.mark.parametrize("words", SHELL_COMMANDS, ids=" ".join)
def test_every_shell_command_is_checked(words):
    """Each command of a bash block is one this module runs (a script or module command,
    a Python snippet), a target of the Makefile (the targets that start servers are tested
    with the servers), or an environment variable the project reads."""
    while words and re.match(r"^\w+=", words[0]):  # leading environment assignments
        words = words[1:]
    if words[0] == "make":
        assert set(words[1:]) <= MAKE_TARGETS, words
    elif words[0] == "export":
        name = words[1].split("=")[0]
        assert f'"{name}"' in SOURCE, f"{name} is read nowhere in src/"
    elif words[:2] == ["python", "-c"]:
        assert any(words[2] in snippet for snippet in SHELL_SNIPPETS)
    else:
        assert " ".join(words).startswith("python ") and re.match(COMMAND, " ".join(words)), words


@pytest.mark.parametrize("command", MODULE_COMMANDS)
def test_module_commands_run_as_written_without_pythonpath(command, tmp_path):
    module = shlex.split(command)[2]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


@pytest.fixture
def project_like(tmp_path, monkeypatch):
    """A working directory with the run folders the pages' commands point at."""
    monkeypatch.chdir(tmp_path)
    config = {"dataset": {"name": "moons"}, "epochs": 12, "seed": 1}
    for run_id, status in ((1, "COMPLETED"), (3, "INTERRUPTED")):
        folder = tmp_path / "training_runs" / str(run_id)
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"status": status}))
        (folder / "config.json").write_text(json.dumps(config))
    stopped = {"shuffle_clust_runs": {"model": "training_runs/1", "seed": 1}, "imp_runs": {"seed": 1}}
    for store, config in stopped.items():  # the stopped runs that the resume= examples continue
        folder = tmp_path / store / "3"
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"status": "INTERRUPTED"}))
        (folder / "config.json").write_text(json.dumps(config))
    return tmp_path


def ex_commands(script: str) -> set[str]:
    return set(importlib.import_module(Path(script).stem).ex.commands)


@pytest.mark.parametrize("command", SCRIPT_COMMANDS)
def test_script_commands_accept_their_arguments(command, project_like):
    words = shlex.split(command)
    script = words[1]
    assert (ROOT / script).is_file(), script
    args = words[2:]
    module = importlib.import_module(Path(script).stem)
    if not hasattr(module, "ex"):  # a plain argparse script: its options must parse
        done = subprocess.run(
            [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and all(a.split("=")[0] in done.stdout for a in args if a.startswith("--"))
        return
    if "-m" in args:  # the MongoDB store: its own test starts a server; here only the config counts
        i = args.index("-m")
        del args[i : i + 2]
    if args and args[0] != "with":  # a command (print_config, or a driver): print_config checks its config
        command_name = args.pop(0)
        assert command_name == "print_config" or command_name in ex_commands(script), command_name
    args = ["print_config", *args]
    ex = importlib.import_module(Path(script).stem).ex
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            ex.run_commandline([script, *args])
        except SystemExit as exit_:
            pytest.fail(f"{command!r} exits with {exit_.code}:\n{out.getvalue()[-2000:]}")
    assert "Configuration" in out.getvalue()


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory):
    """A project folder with two completed digits training runs (pruned, differing in
    their epochs): what the pages' Python snippets read."""
    from sacred.observers import FileStorageObserver

    import train_model
    from nnclust.exec.grid import run_in_process

    root = tmp_path_factory.mktemp("project")
    for epochs in (4, 5):
        config = {"epochs": epochs, "progress": False,
                  "pruning": {"final_sparsity": 0.8, "num_pruning_epochs": 2, "num_finetune_epochs": 1}}  # fmt: skip
        run_in_process(train_model.ex, [FileStorageObserver(str(root / "training_runs"))], config, ["mlp_config"])
    return root


@pytest.fixture(scope="module")
def imp_project(trained_project):
    """The project folder with a tiny IMP run (two moons tasks, 4-8-8-2, two levels) as imp_runs/1."""
    from sacred.observers import FileStorageObserver
    from tests.conftest import TWO_LEVEL_IMP

    import imp_experiment
    from nnclust.exec.grid import run_in_process

    run_in_process(imp_experiment.ex, [FileStorageObserver(str(trained_project / "imp_runs"))], TWO_LEVEL_IMP)
    return trained_project


def project_for(code: str, request) -> Path:
    return request.getfixturevalue("imp_project" if "imp_runs/" in code else "trained_project")


@pytest.mark.parametrize("block", range(len(PYTHON_BLOCKS)))
def test_python_snippets_run_as_written(block, request):
    """Each Python block of the pages, in a fresh interpreter in a project folder, with
    no PYTHONPATH: the package is installed, the scripts are found beside it."""
    code = PYTHON_BLOCKS[block]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=project_for(code, request), env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    if "compact(" in code:
        lines = done.stdout.strip().splitlines()
        before, after = map(int, lines[0].split(" hidden units")[0].split(" -> "))
        assert after < before
        assert float(lines[1].split("(")[1].split(")")[0]) < 1e-4  # compaction changes no output beyond rounding
    if "config_diff" in code:
        assert "epochs" in done.stdout
    if "run_grid" in code:
        assert len(done.stdout.strip().splitlines()) == 4


@pytest.mark.parametrize("snippet", SHELL_SNIPPETS)
def test_shell_snippets_run_as_written(snippet, request):
    """Each `python -c` command line of the pages, run by the shell as written, in a project folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` is this environment's
    done = subprocess.run(["bash", "-c", snippet], cwd=project_for(snippet, request), env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    if "imp_level_modularity" in snippet:  # one record per level of the two-level run
        assert [eval(line, {"nan": float("nan")})["level"] for line in done.stdout.splitlines()] == [0, 1, 2]


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def test_the_readme_is_a_front_page_linking_every_page_and_script():
    readme = PAGES["README.md"]
    assert "make run " in readme and "make test " in readme  # the two commands (.ci/run runs `make test`)
    for script in sorted((ROOT / "src").glob("*.py")):
        assert f"`{script.name}`" in readme, f"{script.name} is missing from the README's map of experiments"
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name}" in readme, f"docs/{page.name} is not linked from the README"


def test_the_docs_home_page_mirrors_the_readme_opening():
    opening = PAGES["README.md"].split("\n## ")[0]
    assert PAGES["docs/index.md"].startswith(opening), "copy the README before its first section to docs/index.md"


def test_links_to_the_pages_name_existing_pages_and_headings():
    links = [(page, target) for page, text in PAGES.items() for target in re.findall(r"\]\(([^)\s]+)\)", text)]
    local = [(page, target) for page, target in links if not re.match(r"^\w+://", target)]
    assert local
    for page, target in local:
        path, _, anchor = target.partition("#")
        file = (ROOT / page).parent / path if path else ROOT / page
        assert file.exists(), f"{page} links to {target}"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)
            assert anchor in {slug(h) for h in headings}, f"{page} links to {target}"


def test_the_nav_lists_every_page_once():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = [next(iter(entry.values())) for entry in nav]
    assert sorted(listed) == sorted(p.name for p in DOCS.glob("*.md")) and len(set(listed)) == len(listed)


def test_the_docs_build_with_mkdocs_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs (a dev package of the Pipfile) is not installed here")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "clustering" / "index.html").is_file()
