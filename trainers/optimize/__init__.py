"""Per-image optimisation: the picture itself is optimised towards any painting, coarse to fine."""
