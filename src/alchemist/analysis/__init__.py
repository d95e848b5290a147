"""After training: statistics, stage tables, aggregation, selection and figures (no torch, no mlflow)."""
