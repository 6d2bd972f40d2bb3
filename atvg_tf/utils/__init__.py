"""Small helpers every layer may use (files, hashes, presets); they import nothing from atvg_tf."""
