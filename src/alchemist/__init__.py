"""alchemist: a reproducible deep-learning hyperparameter pipeline (炼丹) on Snakemake."""
__version__ = "0.1.0"
