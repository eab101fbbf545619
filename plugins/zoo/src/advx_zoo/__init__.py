"""advx-zoo: the papers' networks as advx model factories."""
