"""Helpers of the experiment scripts: sweeps, the search space, U(n)."""
