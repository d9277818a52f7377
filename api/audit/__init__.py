"""The audit log: hash-chained appends, verification, rows for the CSV export."""
