"""The parts of bench/compare: common process handling, one module per system."""
