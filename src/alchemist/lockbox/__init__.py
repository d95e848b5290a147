"""The test-set lockbox (PB-32): ledger (every copy), policy, and the one-time evaluation, the
only code that opens the test split."""
