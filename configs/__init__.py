"""ml_collections configs for `python -m ucfp.generate --config=configs/<method>.py[:preset]`."""
