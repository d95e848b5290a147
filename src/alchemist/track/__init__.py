"""MLflow tracking: backend (connection, health, retries), sync (files → runs) and the
lockbox's MLflow ledger. The only package that imports mlflow; nothing else imports it."""
