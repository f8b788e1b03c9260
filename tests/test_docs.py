"""The front page and the pages under docs/: every relative link resolves (files, and
#anchors as GitHub makes them from headings), the README names every make target there is
and no other, every ``desk-sessions`` option they show exists, and the README's layer
picture is the one the import contracts check."""

from __future__ import annotations

import argparse
import re
import tomllib
import unicodedata
from pathlib import Path

import pytest

pytestmark = pytest.mark.check  # make check's fast lane: pure and quick

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# `make x` in a sentence, or a line of a code block that starts with it
MAKE = re.compile(r"(?:`|^)make ([a-z][a-z-]*)", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# `desk-sessions CMD` and the rest of its line (a code span, a code block's line)
COMMAND = re.compile(r"desk-sessions ((?:simulate history)|[a-z]+)([^\n`|]*)")


def prose(text: str) -> str:
    """The text without its fenced code blocks (a link in a code block is not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup dropped, lower case, every character
    but letters, digits, '-', '_' and spaces dropped, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "").lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


def test_slug_is_githubs() -> None:
    assert slug("Receiving session events (`desk-sessions listen`)") == (
        "receiving-session-events-desk-sessions-listen")
    assert slug("A real account in five steps") == "a-real-account-in-five-steps"
    assert slug("Tencent Cloud Desk sessions → DuckDB") == "tencent-cloud-desk-sessions--duckdb"


def test_there_are_pages_and_links() -> None:
    """The front page links the pages under docs/, and each of them is linked."""
    linked = {(ROOT / t.split("#")[0]).resolve() for t in links(ROOT / "README.md")}
    assert len(PAGES) > 5
    assert not [p.name for p in PAGES[1:] if p.resolve() not in linked]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        found = (page.parent / path).resolve() if path else page
        if not found.exists():
            broken.append(f"{target}: no file {found.relative_to(ROOT)}")
        elif anchor and found.suffix == ".md" and anchor not in anchors(found):
            broken.append(f"{target}: no heading makes #{anchor}")
    assert not broken, broken


def test_readme_names_the_make_targets_there_are() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    defined = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    assert phony <= defined
    readme = (ROOT / "README.md").read_text()
    named = set(MAKE.findall(readme))
    assert phony - named == set(), "targets the README does not name"
    everywhere = named.union(*(MAKE.findall(p.read_text()) for p in PAGES))
    assert everywhere - defined == set(), "targets named that the Makefile lacks"


def _options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Each command's options ("simulate history" for the subcommand's own)."""
    out: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                key = "simulate history" if name == "history" else name
                out[key] = {o for a in sub._actions for o in a.option_strings}
                out.update(_options(sub))
    return out


def test_every_option_the_pages_show_exists() -> None:
    """A command copied from the README, docs/, the notebooks or .dlt/config.toml runs:
    each ``desk-sessions CMD --option`` shown is one the CLI has."""
    from tencent_desk import cli

    known = _options(cli.parser())
    files = [*PAGES, *sorted((ROOT / "notebooks").glob("*.py")), ROOT / ".dlt" / "config.toml"]
    shown, unknown = 0, []
    for page in files:
        for command, rest in COMMAND.findall(page.read_text()):
            if command not in known:
                continue  # prose: "desk-sessions is ..."
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                shown += 1
                if option not in known[command]:
                    unknown.append(f"{page.relative_to(ROOT)}: desk-sessions {command} {option}")
    assert shown > 50 and unknown == []


def test_the_plan_synopsis_shows_every_option() -> None:
    """docs/planning.md's synopsis of ``desk-sessions plan`` leaves out none of the
    options its ``--help`` shows."""
    from tencent_desk import cli

    page = (ROOT / "docs" / "planning.md").read_text()
    synopsis = next(block for block in (m.group(0) for m in FENCE.finditer(page))
                    if "desk-sessions plan --database" in block)
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", synopsis))
    missing = _options(cli.parser())["plan"] - shown - {"-h", "--help"}
    assert missing == set(), "options the synopsis leaves out"


def test_layer_picture_is_the_contract() -> None:
    """The README's Mermaid diagram draws the layers of pyproject.toml's layers contract,
    top to bottom, each layer's folders joined to the next layer's."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    level = {name.strip(): n for n, layer in enumerate(layers) for name in layer.split("|")}
    block = re.search(r"```mermaid\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    edges = []
    for line in block.splitlines():
        if "-->" not in line:
            continue
        above, below = (re.findall(r"(\w+)(?:\[[^\]]*\])?", side) for side in line.split("-->"))
        edges += [(a, b) for a in above for b in below]
    drawn = {name for edge in edges for name in edge}
    assert drawn == set(level), "the diagram's boxes are the contract's folders"
    assert all(level[b] == level[a] + 1 for a, b in edges), "an arrow skips or climbs a layer"
    for n in range(len(layers) - 1):  # every folder has an arrow down to the next layer
        upper = {name for name, at in level.items() if at == n}
        assert upper <= {a for a, b in edges if level[b] == n + 1}, layers[n]


def _helps() -> dict[str, str]:
    """Each command's --help text ("" for the top level's), as argparse prints it."""
    from tencent_desk import cli

    top = cli.parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": top.format_help(), **{name: sub.format_help()
                                      for name, sub in commands.choices.items()}}


def test_each_help_says_only_what_applies_to_its_command() -> None:
    """The job's settings and exit codes are run's and records'; a simulator or a receiver
    has no PostgreSQL, max_error_share nor Desk API to be refused by."""
    helps = _helps()
    for name in ("run", "records"):
        assert "Exit codes:" in helps[name] and "max_error_share" in helps[name], name
    for name, own in (("simulate", "3 the port cannot be used"),
                      ("listen", "3 the folder or the port cannot be used")):
        text = " ".join(helps[name].split())
        assert own in text, name
        for foreign in ("PostgreSQL", "max_error_share", "__MAX_QPS", "the Desk API refused",
                        "several apps: some failed"):
            assert foreign not in text, (name, foreign)


def test_every_command_but_the_demo_gives_its_exit_codes() -> None:
    """The top help says every command's --help gives its own exit codes: each does (the
    demo, a walk-through, has none to script against)."""
    helps = {name: " ".join(text.split()) for name, text in _helps().items() if name}
    assert set(helps) >= {"run", "records", "listen", "simulate", "publish", "report", "plan"}
    missing = [name for name, text in helps.items()
               if name != "demo" and "Exit codes:" not in text]
    assert missing == []
    assert "3 --out cannot be written, or a run held the database past --lock-wait" in helps[
        "plan"]
    assert "3 the database is in use by a run or not writable" in helps["publish"]


def test_the_top_help_shows_no_seed_as_required() -> None:
    """run asks the sessions known from received events without --seed (docs/operations.md)."""
    top = _helps()[""]
    assert "desk-sessions run --database FILE.duckdb [--seed SEED]" in top
    assert "run --seed SEED" not in top and "poll every key of a seed table" not in top


def test_the_analysis_page_names_every_notebook_and_what_it_reads() -> None:
    """docs/analysis.md lists every notebook and every environment variable the notebooks
    (and the helpers they all open the data with) read."""
    page = (ROOT / "docs" / "analysis.md").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    sources = [*sorted((ROOT / "notebooks").glob("*.py")),
               ROOT / "pipelines" / "tencent_desk" / "notebook.py"]
    read = {name for source in sources for name in re.findall(
        r"environ(?:\.get\(|\[)\s*[\"'](DESK_[A-Z_]+)", source.read_text())}
    assert len(notebooks) >= 5 and "DESK_TARGET" in read
    missing = [f"notebooks/{nb.name}" for nb in notebooks if f"notebooks/{nb.name}" not in page]
    missing += [name for name in sorted(read) if f"`{name}`" not in page]
    assert missing == []
