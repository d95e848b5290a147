"""The run's last lines: after a successful run (the Snakefile's `onsuccess`) the summary is written
(results/summary.md, the report's front page) and printed (alchemist.analysis.summary)."""
from __future__ import annotations

from pathlib import Path


def write_summary(config: dict, results: str) -> None:
    """After a successful run (the Snakefile's onsuccess): results/summary.md and the report's
    front page (results/summary.rst) written, and the summary printed as the run's last lines."""
    from alchemist.analysis import summary
    from alchemist.atomic import write_text

    content = summary.build(Path(results), config)
    if content is None:
        return
    write_text(Path(results) / "summary.md", summary.markdown(content))
    write_text(Path(results) / "summary.rst", summary.rst(content))
    print("\n" + "─" * 78 + "\n" + "\n".join(summary.lines(content)) + "\n" + "─" * 78, flush=True)
