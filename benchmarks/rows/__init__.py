"""One module per benchmark row: PRESETS, UNIT, make_inputs, build_mmcore, build_peer, items_per_batch."""
