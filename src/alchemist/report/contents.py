"""What `snakemake --report` shows, decided in one place: its front page and its sections.

Snakemake's `report()` flag must sit on the output of the rule that writes the file, so the rule
files keep the flag, but everything it says comes from here: each rule writes
`report(path, **contents.entry("<name>"))`, and the Snakefile's `report:` directive reads
`contents.front_page(results)`. To change the report, change this file, the captions/ beside it,
the figures (figures.py decides which a stage has, plots.py draws them), the pages (pages.py) or
the front page (summary.py). tests/test_architecture.py checks that every section here is used by
a rule and that no rule describes a report item of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CAPTIONS = Path(__file__).resolve().parent / "captions"


@dataclass(frozen=True)
class Section:
    """One kind of report item: where it is filed (category, subcategory — a wildcard in braces
    names one item per stage), its caption file, and for a folder the file patterns it shows."""
    category: str
    caption: str
    subcategory: str | None = None
    patterns: tuple[str, ...] = field(default=())


#: the report's sections, in the order a researcher reads them (rule that writes each item)
SECTIONS: dict[str, Section] = {
    # diagnostics: results/diagnostics/lr_find.png, the LR range test (PB-13)
    "lr_find": Section("Diagnostics", "lr_find.rst"),
    # aggregate_stage: results/<stage>/leaderboard.html (pages.leaderboard_page)
    "leaderboard": Section("Leaderboards", "leaderboard.rst", subcategory="{stage}"),
    # publish_stage: results/plots/<stage>/*.png (figures.stage_figures)
    "figures": Section("Figures", "figures.rst", subcategory="{stage}", patterns=("{name}.png",)),
    # lockbox_status: results/lockbox/status.txt (pages.lockbox_status)
    "lockbox": Section("Lockbox", "lockbox.rst"),
}

FRONT_PAGE = "summary.rst"   # written in the results folder by summary.write after a run


def entry(name: str) -> dict:
    """The keyword arguments of Snakemake's `report()` for one section: category, subcategory,
    the caption's absolute path and, for a folder, its patterns."""
    section = SECTIONS[name]
    kwargs = {"category": section.category, "caption": str(CAPTIONS / section.caption)}
    if section.subcategory:
        kwargs["subcategory"] = section.subcategory
    if section.patterns:
        kwargs["patterns"] = list(section.patterns)
    return kwargs


def front_page(results: str | Path) -> str:
    """The report's front page: the end-of-run summary once a run has written one
    (results/summary.rst), else a page saying no search has finished yet."""
    written = Path(results) / FRONT_PAGE
    return str(written.resolve()) if written.exists() else str(CAPTIONS / "front_page.rst")
