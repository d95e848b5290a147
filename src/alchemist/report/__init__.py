"""What a researcher sees after a run, in one folder: contents (what `snakemake --report` shows —
its sections and front page), captions/ (their text), summary (the run's last lines, summary.md
and the front page), figures (which figures a stage has) and plots (how each is drawn), pages (the
leaderboard page and the lockbox status). No torch, no mlflow: the numbers come from
alchemist.analysis and alchemist.lockbox; here is only what is shown and how."""
