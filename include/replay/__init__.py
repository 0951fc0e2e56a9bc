"""Replay: the closed loop day by day on a simulated data clock (`driver`), and what it measures."""
