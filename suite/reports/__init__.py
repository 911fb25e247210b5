"""Per-paper report hooks (``extra_report`` in config/paper_numbers.yaml)."""
