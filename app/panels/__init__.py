"""Experts and the panel: the expert pool, the verifiable panel draw, invitations,
conflict-of-interest declarations and removals. Computations live in `evaluation.draw`."""
