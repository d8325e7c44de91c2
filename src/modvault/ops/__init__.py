"""Operator tooling: inventory, removal, garbage collection, the access journal, the index feed,
prewarm and air-gap bundles. Store-side commands work on the data directory `serve` would use."""
